"""The experiment flow ``perplexity_benchmark``: corpora x tokenizers -> ingest -> n-gram counts,
n-gram models (methods x orders) and neural models (architectures) -> warehouse rows -> report.

The flow only composes tasks; independent work fans out through the task runner (threads by
default, Dask when asked). Heavy tasks are cached on content, so re-running an unchanged
experiment recomputes nothing but the run's own rows and its report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run

from lm.config import ExperimentConfig
from lm.record import new_run_id
from tasks.caching import missing_files
from tasks.publish import clean, publish_report, record
from tasks.steps import count_ngrams, fit_score_ngram, ingest_corpus, train_score_neural


@dataclass
class Job:
    """A submitted task with what it takes to submit it again."""

    label: str
    task: Task[..., dict[str, Any]]
    kwargs: dict[str, Any]
    future: PrefectFuture[dict[str, Any]]

    @classmethod
    def submit(cls, label: str, task: Task[..., dict[str, Any]], **kwargs: Any) -> Job:
        return cls(label, task, kwargs, task.submit(**kwargs))

    def result(self) -> tuple[dict[str, Any], str]:
        """The result and the final state's name. A cached result whose files are gone from disk
        (deleted by hand, or removed by ``lmpipe check --repair``) is recomputed."""
        result = self.future.result()
        state = self.future.state.name
        if state == "Cached" and missing_files(result):
            get_run_logger().info(
                "%s: cached result points at missing files; recomputing", self.label
            )
            result = self.task.with_options(refresh_cache=True).submit(**self.kwargs).result()
            state = "Recomputed"
        return result, state


@flow(
    name="perplexity-benchmark",
    flow_run_name="{config[name]}",
    description="Perplexity from unigram to LSTM on each corpus of the experiment, with a report.",
)
def perplexity_benchmark(
    config: dict[str, Any], home: str, run_id: str | None = None, sequential_training: bool = True
) -> dict[str, Any]:
    cfg = ExperimentConfig(**config)
    run_id = run_id or new_run_id()
    started = datetime.now(UTC)
    logger = get_run_logger()
    logger.info("run %s: experiment %r into %s", run_id, cfg.name, home)
    removed = clean(home)
    if removed:
        logger.info("removed %d leftovers of killed runs", len(removed))

    vocab = cfg.vocab.model_dump()
    ingest_jobs = [
        Job.submit(
            f"ingest {corpus.name}/{tokenizer}",
            ingest_corpus,
            home=home,
            corpus=corpus.model_dump(),
            tokenizer=tokenizer,
            vocab=vocab,
        )
        for corpus in cfg.corpora
        for tokenizer in cfg.tokenizers_for(corpus)
    ]
    states: dict[str, str] = {}
    ingests = []
    for job in ingest_jobs:
        ing, states[job.label] = job.result()
        ingests.append(ing)

    max_order = max(cfg.ngram.orders)
    ngram_params = _ngram_params(cfg)
    generation = cfg.generation.model_dump()
    jobs: list[tuple[dict[str, Any], Job]] = []
    side: list[Job] = []
    for ing in ingests:
        name = f"{ing['corpus']}/{ing['tokenizer']}"
        side.append(
            Job.submit(f"count {name}", count_ngrams, home=home, ing=ing, max_order=max_order)
        )
        for method in cfg.ngram.methods:
            for order in cfg.ngram.orders:
                jobs.append(
                    (
                        ing,
                        Job.submit(
                            f"{method} n={order} {name}",
                            fit_score_ngram,
                            home=home,
                            ing=ing,
                            method=method,
                            order=order,
                            params=ngram_params[method],
                        ),
                    )
                )
    if not sequential_training:
        jobs += _submit_trainings(cfg, ingests, home, generation)
    wait([j.future for _, j in jobs] + [j.future for j in side])
    if sequential_training:
        # in one process, trainings take every core and run after the short n-gram tasks, so that
        # neither slows the other; on a cluster they fan out with everything else
        training = _submit_trainings(cfg, ingests, home, generation)
        wait([j.future for _, j in training])
        jobs += training
    results = []
    for ing, job in jobs:
        r, states[job.label] = job.result()
        results.append((ing, r))
    for job in side:
        states[job.label] = job.result()[1]

    counts = record(home, run_id, cfg.name, config, started, ingests, results)
    report_path = publish_report(home, run_id)
    executed = sorted(k for k, v in states.items() if v != "Cached")
    logger.info(
        "run %s: %d rows recorded; %d of %d heavy tasks re-used from cache; report %s",
        run_id,
        sum(counts.values()),
        len(states) - len(executed),
        len(states),
        report_path,
    )
    return {
        "run_id": run_id,
        "flow_run_id": str(flow_run.id) if flow_run.id else None,
        "report": report_path,
        "rows": counts,
        "task_states": states,
        "executed": executed,
    }


def _submit_trainings(
    cfg: ExperimentConfig, ingests: list[dict[str, Any]], home: str, generation: dict[str, Any]
) -> list[tuple[dict[str, Any], Job]]:
    jobs = []
    for ing in ingests:
        for arch in cfg.neural.architectures:
            settings = cfg.neural.for_arch(arch)
            train = train_score_neural.with_options(timeout_seconds=_train_timeout(settings))
            label = f"{arch} train {ing['corpus']}/{ing['tokenizer']}"
            jobs.append(
                (
                    ing,
                    Job.submit(
                        label, train, home=home, ing=ing, settings=settings, generation=generation
                    ),
                )
            )
    return jobs


def _ngram_params(cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """The parameters each smoothing method takes from the config (and nothing else, so that a
    change to one method's parameter leaves the others' cache keys alone)."""
    params: dict[str, dict[str, Any]] = {m: {} for m in cfg.ngram.methods}
    if "add-k" in params:
        params["add-k"] = {"k": cfg.ngram.k}
    if "mkn" in params:
        params["mkn"] = {"discount_fallback": cfg.ngram.discount_fallback}
    return params


def _train_timeout(settings: dict[str, Any]) -> float | None:
    """A hard stop for a training task well past its own budget (the loop enforces max_minutes
    itself; this only catches a hang). None when the training has no time budget."""
    minutes = settings.get("max_minutes")
    return None if minutes is None else 60.0 * minutes * 2 + 300.0


def run_benchmark(
    cfg: ExperimentConfig, home: Path, runner: str = "thread", dask_address: str | None = None
) -> dict[str, Any]:
    """Run the experiment flow with the chosen task runner (what ``lmpipe run`` calls)."""
    from prefect import tags

    from flows.runners import make_runner

    f = perplexity_benchmark.with_options(task_runner=make_runner(runner, dask_address))
    with tags("lmpipe", f"experiment:{cfg.name}", f"runner:{runner}"):
        return f(
            config=cfg.model_dump(mode="json"),
            home=str(home),
            sequential_training=runner == "thread",
        )
