"""The one typed configuration of a neural training, validated when it is made.

A ``TrainConfig`` is plain data (``as_dict``/``from_dict`` round-trip through JSON and through a
``weights_only`` checkpoint), so it travels with every checkpoint that it produced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from lmpipe.lm.errors import ConfigError

Arch = Literal["rnn-scratch", "gru-scratch", "lstm-scratch", "rnn", "rnn-relu", "gru", "lstm"]
Sampling = Literal["sequential", "random"]
Optimizer = Literal["sgd", "adam", "adamw"]
Device = Literal["auto", "cpu", "cuda"]

ARCHS: tuple[str, ...] = (
    "rnn-scratch",
    "gru-scratch",
    "lstm-scratch",
    "rnn",
    "rnn-relu",
    "gru",
    "lstm",
)
SCRATCH_ARCHS: tuple[str, ...] = ("rnn-scratch", "gru-scratch", "lstm-scratch")

# Fields that may differ between a checkpoint and the run resuming it: they change when or where
# training stops or runs, never what one epoch computes.
RESUMABLE_CHANGES: frozenset[str] = frozenset({"epochs", "max_minutes", "device"})


@dataclass(frozen=True)
class TrainConfig:
    """Model, minibatching, optimisation and stopping of one training.

    ``embed`` is the embedding size of the library models (scratch models look the input up
    directly in ``W_xh``, d2l's one-hot product); ``tied`` shares the embedding with the output
    layer and needs ``embed == hidden``. Training stops after ``epochs`` epochs, after
    ``max_minutes`` of wall clock (validation included; an epoch is cut short to keep it, but at
    least one batch and one validation always run), or after ``patience`` epochs without a
    better validation perplexity, whichever comes first; at least one of ``epochs`` and
    ``max_minutes`` must be set. On a plateau (no improvement) the learning rate is multiplied by
    ``lr_decay`` (1.0 disables it).
    """

    arch: Arch = "lstm"
    embed: int = 128
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.0
    tied: bool = False
    epochs: int | None = 10
    max_minutes: float | None = None
    seq_len: int = 35
    batch_size: int = 32
    sampling: Sampling = "sequential"
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    clip: float | None = 1.0
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    patience: int | None = None
    seed: int = 0
    device: Device = "auto"
    amp: bool = False
    eval_window: int = 256

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        need(self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}; got {self.arch!r}")
        need(
            self.sampling in ("sequential", "random"),
            f"sampling must be sequential or random; got {self.sampling!r}",
        )
        need(
            self.optimizer in ("sgd", "adam", "adamw"),
            f"optimizer must be sgd, adam or adamw; got {self.optimizer!r}",
        )
        need(
            self.device in ("auto", "cpu", "cuda"),
            f"device must be auto, cpu or cuda; got {self.device!r}",
        )
        for name in ("embed", "hidden", "layers", "seq_len", "batch_size", "eval_window"):
            need(getattr(self, name) >= 1, f"{name} must be at least 1; got {getattr(self, name)}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1); got {self.dropout}")
        need(self.lr > 0, f"lr must be positive; got {self.lr}")
        need(self.clip is None or self.clip > 0, f"clip must be positive or None; got {self.clip}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0; got {self.weight_decay}")
        need(0.0 < self.lr_decay <= 1.0, f"lr_decay must be in (0, 1]; got {self.lr_decay}")
        need(
            self.patience is None or self.patience >= 1,
            f"patience must be >= 1 or None; got {self.patience}",
        )
        need(
            self.epochs is None or self.epochs >= 1,
            f"epochs must be >= 1 or None; got {self.epochs}",
        )
        need(
            self.max_minutes is None or self.max_minutes > 0,
            f"max_minutes must be positive or None; got {self.max_minutes}",
        )
        need(
            self.epochs is not None or self.max_minutes is not None,
            "set epochs, max_minutes or both",
        )
        if self.arch in SCRATCH_ARCHS:
            need(
                self.layers == 1,
                f"{self.arch} has one layer (d2l's from-scratch model); got layers={self.layers}",
            )
            need(not self.tied, f"{self.arch} cannot tie weights; use rnn, gru or lstm")
        if self.tied:
            need(
                self.embed == self.hidden,
                f"tied weights need embed == hidden; got {self.embed} and {self.hidden}",
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys (a typo must not pass silently)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        return cls(**d)
