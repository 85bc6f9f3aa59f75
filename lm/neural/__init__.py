"""Recurrent neural language models: d2l's from-scratch RNN/GRU/LSTM and torch.nn ones, their
minibatching, training (with checkpoints and exact resumption), exact evaluation and generation.

Token ids follow ``lm.vocab`` (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, ``<pad>`` 3); models never
predict ``<s>`` or ``<pad>``. Evaluation returns ``lm.metrics.TokenScores``.
"""

from lmpipe.lm.neural.batching import batches, random_windows, sequential_windows
from lmpipe.lm.neural.checkpoint import (
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    load_model,
)
from lmpipe.lm.neural.config import ConfigError, TrainConfig
from lmpipe.lm.neural.device import resolve_device
from lmpipe.lm.neural.evaluate import evaluate, perplexity
from lmpipe.lm.neural.factory import build_model
from lmpipe.lm.neural.generate import generate
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
