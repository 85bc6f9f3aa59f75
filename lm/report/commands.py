"""The command that reproduces a report row: ``lmpipe train`` with exactly the options that
make its settings, so that running it trains the same model (same settings, same content key,
the same figures on the CPU)."""

from __future__ import annotations

import shlex
from typing import Any

from lmpipe.lm.corpus import load_registry
from lmpipe.lm.neural.config import TrainConfig


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def corpus_options(corpus: str, tokenizer: str, run_config: dict[str, Any]) -> list[str]:
    """How the commands name a corpus: ``--corpus`` for a registry corpus, else the files the
    run's configuration gave (``--text`` for one text split 80/10/10)."""
    spec = next((c for c in run_config.get("corpora", []) if c.get("name") == corpus), None)
    if spec is None or not (spec.get("path") or spec.get("train")):
        return ["--corpus", corpus, "--tokenizer", tokenizer]
    # the run's name for the corpus, so that the command finds the run's own model files
    named = ["--name", corpus]
    if spec.get("path"):
        return ["--text", str(spec["path"]), *named, "--tokenizer", tokenizer]
    out = ["--train", str(spec["train"]), "--test", str(spec["test"])]
    if spec.get("valid"):
        out += ["--valid", str(spec["valid"])]
    return [*out, *named, "--tokenizer", tokenizer]


def vocab_options(corpus: str, min_freq: int, normalize: str) -> list[str]:
    """The vocabulary options that differ from what the command does by itself."""
    entry = load_registry().get(corpus)
    own = entry.min_freq if entry is not None else 1
    out = ["--min-freq", str(min_freq)] if min_freq != own else []
    return out + (["--normalize", normalize] if normalize != "none" else [])


def setting_options(settings: dict[str, Any], corpus: dict[str, Any] | None = None) -> list[str]:
    """``lmpipe train`` options that give ``settings`` (a ``TrainConfig`` as stored with a
    result) from what the command trains by itself (the architecture's defaults on top of the
    registry corpus's own ``corpus`` settings): only the settings that differ."""
    arch = settings["arch"]
    given = {k: v for k, v in settings.items() if k in TrainConfig.model_fields and k != "arch"}
    base = TrainConfig.for_arch(arch, corpus=corpus).as_dict()
    out: list[str] = ["--arch", arch]
    for name, value in given.items():
        if name == "epochs" and value is None:
            continue  # a budget alone trains until the budget: --max-minutes says it
        if base.get(name) == value:
            continue
        if isinstance(value, bool):
            out.append(_flag(name) if value else "--no-" + _flag(name)[2:])
        elif value is None:
            out += [_flag(name), "0"]  # patience 0: never stop early; clip 0: no clipping
        else:
            out += [_flag(name), str(value)]
    if given.get("epochs") is None and given.get("max_minutes") is None:
        raise ValueError("a training has an epoch count or a time budget")
    return out


def train_command(
    corpus: str,
    tokenizer: str,
    min_freq: int,
    normalize: str,
    settings: dict[str, Any],
    run_config: dict[str, Any],
) -> str:
    """The whole ``lmpipe train`` command line, quoted for a POSIX shell."""
    place = corpus_options(corpus, tokenizer, run_config)
    entry = load_registry().get(corpus) if place[0] == "--corpus" else None
    words = ["lmpipe", "train", *place]
    words += vocab_options(corpus, min_freq, normalize)
    words += setting_options(settings, entry.neural if entry else None)
    return shlex.join(words)
