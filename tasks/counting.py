"""Tasks of sharded n-gram counting: count one row range of a token file, merge one order.

Thin adapters over :mod:`lm.ngram.counting`: they take and return paths and small summaries, so
they run on any Dask worker that sees the same files (docs/prefect.md §5, scale-out checklist).
No result caching: the flow's caller keys whole countings on content (``orders-1-N.json``), and
shard files are temporary.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import get_run_logger, task

from lmpipe.lm.ngram import counting


@task(name="count-shard", task_run_name="count n={n} rows {start}..{stop}")
def count_shard(
    tokens: str,
    n: int,
    start: int,
    stop: int,
    out: str,
    memory_limit: int | None = None,
    spill_dir: str | None = None,
) -> str:
    """Order-n counts of the windows ending at rows [start, stop) of ``tokens``, into ``out``."""
    counting.count_shard(
        tokens, n, start, stop, out, memory_limit=memory_limit, spill_dir=spill_dir
    )
    return out


@task(name="merge-shards", task_run_name="merge n={n} ({out})")
def merge_shards(
    parts: list[str],
    n: int,
    out: str,
    prune: int = 0,
    memory_limit: int | None = None,
    spill_dir: str | None = None,
) -> dict[str, Any]:
    """Sum the shard counts of one order into ``out``; returns its ``OrderCounts`` as a dict."""
    result = counting.merge_shards(
        parts, n, out, prune=prune, memory_limit=memory_limit, spill_dir=spill_dir
    )
    get_run_logger().info(
        "n=%d: %d distinct n-grams (%d kept) over %d positions from %d shards",
        n,
        result.distinct,
        result.kept,
        result.tokens,
        len(parts),
    )
    return {**asdict(result), "path": str(result.path)}
