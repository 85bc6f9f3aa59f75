"""Counting n-grams the way KenLM pads sentences (KENLM_MKN.md §1).

Every real position of a stream (each word and each ``</s>``) ends exactly one n-gram, whose
history is filled with ``<s>`` before the sentence start; n-grams never cross sentences. For
n = 3 the sentence ``a b`` gives ``<s> <s> a``, ``<s> a b`` and ``a b </s>``.

Two implementations give identical counts:

* :func:`count_ngrams` runs DuckDB over the token Parquet and writes one Parquet file per order
  (what the pipeline stores and users query);
* :func:`count_full_ngrams` hashes the in-memory stream with pandas' factorize, one pass per
  order. ``benchmarks/ngram_bench.py`` measures both; the in-memory path is the faster one for
  fitting (no Parquet round trip, no window sort), so :func:`lm.ngram.fit` uses it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lm.vocab import BOS, EOS

MAX_SQL_ORDER = 7
"""The counting SQL has columns w1..w7."""

COUNT_OF_COUNTS = 4
"""Count-of-counts t_1..t_4 per order: what the discounts of KENLM_MKN.md §3 need."""


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
    """Distinct padded n-grams of a stream and their counts, in memory.

    Returns ``(grams, counts)``: ``grams`` is (U, n) int32, oldest token first, in no particular
    order; ``counts`` (U,) int64. Tokens are packed into int64 keys (as many as fit in 63 bits,
    after the code of the suffix counted so far) and factorised by hashing: O(T) per pass, no
    sort, and two passes for a 5-gram model over a 10k vocabulary.
    """
    stream = check_stream(stream)
    if n < 1:
        raise ValueError(f"order must be at least 1, got {n}")
    offsets = sentence_offsets(stream)
    token_bits = max(int(stream.max(initial=EOS)), BOS).bit_length()
    code = stream.astype(np.int64)
    code_bits = token_bits
    j = 1
    while True:
        while j < n and code_bits + token_bits <= 63:
            code = (code << token_bits) | history_column(stream, offsets, j, BOS)
            code_bits += token_bits
            j += 1
        codes, uniques = pd.factorize(code, sort=False)
        code = codes.astype(np.int64, copy=False)
        code_bits = max(int(uniques.size - 1), 1).bit_length()
        if j == n:
            break
    counts = np.bincount(code).astype(np.int64)
    first = np.empty(counts.size, dtype=np.int64)
    first[code[::-1]] = np.arange(code.size - 1, -1, -1)
    grams = np.empty((counts.size, n), dtype=np.int32)
    for k in range(n):
        grams[:, n - 1 - k] = history_column(stream, offsets, k, BOS)[first]
    return grams, counts


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


_COUNT_SQL = resources.files("lm.ngram").joinpath("sql/count_ngrams.sql").read_text("utf-8")


def _tokens_relation(con: duckdb.DuckDBPyConnection, tokens: str | Path | pa.Table) -> None:
    """Make ``tokens`` (pos, sent, id) visible to the counting SQL; a path is handed to DuckDB's
    reader as an argument, never pasted into SQL text."""
    if isinstance(tokens, pa.Table):
        con.register("tokens", tokens)
    else:
        con.register("tokens", con.read_parquet(str(tokens)))


def query_ngram_counts(
    con: duckdb.DuckDBPyConnection, tokens: str | Path | pa.Table, n: int
) -> pa.Table:
    """Order-n counts as an Arrow table with columns ``w1..wn`` (int32) and ``count`` (int64)."""
    if not 1 <= n <= MAX_SQL_ORDER:
        raise ValueError(f"DuckDB counting supports orders 1..{MAX_SQL_ORDER}, got {n}")
    _tokens_relation(con, tokens)
    table = con.sql(_COUNT_SQL, params={"n": n}).to_arrow_table()
    names = [f"w{k}" for k in range(1, n + 1)]
    return pa.table(
        {**{c: table[c].cast(pa.int32()) for c in names}, "count": table["count"].cast(pa.int64())}
    )


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: a reader sees the whole file
    or nothing (DESIGN §4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def count_ngrams(
    tokens: str | Path | pa.Table,
    order: int,
    out_dir: str | Path,
    *,
    prune: Sequence[int] = (),
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[OrderCounts]:
    """Count orders 1..``order`` of a token Parquet file (or Arrow table) with DuckDB and write
    ``out_dir/n={n}/ngrams.parquet`` for each (hive layout: ``read_parquet(..., hive_partitioning
    =true, union_by_name=true)`` reads all orders with an ``n`` column).

    ``prune`` works like ``lmplz --prune``: thresholds per order starting at unigrams, the last one
    repeated for higher orders; n-grams with count <= threshold are not written. Count-of-counts
    are taken before pruning.
    """
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    thresholds = [int(t) for t in prune]
    if any(t < 0 for t in thresholds) or thresholds != sorted(thresholds):
        raise ValueError(f"prune thresholds must be non-negative and non-decreasing: {thresholds}")
    own = con is None
    con = duckdb.connect() if con is None else con
    out = Path(out_dir)
    results: list[OrderCounts] = []
    try:
        for n in range(1, order + 1):
            table = query_ngram_counts(con, tokens, n)
            if table.num_rows == 0:
                raise StreamError("the token stream is empty: nothing to count")
            counts = table["count"].to_numpy()
            threshold = thresholds[min(n, len(thresholds)) - 1] if thresholds else 0
            kept = table.filter(pc.greater(table["count"], threshold)) if threshold else table
            path = out / f"n={n}" / "ngrams.parquet"
            write_parquet_atomic(kept, path)
            results.append(
                OrderCounts(
                    n=n,
                    path=path,
                    distinct=table.num_rows,
                    kept=kept.num_rows,
                    tokens=int(counts.sum()),
                    count_of_counts=tuple(int(t) for t in count_of_counts(counts)),
                )
            )
    finally:
        if own:
            con.close()
    return results


def stream_table(stream: np.ndarray) -> pa.Table:
    """The token-Parquet layout (pos, sent, id) of an in-memory stream."""
    stream = check_stream(stream)
    ends = stream == EOS
    sent = (np.cumsum(ends) - ends).astype(np.int64)
    return pa.table({"pos": np.arange(stream.size, dtype=np.int64), "sent": sent, "id": stream})
