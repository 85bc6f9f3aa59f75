"""Build the model a ``TrainConfig`` names."""

from __future__ import annotations

from lmpipe.lm.neural.config import TrainConfig
from lmpipe.lm.neural.models import LanguageModel
from lmpipe.lm.neural.models_scratch import GRUScratch, LSTMScratch, RNNScratch
from lmpipe.lm.neural.models_torch import TorchRNNLM

SCRATCH: dict[str, type[RNNScratch | GRUScratch | LSTMScratch]] = {
    "rnn-scratch": RNNScratch,
    "gru-scratch": GRUScratch,
    "lstm-scratch": LSTMScratch,
}


def build_model(config: TrainConfig, vocab_size: int) -> LanguageModel:
    """A freshly initialised model (draws from torch's global RNG: seed it first)."""
    if config.arch in SCRATCH:
        return SCRATCH[config.arch](vocab_size, config.hidden, config.dropout)
    return TorchRNNLM(
        vocab_size,
        config.arch,
        config.embed,
        config.hidden,
        config.layers,
        config.dropout,
        config.tied,
    )
