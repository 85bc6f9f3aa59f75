"""The neural architectures lmpipe knows: one entry each, the single list that the settings, the
command line, the experiment config and the report read.

Adding an architecture is one entry here plus its model (a ``LanguageModel`` in this package)
and its tests. Models are imported when first built, so that listing the architectures (the CLI
help, config validation) does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings module imports this one: no import at run time
    from lmpipe.lm.neural.config import TrainConfig
    from lmpipe.lm.neural.models import LanguageModel


def _scratch(name: str) -> Callable[[TrainConfig, int], LanguageModel]:
    def build(config: TrainConfig, vocab_size: int) -> LanguageModel:
        from lmpipe.lm.neural import models_scratch

        cls = {"rnn": models_scratch.RNNScratch, "gru": models_scratch.GRUScratch,
               "lstm": models_scratch.LSTMScratch}[name]  # fmt: skip
        return cls(vocab_size, config.hidden, config.dropout)

    return build


def _torch(cell: str) -> Callable[[TrainConfig, int], LanguageModel]:
    def build(config: TrainConfig, vocab_size: int) -> LanguageModel:
        from lmpipe.lm.neural.models_torch import TorchRNNLM

        return TorchRNNLM(
            vocab_size, cell, config.embed_size, config.hidden, config.layers, config.dropout,
            config.tied, config.embed_dropout, config.weight_drop,
        )  # fmt: skip

    return build


def _transformer(config: TrainConfig, vocab_size: int) -> LanguageModel:
    from lmpipe.lm.neural.models_transformer import TransformerLM

    return TransformerLM(
        vocab_size, config.hidden, config.layers, config.heads, config.context, config.dropout,
        config.embed_dropout,
    )  # fmt: skip


def _transformer_check(config: TrainConfig) -> str | None:
    if config.hidden % config.heads:
        return f"transformer: hidden={config.hidden} must be a multiple of heads={config.heads}"
    if not config.tied:
        return "transformer: its decoder is tied to the embedding (tied = true)"
    if config.sampling != "random":
        return "transformer: it trains on independent windows (sampling = random)"
    if config.weight_drop:
        return "transformer: weight_drop is for the recurrent models; set it to 0"
    return None


# A small GPT for a CPU, chosen by validation perplexity after 90 s on The Time Machine (2 cores,
# docs/neural-defaults.md): 2 layers of 128 with 4 heads over 64 characters, AdamW at 0.01 with a
# short warm-up and cosine decay, light weight decay, no dropout (a few minutes of training do not
# overfit); random windows of its context, as nanoGPT samples its blocks.
TRANSFORMER: dict[str, Any] = {
    "hidden": 128,
    "layers": 2,
    "heads": 4,
    "context": 64,
    "batch_size": 32,
    "sampling": "random",
    "optimizer": "adamw",
    "lr": 0.01,
    "weight_decay": 0.01,
    "warmup": 50,
    # its own regularization, not a corpus's recurrent recipe (locked dropout of 0.7 and more)
    "dropout": 0.0,
    "embed_dropout": 0.0,
    "weight_drop": 0.0,
    "tied": True,
}


def _one_layer_untied(config: TrainConfig) -> str | None:
    if config.layers != 1:
        return f"{config.arch} has one layer (d2l's from-scratch model); got layers={config.layers}"
    if config.tied:
        return f"{config.arch} cannot tie weights; use rnn, gru or lstm"
    if config.embed_dropout:
        return f"{config.arch} has no embedding (one-hot inputs): embed_dropout must be 0"
    if config.weight_drop:
        return f"{config.arch}: weight_drop is for the torch rnn, gru and lstm; set it to 0"
    return None


# d2l's recipe for its from-scratch models (one-hot inputs, N(0, 0.01) weights): plain SGD at
# learning rate 1 with clipping; no embedding to tie or drop out. Adam at the torch models'
# rate learns them no faster (benchmarks/neural_defaults.py: valid 8.5 against 8.0 for SGD).
# The book's 256 units and no weight averaging whatever a corpus's own settings give the concise
# models (on the Jay Chou lyrics 384 units give valid 281.4 against 266.9, averaging 269.9).
D2L: dict[str, Any] = {
    "hidden": 256,
    "ema": 0.0,
    "optimizer": "sgd",
    "lr": 1.0,
    "schedule": "plateau",
    "lr_decay": 0.5,
    "tied": False,
    "embed_dropout": 0.0,
    "dropout": 0.0,
    "weight_drop": 0.0,
}


@dataclass(frozen=True)
class Architecture:
    """``build(config, vocab_size)`` makes a fresh model (it draws from torch's global RNG);
    ``check(config)`` says what is wrong with settings this architecture cannot take (None if
    nothing); ``defaults`` are settings this architecture needs other than the common ones."""

    name: str
    summary: str
    colour: str
    build: Callable[[TrainConfig, int], LanguageModel]
    check: Callable[[TrainConfig], str | None] = field(default=lambda config: None)
    defaults: dict[str, Any] = field(default_factory=dict)
    from_scratch: bool = False
    windowed: bool = False  # sees a bounded context, not a carried state (the transformer)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("rnn-scratch", "d2l's from-scratch RNN: one-hot inputs, tanh, one layer",
                     "#c5b0d5", _scratch("rnn"), _one_layer_untied, D2L, from_scratch=True),
        Architecture("gru-scratch", "d2l's from-scratch GRU, one layer", "#98df8a",
                     _scratch("gru"), _one_layer_untied, D2L, from_scratch=True),
        Architecture("lstm-scratch", "d2l's from-scratch LSTM, one layer", "#aec7e8",
                     _scratch("lstm"), _one_layer_untied, D2L, from_scratch=True),
        Architecture("rnn", "torch.nn.RNN (tanh) with embedding and decoder", "#9467bd",
                     _torch("rnn")),
        Architecture("rnn-relu", "torch.nn.RNN (ReLU) with embedding and decoder", "#393b79",
                     _torch("rnn-relu")),
        Architecture("gru", "torch.nn.GRU with embedding and decoder", "#2ca02c", _torch("gru")),
        Architecture("lstm", "torch.nn.LSTM with embedding and decoder", "#1f77b4",
                     _torch("lstm")),
        Architecture("transformer", "a small causal Transformer (nanoGPT's pre-norm GPT)",
                     "#5254a3", _transformer, _transformer_check, TRANSFORMER, windowed=True),
    )
}  # fmt: skip
ARCHS: tuple[str, ...] = tuple(ARCHITECTURES)
