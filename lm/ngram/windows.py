"""The stored n-gram windows of a token file, produced in bounded batches.

The warehouse stores every window of ``<s> w1 .. wm </s>`` (one ``<s>`` per sentence, never
across sentences: the counts of docs/reference-figures.md). Instead of a window function over
the whole file (DuckDB's
``lag() OVER (PARTITION BY sent)`` sorts every partition), the windows are cut from consecutive
id batches with numpy: a batch plus the last ``context(n)`` ids of the one before holds every
window that ends in the batch. So memory is one batch, whatever the file size, and any row range
[start, stop) of the file is counted on its own from ``context(n)`` extra ids read before it:
the shards of :mod:`lm.ngram.counting` sum to the whole file's counts exactly.

Why the carried ids are enough: offsets (tokens of its sentence before a position) are taken
from the start of the buffer or the last ``</s>`` in it. A position whose sentence began before
the buffer gets a too small offset, but never below its index in the buffer, and emitted
positions sit at index >= context(n), where every offset test below (< n - 1) is decided alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmpipe.lm.vocab import BOS, EOS

BATCH_ROWS = 1 << 20
"""Ids read per batch from an Arrow table (a Parquet file is read by its row groups)."""


def context(n: int) -> int:
    """Ids needed before a batch: the n-1 of the history, and at least 1 to tell whether the
    batch's first position starts a sentence (the unigram ``<s>`` counts sentence starts)."""
    return max(n - 1, 1)


def window_schema(n: int) -> pa.Schema:
    return pa.schema([(f"w{k}", pa.int32()) for k in range(1, n + 1)])


def id_batches(
    tokens: str | Path | pa.Table, start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """The ``id`` column of rows [start, stop) of a token Parquet file or table, as int32
    batches; a file is read one row group at a time, skipping those before ``start``."""
    stop = num_rows(tokens) if stop is None else stop
    if isinstance(tokens, pa.Table):
        ids = tokens.column("id")
        for a in range(start, stop, BATCH_ROWS):
            yield ids.slice(a, min(BATCH_ROWS, stop - a)).to_numpy().astype(np.int32, copy=False)
        return
    f = pq.ParquetFile(tokens)
    first = 0
    for g in range(f.metadata.num_row_groups):
        rows = f.metadata.row_group(g).num_rows
        lo, hi = max(start - first, 0), min(stop - first, rows)
        if lo < hi:
            col = f.read_row_group(g, columns=["id"]).column("id")
            yield col.slice(lo, hi - lo).to_numpy().astype(np.int32, copy=False)
        first += rows
        if first >= stop:
            return


def num_rows(tokens: str | Path | pa.Table) -> int:
    if isinstance(tokens, pa.Table):
        return tokens.num_rows
    return pq.ParquetFile(tokens).metadata.num_rows


def ngram_windows(
    tokens: str | Path | pa.Table, n: int, start: int = 0, stop: int | None = None
) -> Iterator[pa.RecordBatch]:
    """Batches of the order-n windows (``w1..wn``, oldest first) that end at rows [start, stop)."""
    tail = np.empty(0, dtype=np.int32)
    if start > 0:
        tail = np.concatenate(list(id_batches(tokens, max(start - context(n), 0), start)))
    for batch in id_batches(tokens, start, stop):
        buf = np.concatenate((tail, batch)) if tail.size else batch
        columns = _windows(buf, n, tail.size)
        if columns[0].size:
            yield pa.record_batch(columns, schema=window_schema(n))
        tail = buf[-context(n) :]


def _windows(buf: np.ndarray, n: int, skip: int) -> list[np.ndarray]:
    """Columns w1..wn of the windows ending at buf[skip:]. The token j back is the id there if
    the sentence has j tokens before the position, ``<s>`` if it has j-1, else no window."""
    offsets = _offsets(buf, skip)
    ids = buf[skip:]
    if n == 1:  # every token, plus one <s> per sentence start
        bos = np.full(int(np.count_nonzero(offsets == 0)), BOS, dtype=np.int32)
        return [np.concatenate((ids, bos))]
    keep = offsets >= n - 2
    cols = []
    for j in range(n - 1, -1, -1):
        cols.append(np.where(offsets == j - 1, BOS, _shifted(buf, skip, j))[keep])
    return cols


def _offsets(buf: np.ndarray, skip: int) -> np.ndarray:
    """Tokens of its sentence before each position of buf[skip:], counted from the buffer's
    start or its last ``</s>`` (exact enough: see the module's docstring)."""
    ends = buf == EOS
    sent = np.cumsum(ends) - ends
    starts = np.concatenate(([0], np.flatnonzero(ends) + 1))
    return (np.arange(buf.size, dtype=np.int64) - starts[sent])[skip:]


def _shifted(buf: np.ndarray, skip: int, j: int) -> np.ndarray:
    """buf[i - j] for i = skip..; ``<s>`` where that is before the buffer (only at the start of
    a file, where such a position's sentence has fewer than j tokens before it)."""
    out = np.full(buf.size - skip, BOS, dtype=np.int32)
    lead = min(max(j - skip, 0), out.size)
    out[lead:] = buf[skip + lead - j : buf.size - j]
    return out


PAST_BOS = -1
"""A history slot before the sentence's ``<s>`` in :func:`padded_windows`: no token there."""


def padded_window_schema(n: int) -> pa.Schema:
    return pa.schema([("pos", pa.int64()), *window_schema(n)])


def padded_windows(tokens: str | Path | pa.Table, n: int) -> pa.RecordBatchReader:
    """The window of length ``n`` that ends at every row, KenLM's way (docs/kenlm-mkn.md §1): the
    token j back is the id there, ``<s>`` right before the sentence start and :data:`PAST_BOS`
    beyond it, so a sentence's first windows are shorter n-grams that start with a single
    ``<s>`` (collapsed). Columns ``pos`` (the row) and ``w1..wn`` oldest first, in row order, cut
    in bounded batches as DuckDB reads them: the out-of-core estimator counts these, and scores
    with them."""
    return pa.RecordBatchReader.from_batches(padded_window_schema(n), _padded_batches(tokens, n))


def _padded_batches(tokens: str | Path | pa.Table, n: int) -> Iterator[pa.RecordBatch]:
    tail = np.empty(0, dtype=np.int32)
    schema = padded_window_schema(n)
    first = 0
    for batch in id_batches(tokens):
        buf = np.concatenate((tail, batch)) if tail.size else batch
        skip = tail.size
        offsets = _offsets(buf, skip)
        cols = [np.arange(first, first + batch.size, dtype=np.int64)]
        for j in range(n - 1, 0, -1):
            col = np.where(offsets == j - 1, BOS, _shifted(buf, skip, j))
            col[offsets < j - 1] = PAST_BOS
            cols.append(col.astype(np.int32, copy=False))
        cols.append(buf[skip:])
        yield pa.record_batch(cols, schema=schema)
        first += batch.size
        tail = buf[-context(n) :]
