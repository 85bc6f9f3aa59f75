"""One flow per step, each runnable alone (from Python, a deployment, or ``lmpipe ... --prefect``):
ingest a corpus; count its n-grams; estimate and score one n-gram model; train and score one
neural model; write a run's report. They call the same tasks as ``perplexity_benchmark``, so a
step run alone and the same step inside the experiment share their cache."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow

from lmpipe.lm.record import new_run_id
from lmpipe.tasks.publish import publish_report, record
from lmpipe.tasks.steps import count_ngrams, fit_score_ngram, ingest_corpus, train_score_neural

VOCAB_DEFAULTS: dict[str, Any] = {"min_freq": 1, "normalize": "none", "encoding_errors": "strict"}


@flow(name="ingest-corpus", flow_run_name="ingest {corpus[name]} ({tokenizer})")
def ingest_flow(
    home: str, corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Tokenize a corpus into per-split token Parquet and its vocabulary."""
    return ingest_corpus(
        home=home, corpus=corpus, tokenizer=tokenizer, vocab={**VOCAB_DEFAULTS, **(vocab or {})}
    )


@flow(name="count-ngrams", flow_run_name="count {corpus[name]} ({tokenizer}) n<={max_order}")
def counts_flow(
    home: str,
    corpus: dict[str, Any],
    tokenizer: str,
    max_order: int = 5,
    vocab: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ingest (cached) and count n-grams of orders 1..max_order into the warehouse."""
    ing = ingest_flow(home, corpus, tokenizer, vocab)
    return count_ngrams(home=home, ing=ing, max_order=max_order)


@flow(name="ngram-model", flow_run_name="{method} n={order} {corpus[name]} ({tokenizer})")
def ngram_flow(
    home: str,
    corpus: dict[str, Any],
    tokenizer: str,
    method: str,
    order: int,
    params: dict[str, Any] | None = None,
    vocab: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Estimate one n-gram model and score validation and test; recorded as a run."""
    started = datetime.now(UTC)
    ing = ingest_flow(home, corpus, tokenizer, vocab)
    result = fit_score_ngram(home=home, ing=ing, method=method, order=order, params=params or {})
    run_id = new_run_id(started)
    record(
        home,
        run_id,
        f"ngram-{ing['corpus']}",
        {"method": method, "order": order, "params": params or {}},
        started,
        [ing],
        [(ing, result)],
        kind="ngram",
    )
    return {**result, "run_id": run_id}


@flow(name="train-model", flow_run_name="train {settings[arch]} {corpus[name]} ({tokenizer})")
def train_flow(
    home: str,
    corpus: dict[str, Any],
    tokenizer: str,
    settings: dict[str, Any],
    generation: dict[str, Any] | None = None,
    vocab: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one neural model; recorded as a run."""
    started = datetime.now(UTC)
    ing = ingest_flow(home, corpus, tokenizer, vocab)
    result = train_score_neural(
        home=home, ing=ing, settings=settings, generation=generation or {"length": 60}
    )
    run_id = new_run_id(started)
    record(
        home,
        run_id,
        f"train-{ing['corpus']}",
        {"train": settings},
        started,
        [ing],
        [(ing, result)],
        kind="train",
    )
    return {**result, "run_id": run_id}


@flow(name="write-report", flow_run_name="report {run_id}")
def report_flow(home: str, run_id: str) -> str:
    """(Re)write a stored run's report and publish it as artifacts."""
    return publish_report(home, run_id)
