"""Step: count orders 1..N of a training split with DuckDB into the ``ngrams`` dataset."""

from __future__ import annotations

import json
import time
from typing import Any

from lmpipe.lm.fileio import atomic_write_text, file_lock
from lmpipe.lm.ingest import IngestResult
from lmpipe.lm.steps.home import Home


def count_ngrams(
    home: Home, ing: IngestResult, max_order: int, memory_limit: int | None = None
) -> dict[str, Any]:
    """Counts of orders 1..max_order, once per data key (``orders-1-N.json`` marks them done);
    DuckDB spills to the home's spill folder past ``memory_limit`` bytes."""
    from lmpipe.lm.ngram import counting

    out_dir = home.warehouse.ngrams_dir(ing.corpus, ing.tokenizer, ing.key)
    marker = out_dir / f"orders-1-{max_order}.json"
    with file_lock(out_dir.parent / f"key={ing.key}.lock"):
        if marker.exists():
            return {**json.loads(marker.read_text(encoding="utf-8")), "cached": True}
        t0 = time.perf_counter()
        orders = counting.count_ngrams(
            ing.splits["train"].path,
            max_order,
            out_dir,
            memory_limit=memory_limit,
            spill_dir=home.spill_dir,
        )
        result = {
            "dir": str(out_dir),
            "files": [str(marker), *(str(o.path) for o in orders)],
            "max_order": max_order,
            "seconds": time.perf_counter() - t0,
            "orders": [
                {
                    "n": o.n,
                    "distinct": o.distinct,
                    "tokens": o.tokens,
                    "count_of_counts": list(o.count_of_counts),
                }
                for o in orders
            ],
        }
        atomic_write_text(marker, json.dumps(result, sort_keys=True, default=str))
    return {**result, "cached": False}
