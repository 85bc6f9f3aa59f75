"""The flow ``count_ngrams_sharded``: orders 1..N of a token file counted in row-range shards
through the flow's task runner (a Dask cluster: ``make_runner("dask")``), merged by summing.

Every window of ``<s> w1 .. wm </s>`` ends in exactly one row range, and a shard reads the few
ids before its range that its first windows need (:mod:`lm.ngram.windows`), so the merged counts
equal :func:`lm.ngram.counting.count_ngrams` on the whole file, row for row.

    from lmpipe.flows.counting import count_ngrams_sharded
    from lmpipe.flows.runners import make_runner
    count_ngrams_sharded.with_options(task_runner=make_runner("dask"))(tokens, 5, out_dir)
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.futures import wait

from lmpipe.lm.ngram.counting import prune_thresholds, shard_ranges
from lmpipe.lm.warehouse import order_path
from lmpipe.tasks.counting import count_shard, merge_shards


@flow(name="count-ngrams-sharded", log_prints=False)
def count_ngrams_sharded(
    tokens: str,
    order: int,
    out_dir: str,
    shards: int = 4,
    prune: list[int] | None = None,
    memory_limit: int | None = None,
    spill_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Write ``out_dir/n={n}/ngrams.parquet`` for n = 1..order, as ``count_ngrams`` does, and
    return one summary per order. ``memory_limit`` (bytes) and ``spill_dir`` hold for each task:
    a worker's DuckDB spills past it. Shard files live in a hidden folder of ``out_dir`` (which
    every worker must see) until the merges are done."""
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    thresholds = prune_thresholds(prune or (), order)
    ranges = shard_ranges(tokens, shards)
    parts_dir = Path(out_dir) / f".shards-{uuid.uuid4().hex[:12]}"
    limits = {"memory_limit": memory_limit, "spill_dir": spill_dir}
    try:
        merges = []
        for n in range(1, order + 1):
            parts = [
                count_shard.submit(
                    tokens, n, a, b, str(parts_dir / f"n={n}" / f"part-{i}.parquet"), **limits
                )
                for i, (a, b) in enumerate(ranges)
            ]
            out = str(order_path(out_dir, n))
            merges.append(merge_shards.submit(parts, n, out, thresholds[n - 1], **limits))
        wait(merges)
        return [m.result() for m in merges]
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
