"""Step: estimate one n-gram model on the training split and score validation and test."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from lmpipe.lm.errors import ConfigError
from lmpipe.lm.ingest import IngestResult, load_stream, load_vocab
from lmpipe.lm.metrics import summarize
from lmpipe.lm.process_memory import keep_freed_memory
from lmpipe.lm.steps.cache import cached, model_key
from lmpipe.lm.steps.home import Home
from lmpipe.lm.warehouse.token_scores import has_token_scores, write_token_scores

EVAL_SPLITS = ("valid", "test")


def ngram_result_dir(
    home: Home, ing: IngestResult, method: str, order: int, params: dict[str, Any]
) -> Path:
    key = model_key("ngram", ing.key, {"method": method, "order": order, **params})
    return home.models_dir / "ngram" / key


PRUNE_KEYS = ("prune", "prune_min_order")
"""Parameters of relative-entropy pruning (lm.ngram.prune), applied after the estimate."""


def fit_params(params: dict[str, Any]) -> dict[str, Any]:
    """The experiment's parameters as ``fit`` takes them: ``discount_fallback`` true is KenLM's
    default fallback discounts (left to the estimator), false is none (fail, as lmplz does);
    the pruning parameters are not the estimator's."""
    out = {k: v for k, v in params.items() if k not in PRUNE_KEYS}
    if out.get("discount_fallback") is True:
        del out["discount_fallback"]
    elif out.get("discount_fallback") is False:
        out["discount_fallback"] = None
    return out


def ngram_engine(
    method: str, order: int, train_tokens: int, engine: str, memory_limit: int | None
) -> str:
    """Where the model is estimated: ``engine`` (auto, memory or duckdb) resolved against the
    memory limit (:func:`lmpipe.lm.ngram.choose_engine`)."""
    from lmpipe.lm.ngram import choose_engine, default_memory_limit

    try:
        return choose_engine(
            engine, method, order, train_tokens, memory_limit or default_memory_limit()
        )
    except ValueError as e:
        raise ConfigError(f"--engine: {e}") from None


def evaluate_ngram(
    home: Home,
    ing: IngestResult,
    method: str,
    order: int,
    params: dict[str, Any] | None = None,
    *,
    engine: str = "auto",
    memory_limit: int | None = None,
    arpa_out: Path | None = None,
) -> dict[str, Any]:
    """Estimate one n-gram model on the training split and score validation and test; cached
    by content (``arpa_out``, an export, always computes). ``engine`` and ``memory_limit`` say
    where mkn is estimated; the figures are the same either way."""
    from lmpipe.lm import ngram  # heavy imports only where used
    from lmpipe.lm.ngram.mkn_duckdb import estimate_mkn_duckdb

    params = dict(params or {})
    out_dir = ngram_result_dir(home, ing, method, order, params)
    wh = home.warehouse
    splits = [s for s in EVAL_SPLITS if s in ing.splits]

    def compute() -> dict[str, Any]:
        keep_freed_memory()  # counting, the trie and scoring free and reallocate MB-size arrays
        vocab = load_vocab(ing.vocab_path)
        prune = float(params.get("prune") or 0.0)
        in_memory = prune or params.get("prune_counts")  # the out-of-core estimator has neither
        if in_memory and engine == "duckdb":
            raise ConfigError("pruning works on a model estimated in memory: drop --engine duckdb")
        where = (
            "memory" if in_memory
            else ngram_engine(method, order, ing.splits["train"].tokens, engine, memory_limit)
        )  # fmt: skip
        metrics: dict[str, Any] = {}
        with ExitStack() as stack:
            t0 = time.perf_counter()
            if where == "duckdb":  # scores the token files without loading them
                model = stack.enter_context(
                    estimate_mkn_duckdb(
                        ing.splits["train"].path,
                        order,
                        len(vocab),
                        memory_limit=memory_limit,
                        spill_dir=home.spill_dir,
                        **fit_params(params),
                    )
                )
                score = model.score_tokens
            else:
                train = load_stream(ing.splits["train"].path)
                fitted = ngram.fit(
                    train, order, method, vocab_size=len(vocab), **fit_params(params)
                )
                del train
                if prune:
                    fitted = ngram.prune_entropy(
                        fitted, prune, min_order=int(params.get("prune_min_order") or 2)
                    )
                model = fitted

                def score(path: str) -> Any:
                    return fitted.score(load_stream(path))

            train_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            files = []
            for split in splits:
                path = ing.splits[split].path
                scores = score(path)
                metrics[split] = summarize(scores, ing.splits[split].bytes).as_dict()
                ids = load_stream(path)
                files.append(
                    str(write_token_scores(
                        wh, ing.corpus, ing.tokenizer, out_dir.name, split, ids, scores
                    ))
                )  # fmt: skip
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
            "engine": where,
            "train_seconds": train_s,
            "eval_seconds": eval_s,
            "normalized": ngram.SMOOTHING[method].normalized,
            "files": files,
        }

    if arpa_out is not None:  # an export is a side effect: always compute
        result = compute()
        result["cached"] = False
        return result
    # a result whose token scores are gone (an older home, a repair) is evaluated again
    return cached(
        out_dir,
        compute,
        accept=lambda r: has_token_scores(wh, ing.corpus, ing.tokenizer, out_dir.name, splits),
    )


def _ngram_count(model: Any) -> int:
    """The size of an n-gram model: the n-grams it stores, all orders (its "parameters")."""
    if hasattr(model, "sizes"):  # out of core
        return int(sum(model.sizes()))
    pruning = getattr(model, "details", {}).get("pruning")
    if pruning is not None:  # kept n-grams; the blanks a pruned trie holds are not the model's
        return int(sum(pruning["ngrams"]))
    trie = getattr(model, "trie", None)
    return int(sum(trie.size(n) for n in range(1, trie.order + 1))) if trie is not None else 0
