"""The settings of a neural training, defined once: every default lives here.

``TrainSettings`` holds what any architecture takes (model size, regularization, minibatching,
optimisation, stopping); ``TrainConfig`` adds the architecture and checks the combination. The
experiment's ``[neural]`` section (``lmpipe.lm.config.NeuralConfig``), ``lmpipe train``'s
options and the step flows are views of these fields, so a default changed here changes
everywhere. A ``TrainConfig`` is plain data (``as_dict``/``from_dict`` round-trip through JSON
and through a ``weights_only`` checkpoint), so it travels with every checkpoint it produced.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lmpipe.lm.errors import ConfigError, validation_message
from lmpipe.lm.neural.registry import ARCHITECTURES, ARCHS

SCRATCH_ARCHS: tuple[str, ...] = tuple(a.name for a in ARCHITECTURES.values() if a.from_scratch)

# Fields that may differ between a checkpoint and the run resuming it: they change when or where
# training stops or runs, never what one epoch computes. A training is found again (to resume or
# extend it) whatever their values. Under the cosine schedule the epoch count and the budget set
# every update's learning rate, so there only the device may change.
RESUMABLE_CHANGES: frozenset[str] = frozenset({"epochs", "max_minutes", "device"})


def resumable_changes(settings: dict[str, Any]) -> frozenset[str]:
    """The settings a checkpoint of ``settings`` can be resumed or extended across."""
    return RESUMABLE_CHANGES if settings.get("schedule") != "cosine" else frozenset({"device"})


class TrainSettings(BaseModel):
    """Model, minibatching, optimisation and stopping of one training (any architecture).

    Training stops after ``epochs`` epochs, after ``max_minutes`` of wall clock (validation
    included; an epoch is cut short to keep it, but at least one batch and one validation always
    run), or after ``patience`` epochs without a better validation perplexity, whichever comes
    first; at least one of ``epochs`` and ``max_minutes`` must be set. On a plateau (no
    improvement) the learning rate is multiplied by ``lr_decay`` (1 disables it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)

    embed: int | None = Field(
        None, ge=1, description="embedding size (torch models; none: the hidden size)"
    )
    hidden: int = Field(256, ge=1, description="hidden units per layer")
    layers: int = Field(1, ge=1, description="recurrent layers")
    dropout: float = Field(
        0.1, ge=0, lt=1, description="dropout between layers and before the output layer"
    )
    embed_dropout: float = Field(
        0.0, ge=0, lt=1, description="dropout on the embedded inputs (torch models)"
    )
    weight_drop: float = Field(
        0.0, ge=0, lt=1, description="dropout on the recurrent weights (torch rnn, gru, lstm)"
    )
    tied: bool = Field(True, description="share the embedding with the output layer")
    epochs: int | None = Field(6, ge=1, description="epochs (none: until the time budget)")
    max_minutes: float | None = Field(None, gt=0, description="wall-clock budget in minutes")
    seq_len: int = Field(
        32, ge=1, description="BPTT window in tokens (the transformer's is its context)"
    )
    heads: int = Field(4, ge=1, description="transformer: attention heads (hidden / heads each)")
    context: int = Field(
        128, ge=2, description="transformer: inputs it attends to (block size, training window)"
    )
    stride: int | None = Field(
        None, ge=1, description="transformer: tokens scored per evaluation window (none: context/2)"
    )
    batch_size: int = Field(16, ge=1, description="windows per minibatch")
    sampling: Literal["sequential", "random"] = Field(
        "sequential", description="sequential (state carried) or random windows (d2l)"
    )
    optimizer: Literal["sgd", "adam", "adamw"] = Field("adam", description="sgd, adam or adamw")
    lr: float = Field(0.004, gt=0, description="learning rate")
    clip: float | None = Field(1.0, gt=0, description="max global gradient norm (0: none)")
    weight_decay: float = Field(0.0, ge=0, description="weight decay (L2; decoupled in adamw)")
    ema: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="decay per update of a moving average of the weights, the weights that "
        "are validated and kept (0: none)",
    )
    schedule: Literal["plateau", "cosine"] = Field(
        "cosine", description="learning-rate schedule: plateau decay or cosine decay"
    )
    warmup: int = Field(0, ge=0, description="updates of linear learning-rate warm-up")
    lr_decay: float = Field(
        1.0, gt=0, le=1, description="plateau: learning-rate factor per epoch without improvement"
    )
    min_lr: float = Field(0.05, ge=0, le=1, description="cosine: final learning rate / lr")
    patience: int | None = Field(
        3, ge=0, description="stop after this many epochs without improvement (0: never)"
    )
    seed: int = Field(0, description="seed of every random draw")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto, cpu or cuda")
    amp: bool = Field(
        False,
        description="bf16 matmuls in training: autocast on CUDA; on CPUs with native bf16 "
        "(AVX512-BF16/AMX) the output layer's (elsewhere it is off)",
    )
    eval_window: int = Field(256, ge=1, description="tokens per evaluation window (memory only)")

    @field_validator("patience", "clip", mode="before")
    @classmethod
    def _zero_is_none(cls, v: Any) -> Any:
        """0 means none (never stop early, no clipping): what a command-line option can say."""
        return None if v == 0 else v

    @model_validator(mode="after")
    def _budget(self) -> TrainSettings:
        if self.epochs is None and self.max_minutes is None:
            raise ValueError("set epochs, max_minutes or both")
        return self


class TrainConfig(TrainSettings):
    """The settings of one training: an architecture (``lmpipe.lm.neural.registry``) and the
    settings it takes. ``tied`` needs ``embed == hidden``."""

    arch: str = Field("gru", description="architecture")

    # Made directly (not as part of an experiment config), a bad value is a ConfigError.
    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:  # kept as the cause: the CLI names the option from it
            raise ConfigError(validation_message(e)) from e

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        if v not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {v!r}; choose one of: {', '.join(ARCHS)}")
        return v

    @model_validator(mode="after")
    def _combination(self) -> TrainConfig:
        problem = ARCHITECTURES[self.arch].check(self)
        if problem:
            raise ValueError(problem)
        if self.tied and self.embed_size != self.hidden:
            raise ValueError(
                f"tied weights need embed == hidden; got embed={self.embed}, hidden={self.hidden}"
            )
        return self

    @property
    def window(self) -> int:
        """Tokens per training window: the context for the transformer, else ``seq_len``."""
        return self.context if ARCHITECTURES[self.arch].windowed else self.seq_len

    @property
    def eval_stride(self) -> int:
        """Tokens scored per sliding evaluation window (the transformer)."""
        return min(self.stride or max(1, self.context // 2), self.context)

    @property
    def embed_size(self) -> int:
        """The embedding size: ``embed``, or the hidden size when it is not set."""
        return self.embed or self.hidden

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys (a typo must not pass silently)."""
        return cls(**d)

    @staticmethod
    def merged(
        arch: str, given: dict[str, Any] | None = None, corpus: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """What ``arch`` is trained with, before validation: the defaults here, then the
        corpus's own (``corpus``: what its registry entry or its experiment config says a
        corpus of its size needs), then the architecture's own, then ``given`` (what a user
        set, in a config or on the command line). A time budget given without an epoch count
        trains until the budget."""
        given = dict(given or {})
        if given.get("max_minutes") is not None and "epochs" not in given:
            given["epochs"] = None
        own = ARCHITECTURES[arch].defaults if arch in ARCHITECTURES else {}
        return {**(corpus or {}), **own, **given, "arch": arch}

    @classmethod
    def for_arch(
        cls, arch: str, given: dict[str, Any] | None = None, corpus: dict[str, Any] | None = None
    ) -> TrainConfig:
        """The validated settings of ``arch`` (:meth:`merged`)."""
        return cls(**cls.merged(arch, given, corpus))


TRAIN_FIELDS: tuple[str, ...] = tuple(TrainSettings.model_fields)
