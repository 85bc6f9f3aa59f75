"""The experiment configuration: one typed object, loaded from TOML, overridable from the CLI.

Validated once, before any work starts; a typo in a key or a bad value is a one-line
``ConfigError`` naming the key. Library functions never take this object: each step receives
plain arguments taken from its own section.
"""

from __future__ import annotations

import math
import tomllib
from itertools import product
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from lmpipe.lm.corpus import check_name, load_registry
from lmpipe.lm.errors import ConfigError, LmpipeError, validation_message
from lmpipe.lm.fileio import parse_size
from lmpipe.lm.neural.config import TRAIN_FIELDS, TrainConfig, TrainSettings
from lmpipe.lm.neural.registry import ARCHITECTURES
from lmpipe.lm.ngram.registry import MAX_ORDER, SMOOTHING
from lmpipe.lm.tokenize import NORMALIZERS, TOKENIZER_NAMES


def _plain_name(v: str, what: str) -> str:
    try:
        return check_name(v, what)
    except LmpipeError as e:
        raise ValueError(str(e)) from None


def _tokenizer_names(names: list[str]) -> list[str]:
    for t in names:
        if t not in TOKENIZER_NAMES:
            raise ValueError(f"unknown tokenizer {t!r}; choose from {', '.join(TOKENIZER_NAMES)}")
    if len(set(names)) < len(names):
        raise ValueError(f"tokenizers {names}: each tokenizer once")
    if not names:
        raise ValueError("tokenizers = []: name at least one tokenizer")
    return names


class _Strict(BaseModel):
    # strict: a value of the wrong type is refused, not coerced (tied = "yes", hidden = "64")
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


class CorpusConfig(_Strict):
    """A corpus of the experiment: a registry name, or a user's own text with a name."""

    name: str
    path: str | None = None
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    tokenizer: str | None = None
    tokenizers: list[str] | None = Field(
        None, description="several tokenizations of this corpus, compared in the report"
    )
    prefixes: list[str] = Field(default_factory=list)
    neural: dict[str, Any] = Field(
        default_factory=dict,
        description="training settings this corpus needs (for a registry corpus, on top of "
        "its own in data/corpora.toml)",
    )

    @field_validator("neural")
    @classmethod
    def _training_settings(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if name not in TRAIN_FIELDS:
                raise ValueError(f"neural.{name}: not a training setting (a typo?)")
        return v

    def neural_defaults(self) -> dict[str, Any]:
        """The corpus's own training settings: its registry entry's, then the config's."""
        entry = load_registry().get(self.name)
        own = entry.neural if entry is not None and not (self.path or self.train) else {}
        return {**own, **self.neural}

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        return _plain_name(v, "corpus name")

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, v: str | None) -> str | None:
        return v if v is None else _tokenizer_names([v])[0]

    @field_validator("tokenizers")
    @classmethod
    def _tokenizer_list(cls, v: list[str] | None) -> list[str] | None:
        return v if v is None else _tokenizer_names(v)

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
        if self.tokenizer and self.tokenizers:
            raise ValueError(
                f"corpus {self.name!r}: give `tokenizer` (one) or `tokenizers` (a list), not both"
            )
        if self.path and (self.train or self.valid or self.test):
            raise ValueError(
                f"corpus {self.name!r}: give `path` (one text, split 80/10/10) or "
                "`train`/`valid`/`test`, not both"
            )
        return self


class VocabConfig(_Strict):
    """How a corpus becomes tokens and a vocabulary (the training split's types)."""

    min_freq: int | None = Field(
        None,
        ge=1,
        description="keep tokens seen at least this often in training (the rest are <unk>; "
        "none: the corpus's own policy, 2 for jaychou, else 1)",
    )
    max_size: int | None = Field(None, ge=1, description="keep at most this many word types")
    normalize: str = Field(
        "none", description="none, or d2l (letters and spaces, lower case, as d2l's TimeMachine)"
    )
    # chosen by bits per byte on validation of both default corpora (docs/tokenizers.md)
    bpe_vocab_size: int = Field(
        1000,
        ge=256,
        le=1_000_000,
        description="units of --tokenizer bpe: the 256 bytes and the merges learned on the "
        "training split",
    )
    encoding_errors: Literal["strict", "replace"] = Field(
        "strict", description="strict (an error on bad UTF-8) or replace (with U+FFFD, counted)"
    )

    @field_validator("normalize")
    @classmethod
    def _norm(cls, v: str) -> str:
        if v not in NORMALIZERS:
            raise ValueError(f"unknown normalization {v!r}; choose one of {', '.join(NORMALIZERS)}")
        return v


class NgramConfig(_Strict):
    """The n-gram models of the experiment: every method (``lmpipe.lm.ngram.registry``) at every
    order. ``engine`` and ``memory_limit`` say where mkn models are estimated (identical
    results either way: they are not part of any model's identity)."""

    orders: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    methods: list[str] = Field(default_factory=lambda: ["add-k", "witten-bell", "kn", "mkn"])
    k: float = Field(SMOOTHING["add-k"].params["k"], gt=0, description="add-k's k (1 = Laplace)")
    discount: float | None = Field(
        None, ge=0, le=1, description="a fixed discount for absolute and kn (none: estimated)"
    )
    discount_fallback: bool = Field(
        True, description="mkn: KenLM's fallback discounts where they cannot be estimated"
    )
    engine: Literal["auto", "memory", "duckdb"] = Field(
        "auto", description="where mkn models of order >= 2 are estimated"
    )
    memory_limit: str | None = Field(
        None, description="DuckDB's memory limit for counting and out-of-core estimation"
    )
    prune: list[float] = Field(
        default_factory=list,
        description="relative-entropy pruning thresholds (SRILM's ngram -prune): each backoff "
        "model of the highest order is also pruned at each, for the report's size-against-"
        "perplexity curve",
    )
    prune_min_order: int = Field(
        2, ge=2, le=MAX_ORDER, description="the lowest order pruning removes n-grams of"
    )

    @field_validator("prune")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        bad = [t for t in v if not (math.isfinite(t) and t > 0)]
        if bad:
            raise ValueError(f"threshold {bad[0]} must be > 0 (the unpruned model is always there)")
        return sorted(set(v))

    @field_validator("orders")
    @classmethod
    def _orders(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one order")
        bad = [n for n in v if n < 1 or n > MAX_ORDER]
        if bad:
            raise ValueError(f"order {bad[0]} is out of range; orders are 1..{MAX_ORDER}")
        return sorted(set(v))

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str]) -> list[str]:
        for m in v:
            if m not in SMOOTHING:
                raise ValueError(f"unknown smoothing {m!r}; choose from {', '.join(SMOOTHING)}")
        return v

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, v: str | None) -> str | None:
        if v is not None:
            parse_size(v)
        return v

    def params(self, method: str) -> dict[str, Any]:
        """The parameters ``method`` takes from this section, and nothing else (so that changing
        one method's parameter leaves the other methods' cache keys alone)."""
        names = set(SMOOTHING[method].params)
        return {n: getattr(self, n) for n in sorted(names) if n in type(self).model_fields}


class TuneConfig(_Strict):
    """An optional search over the neural settings, per corpus and architecture: every point of
    the grid ``search`` (setting -> values) is a candidate; candidates train ``rungs[0]``
    epochs, the best 1/``eta`` of them (by validation perplexity) go on to ``rungs[1]`` epochs,
    and so on (successive halving, Jamieson & Talwalkar 2016); the last one standing is trained
    with the section's own epochs and scored on test. Selection uses validation only."""

    search: dict[str, list[Any]] = Field(default_factory=dict)
    rungs: list[int] = Field(default_factory=lambda: [1, 3])
    eta: int = Field(2, ge=2)
    max_candidates: int = Field(16, ge=2)

    @field_validator("search")
    @classmethod
    def _settings(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in v.items():
            if name not in TRAIN_FIELDS or name in ("epochs", "max_minutes", "device", "seed"):
                raise ValueError(f"{name!r} is not a setting to search (a typo?)")
            if not isinstance(values, list) or not values:
                raise ValueError(f"search.{name}: give a list of values, e.g. [0.2, 0.4]")
        return v

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, v: list[int]) -> list[int]:
        if not v or any(e < 1 for e in v) or v != sorted(set(v)):
            raise ValueError("rungs are increasing epoch counts, e.g. [1, 3]")
        return v

    @property
    def enabled(self) -> bool:
        return bool(self.search)

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the searched values, in the order given."""
        names = list(self.search)
        return [dict(zip(names, p, strict=True)) for p in product(*self.search.values())]


def _given_only(settings: type[BaseModel]) -> Any:
    """``settings``' fields, each optional with no default: a section that holds what a user
    gave and nothing else, whatever JSON round trips it makes (the defaults stay where they
    are defined, once, and apply under the architecture's and the corpus's own)."""
    fields: dict[str, Any] = {}
    for name, info in settings.model_fields.items():
        optional = FieldInfo.merge_field_infos(info, default=None)
        fields[name] = (Optional[info.annotation], optional)  # noqa: UP045 - a runtime type
    return create_model("TrainSection", __base__=_Strict, __doc__=settings.__doc__, **fields)


TrainSection = _given_only(TrainSettings)


class NeuralConfig(TrainSection):  # type: ignore[misc, valid-type]
    """Neural models of the experiment: the training settings of ``lmpipe.lm.neural.config``
    that the experiment sets (their defaults are defined there, once), the architectures to
    train with them, and per-architecture ``overrides``. Epoch counts, not time budgets, by
    default, so that a run is exactly reproducible whichever task runner executes it."""

    # d2l's from-scratch RNN (the chapter's model) next to the library's GRU and LSTM
    architectures: list[str] = Field(default_factory=lambda: ["rnn-scratch", "gru", "lstm"])
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tune: TuneConfig = Field(default_factory=TuneConfig)

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
    def _each_model(self) -> NeuralConfig:
        for arch in self.overrides:
            if arch not in self.architectures:
                raise ValueError(f"override for {arch!r}, which is not among `architectures`")
        points = self.tune.points() if self.tune.enabled else [{}]
        if len(points) > self.tune.max_candidates:
            raise ValueError(
                f"tune.search has {len(points)} candidates, more than tune.max_candidates "
                f"({self.tune.max_candidates}): search fewer values"
            )
        return self

    def check_models(self, corpus: str, defaults: dict[str, Any]) -> None:
        """Every training of the experiment on one corpus (each architecture, each tuning
        candidate) is valid, before any starts: a ``ValueError`` saying which is not."""
        for arch in self.architectures:
            for point in self.tune.points() if self.tune.enabled else [{}]:
                try:
                    self.train_config(arch, point, defaults)
                except ConfigError as e:
                    where = f" with {point}" if point else ""
                    raise ValueError(f"the settings of {arch}{where} on {corpus}: {e}") from None

    def train_config(
        self, arch: str, point: dict[str, Any] | None = None, corpus: dict[str, Any] | None = None
    ) -> TrainConfig:
        """The training of one architecture on one corpus: the settings given in this section,
        then that architecture's overrides, then a tuning candidate's ``point`` (the corpus's
        own settings, ``corpus``, and the architecture's defaults under all of them)."""
        given = {k: v for k in TRAIN_FIELDS if (v := getattr(self, k)) is not None}
        return TrainConfig.for_arch(
            arch, {**given, **self.overrides.get(arch, {}), **(point or {})}, corpus
        )

    def for_arch(self, arch: str, corpus: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.train_config(arch, corpus=corpus).as_dict()


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

    @model_validator(mode="after")
    def _models(self) -> ExperimentConfig:
        for corpus in self.corpora:
            if self.neural.architectures and corpus.train and not corpus.valid:
                raise ValueError(
                    f"corpus {corpus.name!r} has `train` and `test` but no `valid`: the neural "
                    "models are selected on it; give `valid`, or `path` (split 80/10/10), or set "
                    "neural.architectures = []"
                )
            self.neural.check_models(corpus.name, corpus.neural_defaults())
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "config") -> ExperimentConfig:
        """A config from its JSON form (a flow's or a deployment's parameter); a bad value is
        a one-line ``ConfigError``."""
        try:
            return cls(**data)
        except ValidationError as e:
            raise ConfigError(validation_message(e, origin)) from None

    def corpus(self, name: str) -> CorpusConfig:
        return next(c for c in self.corpora if c.name == name)

    @field_validator("tokenizers")
    @classmethod
    def _tokenizers(cls, v: list[str] | None) -> list[str] | None:
        return v if v is None else _tokenizer_names(v)

    def tokenizers_for(self, corpus: CorpusConfig) -> list[str]:
        """The corpus's own ``tokenizers`` (or ``tokenizer``), else the experiment's, else its
        registry entry's."""
        if corpus.tokenizers:
            return list(corpus.tokenizers)
        if corpus.tokenizer:
            return [corpus.tokenizer]
        if self.tokenizers:
            return list(self.tokenizers)
        entry = load_registry().get(corpus.name)
        return [entry.tokenizer if entry else "char"]


PROFILES: dict[str, dict[str, Any]] = {
    # a few minutes on a laptop CPU: small models, a few epochs
    "quick": {},
    # hours: bigger models trained to convergence within a time budget per model
    "full": {
        "ngram": {"orders": [1, 2, 3, 4, 5, 6, 7]},
        "neural": {
            "hidden": 512,  # embeddings tied to the output, so 512 too
            "dropout": 0.25,
            "epochs": 60,
            "max_minutes": 20.0,
            "seq_len": 128,
            "batch_size": 64,
            "architectures": ["rnn-scratch", "gru", "lstm", "transformer"],
            # two layers for the torch models (d2l's from-scratch ones have one); the
            # transformer keeps its own recipe (lmpipe.lm.neural.registry), 256 wide
            "overrides": {
                "gru": {"layers": 2},
                "lstm": {"layers": 2},
                "transformer": {"hidden": 256, "seq_len": 32, "batch_size": 32},
            },
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
        raise ConfigError(validation_message(e, origin)) from None
