"""The experiment flow ``perplexity_benchmark``: corpora x tokenizers -> ingest -> n-gram counts,
n-gram models (methods x orders) and neural models (architectures) -> warehouse rows -> report.

The flow only composes tasks; independent work fans out through the task runner (threads by
default, Dask when asked). Heavy tasks are cached on content, so re-running an unchanged
experiment recomputes nothing but the run's own rows and its report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, wait

from lm.config import ExperimentConfig
from lm.record import new_run_id
from tasks.publish import publish_report, record
from tasks.steps import count_ngrams, fit_score_ngram, ingest_corpus, train_score_neural


@flow(
    name="perplexity-benchmark",
    flow_run_name="{config[name]}",
    description="Perplexity from unigram to LSTM on each corpus of the experiment, with a report.",
)
def perplexity_benchmark(config: dict[str, Any], home: str, run_id: str | None = None) -> dict[str, Any]:
    cfg = ExperimentConfig(**config)
    run_id = run_id or new_run_id()
    started = datetime.now(UTC)
    logger = get_run_logger()
    logger.info("run %s: experiment %r into %s", run_id, cfg.name, home)

    vocab = cfg.vocab.model_dump()
    ingest_futures: list[PrefectFuture[dict[str, Any]]] = []
    for corpus in cfg.corpora:
        for tokenizer in cfg.tokenizers_for(corpus):
            ingest_futures.append(
                ingest_corpus.submit(home, corpus.model_dump(), tokenizer, vocab)
            )
    ingests = [f.result() for f in ingest_futures]

    max_order = max(cfg.ngram.orders)
    ngram_params = _ngram_params(cfg)
    jobs: list[tuple[dict[str, Any], PrefectFuture[dict[str, Any]]]] = []
    for ing in ingests:
        count_ngrams.submit(home, ing, max_order)
        for method in cfg.ngram.methods:
            for order in cfg.ngram.orders:
                jobs.append((ing, fit_score_ngram.submit(home, ing, method, order, ngram_params[method])))
        for arch in cfg.neural.architectures:
            settings = cfg.neural.for_arch(arch)
            jobs.append((ing, train_score_neural.submit(home, ing, settings, cfg.generation.model_dump())))
    wait([f for _, f in jobs])
    results = [(ing, f.result()) for ing, f in jobs]

    counts = record(home, run_id, cfg.name, config, started, ingests, results)
    report_path = publish_report(home, run_id)
    logger.info("run %s: %s rows recorded; report %s", run_id, sum(counts.values()), report_path)
    return {"run_id": run_id, "report": report_path, "rows": counts}


def _ngram_params(cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """The parameters each smoothing method takes from the config (and nothing else, so that a
    change to one method's parameter leaves the others' cache keys alone)."""
    params: dict[str, dict[str, Any]] = {m: {} for m in cfg.ngram.methods}
    if "add-k" in params:
        params["add-k"] = {"k": cfg.ngram.k}
    if "mkn" in params:
        params["mkn"] = {"discount_fallback": cfg.ngram.discount_fallback}
    return params


def run_benchmark(cfg: ExperimentConfig, home: Path, runner: str = "thread", dask_address: str | None = None) -> dict[str, Any]:
    """Run the experiment flow with the chosen task runner (what ``lmpipe run`` calls)."""
    from flows.runners import make_runner

    f = perplexity_benchmark.with_options(task_runner=make_runner(runner, dask_address))
    return f(config=cfg.model_dump(mode="json"), home=str(home))
