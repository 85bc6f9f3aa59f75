"""The experiment's tasks: each calls one ``lmpipe.lm.steps`` function and returns a small JSON
summary (paths and figures, never tables or models). ``home`` travels as ``Home.as_dict()``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.tasks import exponential_backoff

from lmpipe.lm.errors import DownloadError
from lmpipe.lm.ingest import IngestResult
from lmpipe.lm.steps import counts, ingest, mixture, neural, ngram
from lmpipe.lm.steps.home import Home
from lmpipe.tasks import serial
from lmpipe.tasks.caching import ContentKey
from lmpipe.tasks.progress import current as current_progress
from lmpipe.tasks.progress import training_label


def _ing(d: dict[str, Any]) -> IngestResult:
    return IngestResult.from_dict(d)


def _ingest_content(inputs: dict[str, Any]) -> str:
    """The data key: the corpus files' content hash combined with the ingest settings."""
    home = Home.from_dict(inputs["home"])
    return ingest.corpus_data_key(home, inputs["corpus"], inputs["tokenizer"], inputs["vocab"])


def _ingest_retry(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what a retry can fix: a download that failed for a passing reason (a
    timeout, a server error). No network at all fails at once (``DownloadError.transient``)."""
    try:
        state.result()
    except DownloadError as e:
        return e.transient
    except Exception:  # noqa: BLE001 - bad input, a bug: retrying gives the same answer
        return False
    return False


@task(
    name="ingest",
    task_run_name="ingest {corpus[name]} ({tokenizer})",
    cache_policy=ContentKey(content=_ingest_content),
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=_ingest_retry,
)
def ingest_corpus(
    home: dict[str, Any], corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any]
) -> dict[str, Any]:
    ing = ingest.ingest_corpus(Home.from_dict(home), corpus, tokenizer, vocab)
    get_run_logger().info(
        "%s/%s: %d vocabulary entries, %s tokens (train/valid/test)",
        ing.corpus,
        ing.tokenizer,
        ing.vocab_size,
        "/".join(str(s.tokens) for s in ing.splits.values()),
    )
    return {**ing.as_dict(), "files": [s.path for s in ing.splits.values()] + [ing.vocab_path]}


@task(
    name="count-ngrams",
    task_run_name="count n-grams {ing[corpus]} ({ing[tokenizer]}) n<={max_order}",
    cache_policy=ContentKey(ignore=("memory_limit",)),
)
def count_ngrams(
    home: dict[str, Any], ing: dict[str, Any], max_order: int, memory_limit: int | None = None
) -> dict[str, Any]:
    return counts.count_ngrams(Home.from_dict(home), _ing(ing), max_order, memory_limit)


@task(
    name="ngram",
    task_run_name="{method} n={order} {ing[corpus]} ({ing[tokenizer]})",
    cache_policy=ContentKey(ignore=("engine", "memory_limit")),
)
def fit_score_ngram(
    home: dict[str, Any],
    ing: dict[str, Any],
    method: str,
    order: int,
    params: dict[str, Any],
    engine: str = "auto",
    memory_limit: int | None = None,
) -> dict[str, Any]:
    result = ngram.evaluate_ngram(
        Home.from_dict(home), _ing(ing), method, order, params,
        engine=engine, memory_limit=memory_limit,
    )  # fmt: skip
    m = result["metrics"].get("test") or result["metrics"].get("valid", {})
    get_run_logger().info(
        "%s n=%d on %s: test perplexity %.4g",
        method,
        order,
        ing["corpus"],
        m.get("perplexity", float("nan")),
    )
    return result


@task(
    name="train",
    task_run_name="train {settings[arch]} {ing[corpus]} ({ing[tokenizer]})",
    cache_policy=ContentKey(ignore=("threads", "mode")),
)
def train_score_neural(
    home: dict[str, Any],
    ing: dict[str, Any],
    settings: dict[str, Any],
    generation: dict[str, Any],
    mode: str = "resume",
    threads: int | None = None,
    splits: list[str] | None = None,
) -> dict[str, Any]:
    """``splits``: the splits scored (default valid and test; a tuning candidate: valid)."""
    logger = get_run_logger()
    total = settings.get("epochs") or 0
    label = training_label(settings["arch"], ing["corpus"], ing["tokenizer"])
    shown = current_progress()
    key = f"train-{ing['corpus']}-{ing['tokenizer']}-{settings['arch']}".lower().replace("_", "-")
    progress: UUID = create_progress_artifact(  # type: ignore[assignment]  # sync in a task
        0.0, key=key[:100], description=f"{settings['arch']} on {ing['corpus']}: epochs done (%)"
    )

    def on_epoch(row: dict[str, Any]) -> None:
        logger.info(
            "%s on %s epoch %d: train ppl %.3f, valid ppl %.3f, %.0f tokens/s",
            settings["arch"],
            ing["corpus"],
            row["epoch"],
            row["train_perplexity"],
            row["valid_perplexity"],
            row["tokens_per_second"],
        )
        if total:
            update_progress_artifact(progress, min(100.0, 100.0 * row["epoch"] / total))
        shown.epoch(label, row, total or None)

    result = serial.run_training(
        neural.train_neural,
        Home.from_dict(home),
        _ing(ing),
        settings,
        generation,
        on_epoch=on_epoch,
        mode=mode,
        threads=threads,
        splits=tuple(splits or ("valid", "test")),
    )
    update_progress_artifact(progress, 100.0)
    return result


@task(
    name="mix",
    task_run_name="mix {ing[corpus]} ({ing[tokenizer]})",
    cache_policy=ContentKey(),
)
def mix_models(
    home: dict[str, Any], ing: dict[str, Any], components: list[dict[str, Any]]
) -> dict[str, Any]:
    """Interpolate stored models of one corpus (``component`` of each one's result)."""
    result = mixture.mix_models(Home.from_dict(home), _ing(ing), components)
    get_run_logger().info(
        "mixture %s on %s: weights %s", result["model"], ing["corpus"],
        ", ".join(f"{w:.3f}" for w in result["params"]["weights"]),
    )  # fmt: skip
    return result
