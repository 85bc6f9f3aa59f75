"""The experiment flow ``perplexity_benchmark``: corpora x tokenizers -> ingest -> n-gram counts,
n-gram models (methods x orders) and neural models (architectures) -> warehouse rows -> report.

The flow only composes tasks; independent work fans out through the task runner (threads by
default, Dask when asked). Heavy tasks are cached on content, so re-running an unchanged
experiment recomputes nothing but the run's own rows and its report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run

from lmpipe.flows.interrupts import exits_on_termination
from lmpipe.lm.config import ExperimentConfig
from lmpipe.lm.fileio import parse_size
from lmpipe.lm.ingest import IngestResult
from lmpipe.lm.ngram.registry import SMOOTHING
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.mixture import component, component_label, default_mixtures
from lmpipe.lm.steps.record import new_run_id
from lmpipe.tasks import progress
from lmpipe.tasks.caching import missing_files
from lmpipe.tasks.publish import clean, publish_report, record
from lmpipe.tasks.steps import (
    count_ngrams,
    fit_score_ngram,
    ingest_corpus,
    mix_models,
    train_score_neural,
)


@dataclass(eq=False)
class Job:
    """A submitted task with what it takes to submit it again; ``group`` is its kind (ingest,
    count, ngram, train) for the progress display."""

    group: str
    label: str
    task: Task[..., dict[str, Any]]
    kwargs: dict[str, Any]
    future: PrefectFuture[dict[str, Any]]

    @classmethod
    def submit(cls, group: str, label: str, task: Task[..., dict[str, Any]], **kwargs: Any) -> Job:
        return cls(group, label, task, kwargs, task.submit(**kwargs))

    def result(self) -> tuple[dict[str, Any], str]:
        """The result and the final state's name. A cached result whose files are gone from disk
        (deleted by hand, or removed by ``lmpipe check --repair``) is recomputed."""
        result = self.future.result()
        state = str(self.future.state.name)
        if state == "Cached" and missing_files(result):
            get_run_logger().info(
                "%s: cached result points at missing files; recomputing", self.label
            )
            result = self.task.with_options(refresh_cache=True).submit(**self.kwargs).result()
            state = "Recomputed"
        return result, state


def _settle(jobs: list[Job]) -> dict[Job, tuple[dict[str, Any], str]]:
    """Every job's result and final state, reported to the progress display as each ends (a
    failed task raises its error here, which fails the flow)."""
    by_future = {id(j.future): j for j in jobs}
    for group in dict.fromkeys(j.group for j in jobs):
        progress.current().planned(group, [j.label for j in jobs if j.group == group])
    out: dict[Job, tuple[dict[str, Any], str]] = {}
    for future in as_completed([j.future for j in jobs]):
        job = by_future[id(future)]
        result, state = out[job] = job.result()
        progress.current().finished(job.group, job.label, state, _summary(result))
    return out


def _summary(result: dict[str, Any]) -> str:
    """A finished training in a few words: its validation and test perplexity and cost; a
    mixture's, with its weights."""
    if result.get("family") not in ("neural", "mixture"):
        return ""
    m = result.get("metrics", {})
    ppl = ", ".join(
        f"{split} ppl {m[split]['perplexity']:.3f}" for split in ("valid", "test") if split in m
    )
    if result["family"] == "mixture":
        weights = "/".join(f"{w:.2f}" for w in result["params"]["weights"])
        return f"{ppl} (weights {weights})"
    return f"{ppl} ({result.get('epochs_run')} epochs, {result.get('train_seconds', 0):.0f} s)"


def run_name(suffix: str = "") -> str:
    """A flow run's name in the UI's runs list: the experiment and when it started (UTC)."""
    params = flow_run.parameters or {}
    name = (params.get("config") or {}).get("name", "experiment")
    return f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M}{suffix}"


def run_tags(cfg: ExperimentConfig) -> list[str]:
    """Tags of every run of ``cfg`` (the runs list filters on them): the experiment, each
    corpus and tokenizer."""
    return [
        "lmpipe",
        f"experiment:{cfg.name}",
        *(f"corpus:{c.name}" for c in cfg.corpora),
        *(
            f"tokenizer:{t}"
            for t in dict.fromkeys(t for c in cfg.corpora for t in cfg.tokenizers_for(c))
        ),
    ]


@flow(
    name="perplexity-benchmark",
    flow_run_name=run_name,
    description="Perplexity from unigram to LSTM on each corpus of the experiment, with a report.",
)
@exits_on_termination
def perplexity_benchmark(
    config: dict[str, Any],
    home: str,
    run_id: str | None = None,
    sequential_training: bool = True,
    corpora_dir: str | None = None,
    spill_dir: str | None = None,
    torch_threads: int | None = None,
) -> dict[str, Any]:
    """``home`` holds everything the run writes; ``corpora_dir`` local registry corpora and
    ``spill_dir`` DuckDB's spill folder (both optional); ``torch_threads`` each training's
    share of the cores (default: all of them)."""
    cfg = ExperimentConfig.from_dict(config)
    places = Home(
        Path(home),
        Path(corpora_dir) if corpora_dir else None,
        Path(spill_dir) if spill_dir else None,
    ).as_dict()
    run_id = run_id or new_run_id()
    started = datetime.now(UTC)
    logger = get_run_logger()
    logger.info("run %s: experiment %r into %s", run_id, cfg.name, home)
    removed = clean(places)
    if removed:
        logger.info("removed %d leftovers of killed runs", len(removed))

    vocab = cfg.vocab.model_dump()
    ingest_jobs = [
        Job.submit(
            "ingest",
            f"ingest {corpus.name}/{tokenizer}",
            ingest_corpus,
            home=places,
            corpus=corpus.model_dump(),
            tokenizer=tokenizer,
            vocab=vocab,
        )
        for corpus in cfg.corpora
        for tokenizer in cfg.tokenizers_for(corpus)
    ]
    settled = _settle(ingest_jobs)
    # downstream tasks take the ingest as IngestResult stores it (the task's ``files`` left out),
    # as the single-step flows pass it: the same task inputs, the same cache keys
    ingests = [IngestResult.from_dict(settled[j][0]).as_dict() for j in ingest_jobs]

    max_order = max(cfg.ngram.orders)
    memory_limit = parse_size(cfg.ngram.memory_limit) if cfg.ngram.memory_limit else None
    generation = cfg.generation.model_dump()
    side: list[Job] = []
    models: list[tuple[dict[str, Any], Job]] = []
    pruned: list[tuple[dict[str, Any], Job]] = []
    for ing in ingests:
        name = f"{ing['corpus']}/{ing['tokenizer']}"
        side.append(
            Job.submit(
                "count",
                f"count {name}",
                count_ngrams,
                home=places,
                ing=ing,
                max_order=max_order,
                memory_limit=memory_limit,
            )  # fmt: skip
        )
        for method in cfg.ngram.methods:
            for order in cfg.ngram.orders:
                job = Job.submit(
                    "ngram",
                    f"{method} n={order} {name}",
                    fit_score_ngram,
                    home=places,
                    ing=ing,
                    method=method,
                    order=order,
                    params=cfg.ngram.params(method),
                    engine=cfg.ngram.engine,
                    memory_limit=memory_limit,
                )
                models.append((ing, job))
        pruned += _submit_pruned(cfg, ing, places, memory_limit)
    candidates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if not sequential_training:
        training, candidates = _submit_trainings(cfg, ingests, places, generation, torch_threads)
        models += training
    settled.update(_settle(side + [j for _, j in models + pruned]))
    if sequential_training:
        # in one process, trainings take every core and run after the short n-gram tasks, so that
        # neither slows the other; on a cluster they fan out with everything else
        training, candidates = _submit_trainings(cfg, ingests, places, generation, torch_threads)
        settled.update(_settle([j for _, j in training]))
        models += training
    results = [(ing, settled[job][0]) for ing, job in models]
    mixes = _submit_mixtures(ingests, results, places)
    settled.update(_settle([j for _, j in mixes]))
    results += [(ing, settled[job][0]) for ing, job in mixes] + candidates
    # pruned models are not mixed or ranked: the report's size-against-perplexity curve
    results += [(ing, {**settled[job][0], "role": "pruned"}) for ing, job in pruned]
    states = {job.label: state for job, (_, state) in settled.items()}

    progress.current().message("recording the run and writing its report")
    counts = record(places, run_id, cfg.name, config, started, ingests, results)
    report_path = publish_report(places, run_id)
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


def _submit_pruned(
    cfg: ExperimentConfig, ing: dict[str, Any], home: dict[str, Any], memory_limit: int | None
) -> list[tuple[dict[str, Any], Job]]:
    """Each backoff method's model of the highest order pruned at each of ``ngram.prune``."""
    order = max(cfg.ngram.orders)
    if order < cfg.ngram.prune_min_order:
        return []
    name = f"{ing['corpus']}/{ing['tokenizer']}"
    return [
        (
            ing,
            Job.submit(
                "ngram",
                f"{method} n={order} pruned {threshold:g} {name}",
                fit_score_ngram,
                home=home,
                ing=ing,
                method=method,
                order=order,
                params={
                    **cfg.ngram.params(method),
                    "prune": threshold,
                    "prune_min_order": cfg.ngram.prune_min_order,
                },
                engine="memory",
                memory_limit=memory_limit,
            ),
        )
        for method in cfg.ngram.methods
        if SMOOTHING[method].arpa
        for threshold in cfg.ngram.prune
    ]


def _submit_trainings(
    cfg: ExperimentConfig,
    ingests: list[dict[str, Any]],
    home: dict[str, Any],
    generation: dict[str, Any],
    threads: int | None,
) -> tuple[list[tuple[dict[str, Any], Job]], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """The final training of each corpus and architecture (after its tuning, if the config
    asks for one: that runs here, rung by rung), and the tuning candidates' results."""
    jobs: list[tuple[dict[str, Any], Job]] = []
    candidates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for ing in ingests:
        for arch in cfg.neural.architectures:
            own = cfg.corpus(ing["corpus"]).neural_defaults()
            settings = cfg.neural.for_arch(arch, own)
            if cfg.neural.tune.enabled:
                settings, tried = _tune(cfg, ing, arch, home, generation, threads)
                candidates += [(ing, r) for r in tried]
            train = train_score_neural.with_options(timeout_seconds=_train_timeout(settings))
            label = progress.training_label(arch, ing["corpus"], ing["tokenizer"])
            job = Job.submit(
                "train", label, train,
                home=home, ing=ing, settings=settings, generation=generation, threads=threads,
            )  # fmt: skip
            jobs.append((ing, job))
    return jobs, candidates


def _submit_mixtures(
    ingests: list[dict[str, Any]],
    results: list[tuple[dict[str, Any], dict[str, Any]]],
    home: dict[str, Any],
) -> list[tuple[dict[str, Any], Job]]:
    """The default mixtures of each corpus (``default_mixtures``)."""
    jobs = []
    for ing in ingests:
        own = [r for i, r in results if i["key"] == ing["key"]]
        for parts in default_mixtures(own):
            name = "+".join(component_label(r) for r in parts)
            job = Job.submit(
                "mix", f"mix {name} {ing['corpus']}/{ing['tokenizer']}", mix_models,
                home=home, ing=ing, components=[component(r) for r in parts],
            )  # fmt: skip
            jobs.append((ing, job))
    return jobs


def _tune(
    cfg: ExperimentConfig,
    ing: dict[str, Any],
    arch: str,
    home: dict[str, Any],
    generation: dict[str, Any],
    threads: int | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Successive halving over ``cfg.neural.tune`` for one corpus and architecture: every
    candidate trains ``rungs[0]`` epochs, the best ``1/eta`` by validation perplexity go on to
    the next rung, until one is left; returns its settings (with the section's own epochs) and
    every candidate's result (validation only, ``role`` candidate, the rung in ``tune``)."""
    tune = cfg.neural.tune
    name = progress.training_label(arch, ing["corpus"], ing["tokenizer"])
    own = cfg.corpus(ing["corpus"]).neural_defaults()
    pool = [(point, cfg.neural.train_config(arch, point, own)) for point in tune.points()]
    tried: list[dict[str, Any]] = []
    for rung, epochs in enumerate(tune.rungs, start=1):
        submitted = []
        for i, (point, base) in enumerate(pool):
            settings = {**base.as_dict(), "epochs": epochs, "max_minutes": None}
            job = Job.submit(
                "tune", f"{name} tune rung {rung} #{i + 1}", train_score_neural,
                home=home, ing=ing, settings=settings, generation=generation, threads=threads,
                splits=["valid"],
            )  # fmt: skip
            submitted.append((point, base, job))
        settled = _settle([job for _, _, job in submitted])
        scored = []
        for point, base, job in submitted:
            result = settled[job][0]
            tried.append({**result, "role": "candidate", "tune": {"rung": rung, "point": point}})
            scored.append((result["metrics"]["valid"]["perplexity"], point, base))
        scored.sort(key=lambda x: x[0])
        keep = 1 if rung == len(tune.rungs) else max(1, math.ceil(len(scored) / tune.eta))
        pool = [(point, base) for _, point, base in scored[:keep]]
    return pool[0][1].as_dict(), tried


def _train_timeout(settings: dict[str, Any]) -> float | None:
    """A hard stop for a training task well past its own budget (the loop enforces max_minutes
    itself; this only catches a hang). None when the training has no time budget."""
    minutes = settings.get("max_minutes")
    return None if minutes is None else 60.0 * minutes * 2 + 300.0


def run_benchmark(
    cfg: ExperimentConfig, home: Home, runner: str = "thread", dask_address: str | None = None
) -> dict[str, Any]:
    """Run the experiment flow with the chosen task runner (what ``lmpipe run`` calls)."""
    from prefect import tags

    from lmpipe.flows.runners import make_runner, torch_threads

    f = perplexity_benchmark.with_options(task_runner=make_runner(runner, dask_address))
    with tags(*run_tags(cfg), f"runner:{runner}"):
        result: dict[str, Any] = f(  # type: ignore[assignment]  # Prefect's overloads lose R
            config=cfg.model_dump(mode="json"),
            home=str(home.root),
            sequential_training=runner == "thread",
            corpora_dir=str(home.corpora_dir) if home.corpora_dir else None,
            spill_dir=str(home.spill) if home.spill else None,
            torch_threads=torch_threads(runner, dask_address),
        )
    return result
