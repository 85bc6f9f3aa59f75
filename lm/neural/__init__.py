"""Recurrent neural language models: d2l's from-scratch RNN/GRU/LSTM and torch.nn ones, their
minibatching, training (with checkpoints and exact resumption), exact evaluation and generation.

Token ids follow ``lm.vocab`` (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, ``<pad>`` 3); models never
predict ``<s>`` or ``<pad>``. Evaluation returns ``lm.metrics.TokenScores``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# What the package exports, imported when first used: importing a single submodule (the
# registry, say) then costs only that submodule, not every model this package holds.
_EXPORTS = {
    "ARCHITECTURES": "lmpipe.lm.neural.registry",
    "ARCHS": "lmpipe.lm.neural.registry",
    "CheckpointError": "lmpipe.lm.neural.checkpoint",
    "ConfigError": "lmpipe.lm.neural.config",
    "GRUScratch": "lmpipe.lm.neural.models_scratch",
    "LSTMScratch": "lmpipe.lm.neural.models_scratch",
    "LanguageModel": "lmpipe.lm.neural.models",
    "RNNScratch": "lmpipe.lm.neural.models_scratch",
    "TorchRNNLM": "lmpipe.lm.neural.models_torch",
    "TrainConfig": "lmpipe.lm.neural.config",
    "TrainResult": "lmpipe.lm.neural.training",
    "TrainingDiverged": "lmpipe.lm.neural.training",
    "batches": "lmpipe.lm.neural.batching",
    "build_model": "lmpipe.lm.neural.factory",
    "checkpoint_path": "lmpipe.lm.neural.checkpoint",
    "clip_gradients": "lmpipe.lm.neural.training",
    "count_parameters": "lmpipe.lm.neural.models",
    "evaluate": "lmpipe.lm.neural.evaluation",
    "generate": "lmpipe.lm.neural.generation",
    "load_checkpoint": "lmpipe.lm.neural.checkpoint",
    "load_model": "lmpipe.lm.neural.checkpoint",
    "perplexity": "lmpipe.lm.neural.evaluation",
    "random_windows": "lmpipe.lm.neural.batching",
    "resolve_device": "lmpipe.lm.neural.device",
    "sequential_windows": "lmpipe.lm.neural.batching",
    "train": "lmpipe.lm.neural.training",
}

if TYPE_CHECKING:
    from lmpipe.lm.neural.batching import batches, random_windows, sequential_windows
    from lmpipe.lm.neural.checkpoint import (
        CheckpointError,
        checkpoint_path,
        load_checkpoint,
        load_model,
    )
    from lmpipe.lm.neural.config import ConfigError, TrainConfig
    from lmpipe.lm.neural.device import resolve_device
    from lmpipe.lm.neural.evaluation import evaluate, perplexity
    from lmpipe.lm.neural.factory import build_model
    from lmpipe.lm.neural.generation import generate
    from lmpipe.lm.neural.models import LanguageModel, count_parameters
    from lmpipe.lm.neural.models_scratch import GRUScratch, LSTMScratch, RNNScratch
    from lmpipe.lm.neural.models_torch import TorchRNNLM
    from lmpipe.lm.neural.registry import ARCHITECTURES, ARCHS
    from lmpipe.lm.neural.training import TrainingDiverged, TrainResult, clip_gradients, train

__all__ = [
    "ARCHITECTURES",
    "ARCHS",
    "CheckpointError",
    "ConfigError",
    "GRUScratch",
    "LSTMScratch",
    "LanguageModel",
    "RNNScratch",
    "TorchRNNLM",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "batches",
    "build_model",
    "checkpoint_path",
    "clip_gradients",
    "count_parameters",
    "evaluate",
    "generate",
    "load_checkpoint",
    "load_model",
    "perplexity",
    "random_windows",
    "resolve_device",
    "sequential_windows",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
