"""The experiment configuration: one typed object, loaded from TOML, overridable from the CLI.

Validated once, before any work starts; a typo in a key or a bad value is a one-line
``ConfigError`` naming the key. Library functions never take this object: each step receives
plain arguments taken from its own section.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lmpipe.lm.corpus import check_name, load_registry
from lmpipe.lm.errors import ConfigError, LmpipeError
from lmpipe.lm.tokenize import NORMALIZERS, TOKENIZERS

SMOOTHING = ("mle", "add-k", "witten-bell", "absolute", "kn", "mkn", "katz", "stupid-backoff")
ARCHITECTURES = ("rnn-scratch", "gru-scratch", "lstm-scratch", "rnn", "rnn-relu", "gru", "lstm")


def _plain_name(v: str, what: str) -> str:
    try:
        return check_name(v, what)
    except LmpipeError as e:
        raise ValueError(str(e)) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CorpusConfig(_Strict):
    """A corpus of the experiment: a registry name, or a user's own text with a name."""

    name: str
    path: str | None = None
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    tokenizer: str | None = None
    prefixes: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        return _plain_name(v, "corpus name")

    @model_validator(mode="after")
    def _known(self) -> CorpusConfig:
        own = self.path or self.train or self.test
        if not own and self.name not in load_registry():
            known = ", ".join(sorted(load_registry()))
            raise ValueError(
                f"unknown corpus {self.name!r} (known: {known}); give `path` or `train`/`test` "
                "for your own corpus"
            )
        if self.train and not self.test:
            raise ValueError(f"corpus {self.name!r}: `train` needs `test` too")
        return self


class VocabConfig(_Strict):
    min_freq: int = Field(1, ge=1)
    max_size: int | None = Field(None, ge=1)
    normalize: str = "none"
    encoding_errors: Literal["strict", "replace"] = "strict"

    @field_validator("normalize")
    @classmethod
    def _norm(cls, v: str) -> str:
        if v not in NORMALIZERS:
            raise ValueError(f"unknown normalization {v!r}; choose one of {', '.join(NORMALIZERS)}")
        return v


class NgramConfig(_Strict):
    orders: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    methods: list[str] = Field(default_factory=lambda: ["add-k", "witten-bell", "kn", "mkn"])
    k: float = Field(1.0, gt=0)
    discount_fallback: bool = True

    @field_validator("orders")
    @classmethod
    def _orders(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one order")
        bad = [n for n in v if n < 1 or n > 9]
        if bad:
            raise ValueError(f"order {bad[0]} is out of range; orders are 1..9")
        return sorted(set(v))

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        for m in v:
            if m not in SMOOTHING:
                raise ValueError(f"unknown smoothing {m!r}; choose from {', '.join(SMOOTHING)}")
        return v


class NeuralConfig(_Strict):
    """Neural models of the experiment. The defaults are the quick profile: a 256-unit model per
    architecture, ten epochs of Adam with dropout, the best validation epoch kept (about half a
    minute per model on The Time Machine with 2 CPU cores). Epoch counts, not time budgets, so
    that a run is exactly reproducible whichever task runner executes it."""

    architectures: list[str] = Field(default_factory=lambda: ["rnn", "gru", "lstm"])
    embed: int = Field(128, ge=1)
    hidden: int = Field(256, ge=1)
    layers: int = Field(1, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    tied: bool = False
    epochs: int | None = Field(10, ge=1)
    max_minutes: float | None = Field(None, gt=0)
    seq_len: int = Field(64, ge=1)
    batch_size: int = Field(32, ge=1)
    sampling: Literal["sequential", "random"] = "sequential"
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(0.003, gt=0)
    clip: float = Field(1.0, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    lr_decay: float = Field(1.0, gt=0, le=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    patience: int = Field(3, ge=1)
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("architectures")
    @classmethod
    def _archs(cls, v: list[str]) -> list[str]:
        for a in v:
            if a not in ARCHITECTURES:
                raise ValueError(
                    f"unknown architecture {a!r}; choose from {', '.join(ARCHITECTURES)}"
                )
        return v

    @model_validator(mode="after")
    def _budget(self) -> NeuralConfig:
        if self.epochs is None and self.max_minutes is None:
            raise ValueError("give `epochs`, `max_minutes` or both")
        for arch in self.overrides:
            if arch not in self.architectures:
                raise ValueError(f"override for {arch!r}, which is not among `architectures`")
        return self

    def for_arch(self, arch: str) -> dict[str, Any]:
        """The training settings of one architecture: the section plus its overrides."""
        base = self.model_dump(exclude={"architectures", "overrides"})
        merged = {**base, **self.overrides.get(arch, {})}
        merged["arch"] = arch
        # re-validate the merged values through the same rules
        NeuralConfig(**{k: v for k, v in merged.items() if k != "arch"}, architectures=[arch])
        return merged


class GenerationConfig(_Strict):
    length: int = Field(60, ge=1)
    temperature: float = Field(0.8, gt=0)
    top_k: int | None = Field(None, ge=1)
    seed: int = 0


class ScheduleConfig(_Strict):
    cron: str = "0 3 * * *"
    timezone: str = "UTC"


class ExperimentConfig(_Strict):
    name: str = "default"
    corpora: list[CorpusConfig] = Field(
        default_factory=lambda: [CorpusConfig(name="timemachine"), CorpusConfig(name="jaychou")]
    )
    tokenizers: list[str] | None = None
    vocab: VocabConfig = Field(default_factory=VocabConfig)
    ngram: NgramConfig = Field(default_factory=NgramConfig)
    neural: NeuralConfig = Field(default_factory=NeuralConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _plain_name(v, "experiment name")

    @field_validator("corpora", mode="before")
    @classmethod
    def _corpora(cls, v: Any) -> Any:
        if not isinstance(v, list) or not v:
            raise ValueError("give at least one corpus")
        return [{"name": c} if isinstance(c, str) else c for c in v]

    @field_validator("tokenizers")
    @classmethod
    def _tokenizers(cls, v: list[str] | None) -> list[str] | None:
        for t in v or []:
            if t not in TOKENIZERS:
                raise ValueError(f"unknown tokenizer {t!r}; choose from {', '.join(TOKENIZERS)}")
        return v

    def tokenizers_for(self, corpus: CorpusConfig) -> list[str]:
        if self.tokenizers:
            return list(self.tokenizers)
        if corpus.tokenizer:
            return [corpus.tokenizer]
        entry = load_registry().get(corpus.name)
        return [entry.tokenizer if entry else "char"]


PROFILES: dict[str, dict[str, Any]] = {
    # a few minutes on a laptop CPU: small models, a few epochs
    "quick": {},
    # hours: bigger models trained to convergence within a time budget per model
    "full": {
        "ngram": {"orders": [1, 2, 3, 4, 5, 6, 7]},
        "neural": {
            "hidden": 512,
            "embed": 128,
            "layers": 2,
            "dropout": 0.25,
            "epochs": 60,
            "max_minutes": 20.0,
            "seq_len": 128,
            "batch_size": 64,
        },
    },
}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def _format_error(e: ValidationError, origin: str) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (a typo?)"
    value = err.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) and value is not None else ""
    return f"{origin}: {where}: {msg}{shown}"


def build_config(
    file: Path | None = None,
    profile: str = "quick",
    overrides: dict[str, Any] | None = None,
) -> ExperimentConfig:
    """Defaults < profile < TOML file < command-line overrides, validated once."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    data: dict[str, Any] = dict(PROFILES[profile])
    origin = "config"
    if file is not None:
        origin = str(file)
        try:
            with open(file, "rb") as f:
                data = _deep_merge(data, tomllib.load(f))
        except FileNotFoundError:
            raise ConfigError(f"config file {file} does not exist; check the path") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{file} is not valid TOML ({e}); fix the syntax") from None
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return ExperimentConfig(**data)
    except ValidationError as e:
        raise ConfigError(_format_error(e, origin)) from None
