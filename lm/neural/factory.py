"""Build the model a ``TrainConfig`` names (through its ``lmpipe.lm.neural.registry`` entry)."""

from __future__ import annotations

from lmpipe.lm.neural.config import TrainConfig
from lmpipe.lm.neural.models import LanguageModel
from lmpipe.lm.neural.registry import ARCHITECTURES


def build_model(config: TrainConfig, vocab_size: int) -> LanguageModel:
    """A freshly initialised model (draws from torch's global RNG: seed it first)."""
    return ARCHITECTURES[config.arch].build(config, vocab_size)
