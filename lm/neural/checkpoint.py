"""Training checkpoints: one file per training directory, rewritten atomically after every epoch.

A checkpoint is a dict of tensors and primitives only (loadable with ``weights_only=True``):
``format``, ``config`` (``TrainConfig.as_dict``), ``vocab_fingerprint``, ``vocab_size``,
``epoch``, ``model`` (last weights), ``best_model`` (weights with the best validation
perplexity), ``optimizer``, ``rng`` (torch, CUDA, numpy, python and the batch iterator's
generator), ``best_epoch``, ``best_valid_perplexity``, ``bad_epochs``, ``elapsed_seconds``,
``history`` (the per-epoch metrics), ``step`` (updates so far) and ``lr_scale`` (the plateau
schedule's factor so far).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmpipe.lm.errors import ModelError
from lmpipe.lm.fileio import atomic_path
from lmpipe.lm.neural.config import TrainConfig
from lmpipe.lm.neural.factory import build_model
from lmpipe.lm.neural.models import LanguageModel

FORMAT = 2  # 2: the update count and the plateau's learning-rate scale
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ModelError):
    """A checkpoint that cannot be used as asked (wrong vocabulary, other configuration...)."""


def checkpoint_path(directory: str | os.PathLike[str]) -> Path:
    return Path(directory) / CHECKPOINT_NAME


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` so that ``path`` is always either the old or the new complete file."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    ckpt: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: unsupported checkpoint format {ckpt.get('format')!r} (expected {FORMAT})"
        )
    return ckpt


def capture_rng(gen: np.random.Generator) -> dict[str, Any]:
    """Every random state a training consumes, as tensors and primitives."""
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    assert not isinstance(keys, str)  # the legacy state is a tuple whose keys are an array
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
        "batches": gen.bit_generator.state,
    }


def restore_rng(state: dict[str, Any], gen: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["gauss"],
        )
    )
    random.setstate(state["python"])
    gen.bit_generator.state = state["batches"]


def load_model(
    path: str | os.PathLike[str], which: str = "best", vocab_fingerprint: str | None = None
) -> tuple[LanguageModel, TrainConfig, dict[str, Any]]:
    """The model stored in a checkpoint (``which`` = ``best`` or ``last`` weights), its config
    and the checkpoint's metadata; checks the vocabulary fingerprint when one is given."""
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last'; got {which!r}")
    ckpt = load_checkpoint(path)
    if vocab_fingerprint is not None and ckpt["vocab_fingerprint"] != vocab_fingerprint:
        raise CheckpointError(f"{path} was trained on another vocabulary (fingerprint differs)")
    config = TrainConfig.from_dict(ckpt["config"])
    model = build_model(config, ckpt["vocab_size"])
    model.load_state_dict(ckpt["best_model" if which == "best" else "model"])
    meta = {
        k: ckpt[k]
        for k in ("epoch", "best_epoch", "best_valid_perplexity", "vocab_fingerprint", "history")
    }
    return model, config, meta
