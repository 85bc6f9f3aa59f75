"""The steps of an experiment as plain functions over files: what the Prefect tasks wrap and
what ``lmpipe ngram`` / ``lmpipe train`` call directly.

Every step is idempotent on a content key: its output folder is named by a hash of its inputs
(the data key, which already covers the corpus content and ingest settings, plus its own
parameters and the code version) and holds ``result.json``, written last. Calling a step whose
``result.json`` exists returns it without recomputing; two runs computing the same step at once
serialize on a lock file, so the second finds the first's result.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmpipe.lm.corpus import CorpusSource, resolve_files, resolve_registry
from lmpipe.lm.errors import ConfigError
from lmpipe.lm.fileio import atomic_write_text, file_lock, sha256_text
from lmpipe.lm.ingest import IngestResult, IngestSettings, data_key, ingest, load_stream, load_vocab
from lmpipe.lm.metrics import summarize
from lmpipe.lm.version import code_version
from lmpipe.lm.vocab import Vocab
from lmpipe.lm.warehouse import Warehouse

EVAL_SPLITS = ("valid", "test")


@dataclass(frozen=True)
class Home:
    """Everything a run writes lives under one folder (``--home``, DESIGN section 7)."""

    root: Path

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse.at_home(self.root)

    @property
    def cache_dir(self) -> Path:
        return self.root / "data" / "cache"

    @property
    def models_dir(self) -> Path:
        return self.root / "data" / "models"

    @property
    def spill_dir(self) -> Path:
        """Where DuckDB spills when counting outgrows its memory limit."""
        return Path(os.environ.get("LMPIPE_SPILL_DIR") or self.root / "data" / "spill")

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def state_dir(self) -> Path:
        return self.root / ".lmpipe"


def model_key(kind: str, data_key: str, params: dict[str, Any]) -> str:
    return sha256_text(kind, data_key, json.dumps(params, sort_keys=True), code_version())[:16]


def _cached(
    out_dir: Path, compute: Callable[[], dict[str, Any]], params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The step's result, computed once: ``files`` names what it stands for on disk. With
    ``params``, a stored result made with other parameters is recomputed (a training asked for
    more epochs continues from its checkpoint)."""
    result_path = out_dir / "result.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(out_dir / ".lock"):
        if result_path.exists():
            cached = json.loads(result_path.read_text(encoding="utf-8"))
            if params is None or cached.get("params") == params:
                cached["cached"] = True
                return cached
        result = compute()
        result["files"] = [str(result_path), *result.get("files", [])]
        atomic_write_text(result_path, json.dumps(result, indent=1, sort_keys=True, default=float))
    result["cached"] = False
    return result


def split_bytes(ing: IngestResult, split: str) -> int:
    return ing.splits[split].bytes


# ----------------------------------------------------------------------------- n-grams


def ngram_result_dir(
    home: Home, ing: IngestResult, method: str, order: int, params: dict[str, Any]
) -> Path:
    key = model_key("ngram", ing.key, {"method": method, "order": order, **params})
    return home.models_dir / "ngram" / key


def evaluate_ngram(
    home: Home,
    ing: IngestResult,
    method: str,
    order: int,
    params: dict[str, Any] | None = None,
    arpa_out: Path | None = None,
) -> dict[str, Any]:
    """Estimate one n-gram model on the training split and score validation and test."""
    from lmpipe.lm import ngram  # heavy imports only where used
    from lmpipe.lm.ngram.mkn_duckdb import estimate_mkn_duckdb

    params = dict(params or {})
    out_dir = ngram_result_dir(home, ing, method, order, params)

    def compute() -> dict[str, Any]:
        vocab = load_vocab(ing.vocab_path)
        engine = ngram_engine(method, order, ing.splits["train"].tokens)
        fit_params = dict(params)
        if fit_params.get("discount_fallback") is True:  # KenLM's default fallback discounts
            del fit_params["discount_fallback"]
        elif fit_params.get("discount_fallback") is False:  # fail instead, as lmplz does
            fit_params["discount_fallback"] = None
        metrics: dict[str, Any] = {}
        with ExitStack() as stack:
            t0 = time.perf_counter()
            if engine == "duckdb":  # scores the token files without loading them
                model = stack.enter_context(
                    estimate_mkn_duckdb(
                        ing.splits["train"].path,
                        order,
                        len(vocab),
                        memory_limit=memory_limit_from_env(),
                        spill_dir=home.spill_dir,
                        **fit_params,
                    )
                )
                score = model.score_tokens
            else:
                train = load_stream(ing.splits["train"].path)
                model = ngram.fit(train, order, method, vocab_size=len(vocab), **fit_params)
                del train

                def score(path: str) -> Any:
                    return model.score(load_stream(path))

            train_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            for split in EVAL_SPLITS:
                if split in ing.splits:
                    scores = score(ing.splits[split].path)
                    metrics[split] = summarize(scores, split_bytes(ing, split)).as_dict()
            eval_s = time.perf_counter() - t1
            if arpa_out is not None:
                ngram.write_arpa(model, arpa_out, list(vocab.tokens))
            size = _ngram_count(model)
        return {
            "family": "ngram",
            "model": method,
            "method": method,
            "n": order,
            "model_key": out_dir.name,
            "params": params,
            "metrics": metrics,
            "parameters": size,
            "engine": engine,
            "train_seconds": train_s,
            "eval_seconds": eval_s,
            "normalized": method != "stupid-backoff",
        }

    if arpa_out is not None:  # an export is a side effect: always compute
        result = compute()
        result["cached"] = False
        return result
    return _cached(out_dir, compute)


def ngram_engine(method: str, order: int, train_tokens: int) -> str:
    """Where an n-gram model is estimated: ``LMPIPE_NGRAM_ENGINE`` (auto, memory or duckdb;
    default auto) resolved against the memory limit (:func:`lm.ngram.choose_engine`)."""
    from lmpipe.lm.ngram import choose_engine, default_memory_limit

    requested = os.environ.get("LMPIPE_NGRAM_ENGINE") or "auto"
    limit = memory_limit_from_env() or default_memory_limit()
    try:
        return choose_engine(requested, method, order, train_tokens, limit)
    except ValueError as e:
        raise ConfigError(f"LMPIPE_NGRAM_ENGINE: {e}") from None


def _ngram_count(model: Any) -> int:
    """The size of an n-gram model: the n-grams it stores, all orders (its "parameters")."""
    if hasattr(model, "sizes"):  # out of core
        return sum(model.sizes())
    trie = getattr(model, "trie", None)
    return int(sum(trie.size(n) for n in range(1, trie.order + 1))) if trie is not None else 0


# ----------------------------------------------------------------------------- neural


# Settings that change when or where a training stops, never what an epoch computes: a training
# is found again (to resume or extend it) whatever their values (lm.neural.config).
RESUMABLE = ("epochs", "max_minutes", "device")


def neural_result_dir(home: Home, ing: IngestResult, settings: dict[str, Any]) -> Path:
    identity = {k: v for k, v in settings.items() if k not in RESUMABLE}
    return home.models_dir / "neural" / model_key("neural", ing.key, identity)


def detokenize(tokenizer: str, tokens: list[str]) -> str:
    """Text of generated tokens: ``</s>`` ends a line; chars join directly, words with spaces."""
    sep = "" if tokenizer == "char" else " "
    return "\n".join(sep.join(line) for line in _lines_of(tokens)).strip()


def _lines_of(tokens: list[str]) -> list[list[str]]:
    lines: list[list[str]] = [[]]
    for t in tokens:
        if t == "</s>":
            lines.append([])
        else:
            lines[-1].append(t)
    return lines


def prefix_tokens(tokenizer: str, prefix: str) -> list[str]:
    from lmpipe.lm.tokenize import get_tokenizer

    return get_tokenizer(tokenizer)(prefix)


def train_neural(
    home: Home,
    ing: IngestResult,
    settings: dict[str, Any],
    generation: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Train one neural model (resuming its own checkpoint if a run was killed), evaluate the
    best weights on validation and test, and generate samples for the corpus's prefixes."""
    from lmpipe.lm import neural

    if "valid" not in ing.splits:
        raise ConfigError(
            f"corpus {ing.corpus!r} has no validation split; neural training needs one "
            "(give --valid or use a single text split 80/10/10)"
        )
    out_dir = neural_result_dir(home, ing, settings)
    generation = dict(generation or {})

    def compute() -> dict[str, Any]:
        vocab = load_vocab(ing.vocab_path)
        train = load_stream(ing.splits["train"].path)
        valid = load_stream(ing.splits["valid"].path)
        cfg = neural.TrainConfig.from_dict(settings)
        epochs: list[dict[str, Any]] = []

        def record(row: dict[str, Any]) -> None:
            epochs.append(dict(row))
            if on_epoch is not None:
                on_epoch(dict(row))

        t0 = time.perf_counter()
        model, outcome = neural.train(
            cfg,
            train,
            valid,
            len(vocab),
            vocab_fingerprint=vocab.fingerprint(),
            checkpoint_dir=out_dir / "checkpoint",
            resume=resume,
            on_epoch=record,
        )
        train_s = time.perf_counter() - t0
        if len(outcome.history) > len(epochs):  # resumed: earlier epochs come from the checkpoint
            epochs = [dict(r) for r in outcome.history]
        metrics: dict[str, Any] = {}
        t1 = time.perf_counter()
        for split in EVAL_SPLITS:
            if split in ing.splits:
                stream = valid if split == "valid" else load_stream(ing.splits[split].path)
                metrics[split] = summarize(
                    neural.evaluate(model, stream), split_bytes(ing, split)
                ).as_dict()
        eval_s = time.perf_counter() - t1
        samples = _samples(neural, model, vocab, ing, generation)
        return {
            "family": "neural",
            "model": settings["arch"],
            "method": settings["arch"],
            "n": None,
            "model_key": out_dir.name,
            "params": settings,
            "metrics": metrics,
            "parameters": int(outcome.parameters),
            "train_seconds": train_s,
            "eval_seconds": eval_s,
            "epochs_run": int(outcome.epochs_run),
            "best_epoch": int(outcome.best_epoch),
            "stopped": str(outcome.stopped),
            "tokens_per_second": float(outcome.tokens_per_second),
            "epochs": epochs,
            "samples": samples,
            "device": str(next(model.parameters()).device),
            "files": [str(neural.checkpoint_path(out_dir / "checkpoint"))],
            "wall_seconds": float(outcome.wall_seconds),
        }

    return _cached(out_dir, compute, params=settings)


def _samples(
    neural: Any, model: Any, vocab: Vocab, ing: IngestResult, gen: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    length = int(gen.get("length", 60))
    seed = int(gen.get("seed", 0))
    for prefix in ing.prefixes:
        toks = prefix_tokens(ing.tokenizer, prefix)
        ids = vocab.ids(toks)
        for strategy, kwargs in (
            ("greedy", {"greedy": True}),
            (
                "sample",
                {"temperature": float(gen.get("temperature", 0.8)), "top_k": gen.get("top_k")},
            ),
        ):
            new = neural.generate(model, ids, length, seed=seed, **kwargs)
            out.append(
                {
                    "prefix": prefix,
                    "strategy": strategy,
                    "seed": seed,
                    "text": detokenize(ing.tokenizer, toks + [vocab.token(i) for i in new]),
                }
            )
    return out


def load_split_stream(ing: IngestResult, split: str) -> np.ndarray:
    return load_stream(ing.splits[split].path)


# ----------------------------------------------------------------------------- corpora


def memory_limit_from_env() -> int | None:
    """``LMPIPE_MEMORY_LIMIT`` (e.g. ``3GB``, ``512MB``, bytes) for DuckDB's counting; None means
    the engine's default, min(4 GiB, half the RAM)."""
    value = os.environ.get("LMPIPE_MEMORY_LIMIT")
    return parse_size(value) if value else None


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, flags=re.IGNORECASE)
    if not m:
        raise ConfigError(
            f"memory size {text!r} not understood; write e.g. 3GB, 512MB or a number of bytes"
        )
    size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size <= 0:
        raise ConfigError(f"memory size {text!r} must be positive; write e.g. 3GB or 512MB")
    return size


def corpora_dir_from_env() -> Path | None:
    value = os.environ.get("LMPIPE_CORPORA_DIR")
    return Path(value).expanduser() if value else None


def resolve_source(home: Home, corpus: dict[str, Any], tokenizer: str) -> CorpusSource:
    """A corpus of the config (registry name or own files) as a verified ``CorpusSource``."""
    if corpus.get("path") or corpus.get("train"):
        return resolve_files(
            corpus["name"],
            all_text=corpus.get("path"),
            train=corpus.get("train"),
            valid=corpus.get("valid"),
            test=corpus.get("test"),
            tokenizer=tokenizer,
            prefixes=tuple(corpus.get("prefixes") or ()),
        )
    src = resolve_registry(corpus["name"], home.cache_dir, corpora_dir_from_env())
    if corpus.get("prefixes"):
        src = CorpusSource(**{**src.__dict__, "prefixes": tuple(corpus["prefixes"])})
    return src


def ingest_corpus(
    home: Home, corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any]
) -> IngestResult:
    source = resolve_source(home, corpus, tokenizer)
    return ingest(source, ingest_settings(tokenizer, vocab), home.warehouse)


def ingest_settings(tokenizer: str, vocab: dict[str, Any]) -> IngestSettings:
    """The ingest settings of a config's ``vocab`` section for one tokenizer."""
    return IngestSettings(
        tokenizer=tokenizer,
        normalize=vocab.get("normalize", "none"),
        min_freq=int(vocab.get("min_freq", 1)),
        max_size=vocab.get("max_size"),
        encoding_errors=vocab.get("encoding_errors", "strict"),
    )


def corpus_data_key(
    home: Home, corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any]
) -> str:
    """The content key an ingest of this corpus would have (its files' hash + the settings)."""
    return data_key(resolve_source(home, corpus, tokenizer), ingest_settings(tokenizer, vocab))


def count_ngrams(home: Home, ing: IngestResult, max_order: int) -> dict[str, Any]:
    """Count orders 1..max_order of the training split with DuckDB into the ``ngrams`` dataset."""
    from lmpipe.lm.ngram import counting

    out_dir = home.warehouse.ngrams_dir(ing.corpus, ing.tokenizer, ing.key)
    marker = out_dir / f"orders-1-{max_order}.json"
    with file_lock(out_dir.parent / f"key={ing.key}.lock"):
        if marker.exists():
            return {**json.loads(marker.read_text(encoding="utf-8")), "cached": True}
        t0 = time.perf_counter()
        orders = counting.count_ngrams(
            ing.splits["train"].path,
            max_order,
            out_dir,
            memory_limit=memory_limit_from_env(),
            spill_dir=home.spill_dir,
        )
        result = {
            "dir": str(out_dir),
            "files": [str(marker), *(str(o.path) for o in orders)],
            "max_order": max_order,
            "seconds": time.perf_counter() - t0,
            "orders": [
                {
                    "n": o.n,
                    "distinct": o.distinct,
                    "tokens": o.tokens,
                    "count_of_counts": list(o.count_of_counts),
                }
                for o in orders
            ],
        }
        atomic_write_text(marker, json.dumps(result, sort_keys=True, default=str))
    return {**result, "cached": False}
