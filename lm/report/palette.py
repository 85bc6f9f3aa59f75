"""One fixed colour and marker per model, read from the registries of smoothing methods and
architectures, so that a model looks the same in every figure of every report. n-gram methods
have warm or earthy colours, neural architectures cool ones."""

from __future__ import annotations

import zlib
from typing import Any

from lmpipe.lm.neural.registry import ARCHITECTURES
from lmpipe.lm.ngram.registry import SMOOTHING

# One fixed colour per model name, so a model looks the same in every figure of every report.
# n-gram methods get warm/earthy colours, neural architectures cool ones.
MODEL_COLORS: dict[str, str] = {
    **{name: s.colour for name, s in SMOOTHING.items()},
    **{name: a.colour for name, a in ARCHITECTURES.items()},
}
MODEL_ORDER = list(MODEL_COLORS)
_MARKERS = "osD^vP*X<>"
_FALLBACK = ["#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d"]
# Zipf lines are orders, not models: greys keep them apart from every model colour.
ORDER_STYLES = {1: ("#111111", "-"), 2: ("#555555", "--"), 3: ("#999999", ":")}
ZIPF_POINTS = 400
UNNORMALISED = {n for n, s in SMOOTHING.items() if not s.normalized}  # scores, not probabilities


def model_color(model: str) -> str:
    """The colour of ``model`` in every figure; unknown names get a stable hashed colour."""
    return MODEL_COLORS.get(model) or _FALLBACK[zlib.crc32(model.encode()) % len(_FALLBACK)]


def in_model_order(models: Any) -> list[str]:
    """Distinct model names in the order every table and legend uses (then by name)."""
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(set(models), key=lambda m: (rank.get(m, len(rank)), m))


def model_marker(model: str) -> str:
    """A marker per model as well, for lines that overlap and for readers without colour."""
    i = MODEL_ORDER.index(model) if model in MODEL_ORDER else zlib.crc32(model.encode())
    return _MARKERS[i % len(_MARKERS)]
