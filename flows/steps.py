"""One flow per step, each runnable alone (from Python, a deployment, or ``lmpipe ... --prefect``):
ingest a corpus; count its n-grams; estimate and score one n-gram model; train and score one
neural model; write a run's report. They call the same tasks as ``perplexity_benchmark``, so a
step run alone and the same step inside the experiment share their cache; the single-model
flows are the command line's jobs (``lmpipe.lm.steps.jobs``) with tasks for steps."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow

from lmpipe.flows.interrupts import exits_on_termination
from lmpipe.lm.config import GenerationConfig, VocabConfig
from lmpipe.lm.errors import ConfigError
from lmpipe.lm.ingest import IngestResult
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.jobs import EpochCallback, ngram_job, train_job
from lmpipe.tasks.publish import publish_report, record
from lmpipe.tasks.steps import count_ngrams, fit_score_ngram, ingest_corpus, train_score_neural


def _home(home: str, corpora_dir: str | None, spill_dir: str | None) -> Home:
    return Home(Path(home), Path(corpora_dir) if corpora_dir else None,
                Path(spill_dir) if spill_dir else None)  # fmt: skip


def _vocab(vocab: dict[str, Any] | None) -> dict[str, Any]:
    """A vocab section with the experiment config's defaults for what it leaves out."""
    return VocabConfig(**(vocab or {})).model_dump()


class TaskSteps:
    """The steps of ``lmpipe.lm.steps.jobs`` as this package's Prefect tasks."""

    def ingest(
        self, home: Home, corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any]
    ) -> IngestResult:
        out = ingest_corpus(home=home.as_dict(), corpus=corpus, tokenizer=tokenizer, vocab=vocab)
        return IngestResult.from_dict(out)

    def ngram(
        self,
        home: Home,
        ing: IngestResult,
        method: str,
        order: int,
        params: dict[str, Any],
        engine: str,
        memory_limit: int | None,
        arpa_out: Path | None,
    ) -> dict[str, Any]:
        if arpa_out is not None:
            raise ConfigError(
                "--arpa writes a file outside the warehouse: run it without --prefect"
            )
        return fit_score_ngram(
            home=home.as_dict(), ing=ing.as_dict(), method=method, order=order, params=params,
            engine=engine, memory_limit=memory_limit,
        )  # fmt: skip

    def train(
        self,
        home: Home,
        ing: IngestResult,
        settings: dict[str, Any],
        generation: dict[str, Any],
        mode: str,
        on_epoch: EpochCallback | None,
    ) -> dict[str, Any]:
        return train_score_neural(
            home=home.as_dict(), ing=ing.as_dict(), settings=settings, generation=generation,
            mode=mode,
        )  # fmt: skip

    def record(
        self,
        home: Home,
        run_id: str,
        experiment: str,
        kind: str,
        config: dict[str, Any],
        started: datetime,
        ing: IngestResult,
        result: dict[str, Any],
    ) -> dict[str, int]:
        d = ing.as_dict()
        return record(home.as_dict(), run_id, experiment, config, started, [d], [(d, result)], kind)


@flow(name="ingest-corpus", flow_run_name="ingest {corpus[name]} ({tokenizer})")
@exits_on_termination
def ingest_flow(
    home: str,
    corpus: dict[str, Any],
    tokenizer: str,
    vocab: dict[str, Any] | None = None,
    corpora_dir: str | None = None,
) -> dict[str, Any]:
    """Tokenize a corpus into per-split token Parquet and its vocabulary."""
    h = _home(home, corpora_dir, None)
    return TaskSteps().ingest(h, corpus, tokenizer, _vocab(vocab)).as_dict()


@flow(name="count-ngrams", flow_run_name="count {corpus[name]} ({tokenizer}) n<={max_order}")
@exits_on_termination
def counts_flow(
    home: str,
    corpus: dict[str, Any],
    tokenizer: str,
    max_order: int = 5,
    vocab: dict[str, Any] | None = None,
    corpora_dir: str | None = None,
    spill_dir: str | None = None,
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """Ingest (cached) and count n-grams of orders 1..max_order into the warehouse."""
    h = _home(home, corpora_dir, spill_dir)
    ing = TaskSteps().ingest(h, corpus, tokenizer, _vocab(vocab))
    return count_ngrams(
        home=h.as_dict(), ing=ing.as_dict(), max_order=max_order, memory_limit=memory_limit
    )


@flow(name="ngram-model", flow_run_name="{method} n={order} {corpus[name]} ({tokenizer})")
@exits_on_termination
def ngram_flow(
    home: str,
    corpus: dict[str, Any],
    tokenizer: str,
    method: str,
    order: int,
    params: dict[str, Any] | None = None,
    vocab: dict[str, Any] | None = None,
    corpora_dir: str | None = None,
    spill_dir: str | None = None,
    engine: str = "auto",
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """Estimate one n-gram model and score validation and test; recorded as a run."""
    job = ngram_job(
        TaskSteps(), _home(home, corpora_dir, spill_dir), corpus, tokenizer, _vocab(vocab),
        method, order, params or {}, engine=engine, memory_limit=memory_limit,
    )  # fmt: skip
    return {**job.result, "run_id": job.run_id}


@flow(name="train-model", flow_run_name="train {settings[arch]} {corpus[name]} ({tokenizer})")
@exits_on_termination
def train_flow(
    home: str,
    corpus: dict[str, Any],
    tokenizer: str,
    settings: dict[str, Any],
    generation: dict[str, Any] | None = None,
    vocab: dict[str, Any] | None = None,
    corpora_dir: str | None = None,
    mode: str = "resume",
) -> dict[str, Any]:
    """Train and evaluate one neural model; recorded as a run."""
    job = train_job(
        TaskSteps(), _home(home, corpora_dir, None), corpus, tokenizer, _vocab(vocab), settings,
        GenerationConfig(**(generation or {})).model_dump(), mode=mode,
    )  # fmt: skip
    return {**job.result, "run_id": job.run_id}


@flow(name="write-report", flow_run_name="report {run_id}")
@exits_on_termination
def report_flow(home: str, run_id: str) -> str:
    """(Re)write a stored run's report and publish it as artifacts."""
    return publish_report(Home(Path(home)).as_dict(), run_id)
