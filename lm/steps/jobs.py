"""The single-model jobs of the command line, written once over a set of ``Steps``.

``lmpipe ngram`` and ``lmpipe train`` run a job directly (``DIRECT``: each step is a plain
function of this package); with ``--prefect`` the same job runs as a Prefect flow whose steps
are tasks (``lmpipe.flows.steps``), each wrapping the same function. So both paths ingest,
estimate or train, and record in the same order with the same arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lmpipe.lm.ingest import IngestResult, IngestSettings
from lmpipe.lm.steps import ingest, neural, ngram, record, score_arpa
from lmpipe.lm.steps.home import Home

EpochCallback = Callable[[dict[str, Any]], None]


class Steps(Protocol):
    def ingest(
        self, home: Home, corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any]
    ) -> IngestResult: ...

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
    ) -> dict[str, Any]: ...

    def train(
        self,
        home: Home,
        ing: IngestResult,
        settings: dict[str, Any],
        generation: dict[str, Any],
        mode: str,
        on_epoch: EpochCallback | None,
    ) -> dict[str, Any]: ...

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
    ) -> dict[str, int]: ...


class DirectSteps:
    """Each step called in this process, as a plain function."""

    def ingest(
        self, home: Home, corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any]
    ) -> IngestResult:
        return ingest.ingest_corpus(home, corpus, tokenizer, vocab)

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
        return ngram.evaluate_ngram(
            home, ing, method, order, params,
            engine=engine, memory_limit=memory_limit, arpa_out=arpa_out,
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
        return neural.train_neural(home, ing, settings, generation, on_epoch=on_epoch, mode=mode)

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
        return record.record_run(
            home.warehouse, run_id, experiment, kind, config, started, [ing], [(ing, result)]
        )


DIRECT = DirectSteps()


@dataclass(frozen=True)
class JobResult:
    run_id: str
    ing: IngestResult
    result: dict[str, Any]


def ngram_job(
    steps: Steps,
    home: Home,
    corpus: dict[str, Any],
    tokenizer: str,
    vocab: dict[str, Any],
    method: str,
    order: int,
    params: dict[str, Any],
    *,
    engine: str = "auto",
    memory_limit: int | None = None,
    arpa_out: Path | None = None,
) -> JobResult:
    """Ingest, estimate one n-gram model and score it, record the run ``ngram-<corpus>``."""
    started = datetime.now(UTC)
    ing = steps.ingest(home, corpus, tokenizer, vocab)
    result = steps.ngram(home, ing, method, order, params, engine, memory_limit, arpa_out)
    run_id = record.new_run_id(started)
    config = {"order": order, "smoothing": method, "params": params,
              "corpus": ing.corpus, "tokenizer": ing.tokenizer}  # fmt: skip
    steps.record(home, run_id, f"ngram-{ing.corpus}", "ngram", config, started, ing, result)
    return JobResult(run_id, ing, result)


def train_job(
    steps: Steps,
    home: Home,
    corpus: dict[str, Any],
    tokenizer: str,
    vocab: dict[str, Any],
    settings: dict[str, Any],
    generation: dict[str, Any],
    *,
    mode: str = "auto",
    on_epoch: EpochCallback | None = None,
) -> JobResult:
    """Ingest, train and evaluate one neural model, record the run ``train-<corpus>``."""
    started = datetime.now(UTC)
    ing = steps.ingest(home, corpus, tokenizer, vocab)
    result = steps.train(home, ing, settings, generation, mode, on_epoch)
    run_id = record.new_run_id(started)
    config = {"train": settings, "corpus": ing.corpus, "tokenizer": ing.tokenizer}
    steps.record(home, run_id, f"train-{ing.corpus}", "train", config, started, ing, result)
    return JobResult(run_id, ing, result)


@dataclass(frozen=True)
class ScoreResult:
    run_id: str
    text: score_arpa.ScoredText
    result: dict[str, Any]


def score_job(
    home: Home,
    arpa: Path,
    test: str,
    name: str,
    settings: IngestSettings,
    binary_out: Path | None = None,
) -> ScoreResult:
    """Score the text ``test`` with the ARPA model ``arpa``, record the run ``score-<name>``
    (kind ``score``: a results row, no corpus ingest of its own)."""
    started = datetime.now(UTC)
    result = score_arpa.score_arpa(arpa, test, settings, binary_out)
    text = score_arpa.ScoredText(name, settings.tokenizer)
    run_id = record.new_run_id(started)
    config = {"lm": str(arpa), "sha256": result["params"]["sha256"], "test": test,
              "corpus": name, "tokenizer": settings.tokenizer}  # fmt: skip
    record.record_run(
        home.warehouse, run_id, f"score-{name}", "score", config, started, [], [(text, result)]
    )
    return ScoreResult(run_id, text, result)
