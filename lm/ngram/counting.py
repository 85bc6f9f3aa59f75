"""Counting n-grams: the models' fully padded counts in memory, the warehouse's counts out of core.

* :func:`count_full_ngrams` counts the way KenLM pads sentences (docs/kenlm-mkn.md §1): every real
  position of a stream (each word and each ``</s>``) ends exactly one n-gram, whose history is
  filled with ``<s>`` before the sentence start; for n = 3 the sentence ``a b`` gives
  ``<s> <s> a``, ``<s> a b`` and ``a b </s>``. It factorizes the in-memory stream's packed
  codes by sorting (pandas' hashing factorize where the codes leave no room to sort them with
  their positions), a few tokens per pass; :func:`lm.ngram.fit` uses it.
* :func:`count_ngrams` writes what the warehouse stores for Zipf statistics and SQL: every window
  of ``<s> w1 .. wm </s>`` (one ``<s>`` per sentence, so the unigram ``<s>`` counts sentences),
  never across sentences; the PTB figures of docs/reference-figures.md: 10,001 / 264,990 /
  586,558 / 717,733 / 737,952.
  Windows are cut in bounded batches (:mod:`lm.ngram.windows`) and aggregated by DuckDB with a
  memory limit and a spill folder, so a corpus far larger than RAM is counted; the same windows
  counted per row range (:func:`count_shard`) and summed (:func:`merge_shards`) give identical
  counts, which is how a Dask cluster shares the work (``flows/counting.py``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lmpipe.lm.fileio import TMP_PREFIX, atomic_path
from lmpipe.lm.ngram.windows import ngram_windows, num_rows, window_schema
from lmpipe.lm.sqlfiles import sql_text
from lmpipe.lm.vocab import BOS, EOS
from lmpipe.lm.warehouse.store import order_path

COUNT_OF_COUNTS = 4
"""Count-of-counts t_1..t_4 per order: what the discounts of docs/kenlm-mkn.md §3 need."""


class StreamError(ValueError):
    """A token stream breaks the stream contract of lm/vocab.py."""


def check_stream(stream: np.ndarray) -> np.ndarray:
    """The stream as int32 after checking the contract: 1-D, every sentence ends with ``</s>``,
    no ``<s>`` inside (it is context only)."""
    arr = np.asarray(stream)
    if arr.ndim != 1:
        raise StreamError(f"a token stream is 1-D, got shape {arr.shape}")
    arr = arr.astype(np.int32, copy=False)
    if arr.size and arr[-1] != EOS:
        raise StreamError("a token stream must end with </s> (every sentence ends with it)")
    if np.any(arr == BOS):
        raise StreamError("<s> never occurs in a token stream: it is context only")
    if arr.size and arr.min() < 0:
        raise StreamError("token ids are non-negative")
    return arr


def sentence_offsets(stream: np.ndarray) -> np.ndarray:
    """For every position, how many tokens of its sentence precede it (0 for a first token)."""
    ends = stream == EOS
    sent = np.cumsum(ends) - ends
    starts = np.concatenate(([0], np.flatnonzero(ends) + 1))
    return np.arange(stream.size, dtype=np.int64) - starts[sent]


def history_column(stream: np.ndarray, offsets: np.ndarray, j: int, fill: int) -> np.ndarray:
    """The token j positions before every position, ``fill`` where that is before the start of
    the sentence. With ``fill=BOS`` this is KenLM's padding."""
    col = np.full(stream.size, fill, dtype=np.int32)
    col[j:] = stream[:-j] if j else stream
    col[offsets < j] = fill
    return col


def count_full_ngrams(stream: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct padded n-grams of a stream and their counts, in memory
    (:func:`count_linked_ngrams` without the links)."""
    grams, counts, _ = count_linked_ngrams(stream, n)
    return grams, counts


def count_linked_ngrams(stream: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct padded n-grams of a stream, their counts, and each one's predecessor, in memory.

    Returns ``(grams, counts, previous)``: ``grams`` is (U, n) int32, oldest token first;
    ``counts`` (U,) int64; ``previous`` (U,) int64 the row of the window one position before
    the first occurrence of each, -1 where that occurrence starts a sentence (the windows of
    one sentence overlap: the context of a trie node is a suffix of its predecessor's,
    :func:`lm.ngram.trie.build_trie`).

    Tokens are packed into int64 codes, newest in the highest bits, as many per pass as
    fit beside the code of the suffix counted so far, and factorized per pass. Where the codes
    leave room for a position index (2 x index bits + token bits <= 63: PTB's 930 k tokens of a
    10 k vocabulary, or 20 M characters), each pass is one ``np.sort`` of code and position
    packed together (numpy's vectorized sort: 8 ms for 930 k, where pandas' hashing factorize
    takes 90 ms), and the grams come out in suffix order, newest token first, which
    :func:`lm.ngram.trie.build_trie` turns into a trie without sorting again. Otherwise each
    pass is pandas' factorize (O(T), no sort) and the grams are in no particular order.
    """
    stream = check_stream(stream)
    if n < 1:
        raise ValueError(f"order must be at least 1, got {n}")
    offsets = sentence_offsets(stream)
    token_bits = max(int(stream.max(initial=EOS)), BOS).bit_length()
    index_bits = max(stream.size - 1, 1).bit_length()
    sortable = 2 * index_bits + token_bits <= 63
    budget = 63 - index_bits if sortable else 63  # bits of a code
    code = stream.astype(np.int64)
    code_bits = token_bits
    j = 1
    while True:
        while j < n and code_bits + token_bits <= budget:
            code = (code << token_bits) | history_column(stream, offsets, j, BOS)
            code_bits += token_bits
            j += 1
        if sortable:
            code, distinct = _factorize_sorted(code, index_bits)
        else:
            code, distinct = _factorize_hashed(code)
        code_bits = max(distinct - 1, 1).bit_length()
        if j == n:
            break
    counts = np.bincount(code).astype(np.int64)
    first = first_positions(code, counts.size)
    grams = np.empty((counts.size, n), dtype=np.int32)
    for k in range(n):
        grams[:, n - 1 - k] = history_column(stream, offsets, k, BOS)[first]
    previous = np.where(offsets[first] > 0, code[np.maximum(first - 1, 0)], -1)
    return grams, counts, previous


def first_positions(values: np.ndarray, size: int) -> np.ndarray:
    """The first position of each value ``0..size-1`` in ``values``, ``values.size`` where it
    never occurs: an unbuffered minimum, which numpy defines for repeated indices (where a
    scatter of the positions in reverse keeps an unspecified one)."""
    first = np.full(size, values.size, dtype=np.int64)
    np.minimum.at(first, values, np.arange(values.size, dtype=np.int64))
    return first


def _factorize_sorted(code: np.ndarray, index_bits: int) -> tuple[np.ndarray, int]:
    """(rank of each code among the distinct codes, in ascending order; how many are
    distinct): one sort of ``code << index_bits | position``, which needs the codes' bits plus
    ``index_bits`` to fit in 63."""
    if code.size == 0:
        return code, 0
    packed = np.sort((code << index_bits) | np.arange(code.size, dtype=np.int64))
    value = packed >> index_bits
    new = np.empty(code.size, dtype=bool)
    new[0] = True
    np.not_equal(value[1:], value[:-1], out=new[1:])
    del value
    rank = np.cumsum(new, dtype=np.int64) - 1
    out = np.empty(code.size, dtype=np.int64)
    out[packed & ((1 << index_bits) - 1)] = rank
    return out, int(rank[-1]) + 1


def _factorize_hashed(code: np.ndarray) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(code, sort=False)
    return codes.astype(np.int64, copy=False), int(uniques.size)


def count_of_counts(counts: np.ndarray, kmax: int = COUNT_OF_COUNTS) -> np.ndarray:
    """t_k = number of distinct n-grams seen exactly k times, k = 1..kmax."""
    return np.bincount(np.clip(counts, 0, kmax + 1), minlength=kmax + 2)[1 : kmax + 1]


@dataclass(frozen=True)
class OrderCounts:
    """What :func:`count_ngrams` wrote for one order."""

    n: int
    path: Path
    distinct: int
    """distinct n-grams before pruning"""
    kept: int
    """rows written (after pruning)"""
    tokens: int
    """sum of counts = positions of the stream"""
    count_of_counts: tuple[int, ...]
    """t_1..t_4 before pruning"""


def _sql(name: str) -> str:
    return sql_text("lmpipe.lm.ngram", name)


_COUNT_SQL = _sql("count_windows")
_MERGE_SQL = _sql("merge_counts")
_STATS_SQL = _sql("count_stats")
_PRUNE_SQL = _sql("prune_counts")

MAX_MEMORY_LIMIT = 4 << 30
"""Cap of the default DuckDB memory limit, min(4 GiB, half the RAM): half leaves room for the
rest of the process (one id batch, Arrow buffers) and for other work on the machine. The process
peaks a few hundred MB above DuckDB's limit, so a 4 GB budget asks for about 3 GB."""


def default_memory_limit() -> int:
    """min(4 GiB, 50% of physical RAM), in bytes."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(MAX_MEMORY_LIMIT, ram // 2)


def connect(
    memory_limit: int | None = None, spill_dir: str | Path | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose operators spill to ``spill_dir`` (created) once they
    use ``memory_limit`` bytes (default :func:`default_memory_limit`). Insertion order is not
    kept: counts have no order, and keeping it costs memory in aggregates and writes."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": f"{memory_limit or default_memory_limit()}B",
        "preserve_insertion_order": "false",
    }
    if spill_dir is not None:
        Path(spill_dir).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(spill_dir)
    return duckdb.connect(config=config)


def _window_counts(
    con: duckdb.DuckDBPyConnection,
    tokens: str | Path | pa.Table,
    n: int,
    start: int = 0,
    stop: int | None = None,
) -> duckdb.DuckDBPyRelation:
    """The order-n counts of the windows ending at rows [start, stop) of ``tokens``, as a lazy
    relation: DuckDB pulls the window batches while it aggregates, so memory holds one batch."""
    if n < 1:
        raise ValueError(f"order must be at least 1, got {n}")
    reader = pa.RecordBatchReader.from_batches(
        window_schema(n), ngram_windows(tokens, n, start, stop)
    )
    con.register("windows", reader)
    return con.sql(_COUNT_SQL)


def query_ngram_counts(
    con: duckdb.DuckDBPyConnection, tokens: str | Path | pa.Table, n: int
) -> pa.Table:
    """Order-n counts as an Arrow table with columns ``w1..wn`` (int32) and ``count`` (int64),
    in memory: for small inputs and tests (:func:`count_ngrams` writes large ones to disk)."""
    return _window_counts(con, tokens, n).to_arrow_table()


def shard_ranges(tokens: str | Path | pa.Table, shards: int) -> list[tuple[int, int]]:
    """``shards`` row ranges [start, stop) of about equal size covering a token file (fewer if
    it has fewer rows). Any cut is exact (:mod:`lm.ngram.windows`); a shard that starts inside
    a row group reads that group too, which costs little next to the aggregation."""
    rows = num_rows(tokens)
    cuts = np.unique(np.linspace(0, rows, max(shards, 1) + 1).round().astype(np.int64))
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def count_shard(
    tokens: str | Path | pa.Table,
    n: int,
    start: int,
    stop: int,
    out: str | Path,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    memory_limit: int | None = None,
    spill_dir: str | Path | None = None,
) -> Path:
    """Write the order-n counts of the windows ending at rows [start, stop) to ``out``: one
    part of :func:`merge_shards`. Memory as in :func:`count_ngrams`."""
    with _connection(con, memory_limit, spill_dir) as c, atomic_path(out) as tmp:
        _window_counts(c, tokens, n, start, stop).to_parquet(str(tmp))
    return Path(out)


def merge_shards(
    parts: Sequence[str | Path],
    n: int,
    out: str | Path,
    *,
    prune: int = 0,
    con: duckdb.DuckDBPyConnection | None = None,
    memory_limit: int | None = None,
    spill_dir: str | Path | None = None,
) -> OrderCounts:
    """Sum the counts of shard files into the order-n counts file ``out`` (pruned at ``prune``,
    statistics before pruning): identical to counting all the shards' rows at once."""
    with _connection(con, memory_limit, spill_dir) as c:
        relation = c.sql(_MERGE_SQL, params={"paths": [str(p) for p in parts]})
        return _finish(c, relation, n, Path(out), prune)


def count_ngrams(
    tokens: str | Path | pa.Table,
    order: int,
    out_dir: str | Path,
    *,
    prune: Sequence[int] = (),
    con: duckdb.DuckDBPyConnection | None = None,
    memory_limit: int | None = None,
    spill_dir: str | Path | None = None,
) -> list[OrderCounts]:
    """Count orders 1..``order`` of a token Parquet file (or Arrow table) with DuckDB and write
    ``out_dir/n={n}/ngrams.parquet`` for each (hive layout: ``read_parquet(..., hive_partitioning
    =true, union_by_name=true)`` reads all orders with an ``n`` column).

    Out of core: one pass over the file per order, one id batch in Python memory at a time, and
    DuckDB's aggregate spills to ``spill_dir`` past ``memory_limit`` bytes (see :func:`connect`;
    without ``spill_dir`` a temporary folder, removed afterwards). ``con`` overrides both.

    ``prune`` works like ``lmplz --prune``: thresholds per order starting at unigrams, the last one
    repeated for higher orders; n-grams with count <= threshold are not written. Count-of-counts
    are taken before pruning.
    """
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    thresholds = prune_thresholds(prune, order)
    out = Path(out_dir)
    with _connection(con, memory_limit, spill_dir) as c:
        return [
            _finish(
                c,
                _window_counts(c, tokens, n),
                n,
                order_path(out, n),
                thresholds[n - 1],
            )
            for n in range(1, order + 1)
        ]


def prune_thresholds(prune: Sequence[int], order: int) -> list[int]:
    """The pruning threshold of each order 1..order (0 = keep all), the last one repeated."""
    thresholds = [int(t) for t in prune]
    if any(t < 0 for t in thresholds) or thresholds != sorted(thresholds):
        raise ValueError(f"prune thresholds must be non-negative and non-decreasing: {thresholds}")
    return [
        thresholds[min(n, len(thresholds)) - 1] if thresholds else 0 for n in range(1, order + 1)
    ]


@contextmanager
def _connection(
    con: duckdb.DuckDBPyConnection | None,
    memory_limit: int | None = None,
    spill_dir: str | Path | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """``con`` as it is, or a spilling connection of our own, closed (and its temporary spill
    folder removed) afterwards."""
    if con is not None:
        yield con
        return
    with ExitStack() as stack:
        if spill_dir is None:
            spill_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="lmpipe-spill-"))
        own = stack.enter_context(closing(connect(memory_limit, spill_dir)))
        yield own


def _finish(
    con: duckdb.DuckDBPyConnection,
    counts: duckdb.DuckDBPyRelation,
    n: int,
    path: Path,
    threshold: int,
) -> OrderCounts:
    """Write ``counts`` to ``path`` (atomically), pruned at ``threshold``, and describe them.
    The statistics are read back from the unpruned file, so nothing large passes Python."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.{os.getpid()}.", dir=path.parent)
    os.close(fd)
    full = Path(name)
    try:
        counts.to_parquet(name)
        (row,) = con.execute(_STATS_SQL, {"path": name}).fetchall()
        distinct, tokens = int(row[0]), int(row[1])
        if distinct == 0:
            raise StreamError("the token stream is empty: nothing to count")
        if threshold:
            with atomic_path(path) as pruned:
                params = {"path": name, "threshold": threshold}
                con.sql(_PRUNE_SQL, params=params).to_parquet(str(pruned))
        else:
            os.replace(full, path)
    finally:
        full.unlink(missing_ok=True)
    return OrderCounts(
        n=n,
        path=path,
        distinct=distinct,
        kept=pq.ParquetFile(path).metadata.num_rows,
        tokens=tokens,
        count_of_counts=tuple(int(t) for t in row[2:6]),
    )


def stream_table(stream: np.ndarray) -> pa.Table:
    """The token-Parquet layout (pos, sent, id) of an in-memory stream."""
    stream = check_stream(stream)
    ends = stream == EOS
    sent = (np.cumsum(ends) - ends).astype(np.int64)
    return pa.table({"pos": np.arange(stream.size, dtype=np.int64), "sent": sent, "id": stream})
