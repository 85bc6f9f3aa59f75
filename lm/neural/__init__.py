"""Recurrent neural language models: d2l's from-scratch RNN/GRU/LSTM and torch.nn ones, their
minibatching, training (with checkpoints and exact resumption), exact evaluation and generation.

Token ids follow ``lm.vocab`` (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, ``<pad>`` 3); models never
predict ``<s>`` or ``<pad>``. Evaluation returns ``lm.metrics.TokenScores``.
"""

from lm.neural.batching import batches, random_windows, sequential_windows
from lm.neural.checkpoint import CheckpointError, checkpoint_path, load_checkpoint, load_model
from lm.neural.config import ARCHS, ConfigError, TrainConfig
from lm.neural.device import resolve_device
from lm.neural.evaluate import evaluate, perplexity
from lm.neural.factory import build_model
from lm.neural.generate import generate
from lm.neural.models import LanguageModel, count_parameters
from lm.neural.models_scratch import GRUScratch, LSTMScratch, RNNScratch
from lm.neural.models_torch import TorchRNNLM
from lm.neural.training import TrainingDiverged, TrainResult, clip_gradients, train

__all__ = [
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
