"""KenLM's modified Kneser-Ney estimated and scored out of core, in DuckDB.

:func:`lm.ngram.mkn.estimate_mkn` holds a model in numpy arrays, about 52 bytes per n-gram
(16 GB for the 307 M n-grams of a 100 M-token corpus). Here every stage of lmplz's pipeline is a
DuckDB statement over tables in a database file (``mkn_out_of_core.sql``): the counts, the
adjusted counts, the context sums, the probabilities and backoff weights of the model. DuckDB's
aggregates and joins spill past the connection's memory limit, so memory stays bounded
whatever the model's size; Python holds one Arrow batch of windows at a time and the
vocabulary-sized unigram arrays.

The values are bit-identical to the in-memory estimator's (and so to KenLM's): the float32
arithmetic is DuckDB's single precision in lmplz's order, and log10 is the C library's
``log10f`` through Arrow, as there, taken batch by batch where the model is read. Scoring
joins every position's windows with the model tables and applies KenLM's backoff rule
(docs/kenlm-mkn.md §7) in numpy, batch by batch, in stream order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from lmpipe.lm.errors import ResourceError
from lmpipe.lm.fileio import TMP_PREFIX
from lmpipe.lm.metrics import LN10, TokenScores
from lmpipe.lm.ngram.arpa_lines import unigram_entries, write_lines
from lmpipe.lm.ngram.counting import count_of_counts, default_memory_limit, stream_table
from lmpipe.lm.ngram.mkn import (
    DEFAULT_FALLBACK,
    F32,
    apply_last_ngram_quirk,
    discounts,
    log10_backoff,
    log10f,
    ranks_in_order,
    unigram_probabilities,
)
from lmpipe.lm.ngram.scoring import KenlmTotals
from lmpipe.lm.ngram.windows import PAST_BOS, id_batches, padded_windows
from lmpipe.lm.sqlfiles import named_statements
from lmpipe.lm.vocab import BOS, UNK

SCORE_BATCH = 1 << 20
"""Rows fetched at a time from the scoring query."""

DUCKDB_SHARE = 0.6
"""Part of the memory limit given to DuckDB. The process peaks up to about 1 GB above DuckDB's
own limit (Arrow batches, the vocabulary-sized arrays, the allocator's cached pages; measured
at 30 M and 100 M tokens), so the whole process stays within the limit."""

ENGINES = ("auto", "memory", "duckdb")
IN_MEMORY_BYTES_PER_NGRAM = 60
"""Peak RSS of the in-memory estimator per n-gram (trie, tables and transients): 2.0 GB for
33 M n-grams at 10 M Zipf tokens, 16.2 GB for 307 M at 100 M (``benchmarks/scale_bench.py``)."""


class OutOfCoreError(ResourceError):
    """DuckDB ran out of its memory limit or of disk while estimating or scoring."""


@contextmanager
def _plain_errors(what: str, memory_limit: int, folder: Path) -> Iterator[None]:
    """DuckDB's out-of-memory and disk-full errors as one line that says what to change."""
    try:
        yield
    except duckdb.OutOfMemoryException:
        raise OutOfCoreError(
            f"DuckDB ran out of memory {what} under a memory limit of {memory_limit >> 20} MB; "
            "give a larger --memory-limit (or LMPIPE_MEMORY_LIMIT)"
        ) from None
    except duckdb.IOException as e:
        if "No space left" not in str(e):
            raise
        raise OutOfCoreError(
            f"the disk of {folder} filled up {what} (the out-of-core model needs about 40 bytes "
            "per n-gram there); free space or move the spill folder with LMPIPE_SPILL_DIR"
        ) from None


def out_of_core_applies(method: str, order: int) -> bool:
    """This module estimates mkn of order 2 or more; everything else runs in memory (a unigram
    model is vocabulary-sized)."""
    return method == "mkn" and order >= 2


def choose_engine(requested: str, method: str, order: int, tokens: int, memory_limit: int) -> str:
    """Where a model is estimated: ``duckdb`` (this module) for mkn of order >= 2 when asked, or
    under ``auto`` when the in-memory estimator could outgrow ``memory_limit`` bytes: a corpus
    of T tokens has at most T n-grams per order. Everything else runs in memory."""
    if requested not in ENGINES:
        raise ValueError(f"unknown n-gram engine {requested!r}; choose one of {', '.join(ENGINES)}")
    if not out_of_core_applies(method, order) or requested == "memory":
        return "memory"
    if requested == "duckdb":
        return "duckdb"
    worst = tokens * order * IN_MEMORY_BYTES_PER_NGRAM
    return "memory" if worst <= memory_limit else "duckdb"


SQL = named_statements("lmpipe.lm.ngram", "mkn_out_of_core")
"""The statements of ``sql/mkn_out_of_core.sql`` by name."""


def _cols(n: int, prefix: str = "", start: int = 1) -> str:
    """``{prefix}w{start}, ..`` for n columns."""
    return ", ".join(f"{prefix}w{k}" for k in range(start, start + n))


def _renamed(n: int, start: int) -> str:
    """Columns w{start}.. renamed w1..wn."""
    return ", ".join(f"w{start + k} AS w{k + 1}" for k in range(n))


def _match(left: str, right: str, n: int, right_start: int = 1) -> str:
    """``left.w1 = right.w{right_start} AND ..`` over n columns."""
    return " AND ".join(f"{left}.w{k + 1} = {right}.w{right_start + k}" for k in range(n))


def _arpa_logp(p: np.ndarray) -> np.ndarray:
    """ARPA's log10 p from the model's p: ``min(log10f(p), 0)`` (NaN, a missing n-gram, stays
    NaN). The logs are taken here, a batch at a time, not in SQL: an Arrow UDF is called per
    DuckDB vector of 2,048 rows, 7 of the 48 s of a 20 M-token estimate."""
    return np.minimum(log10f(p), F32(0.0))


def _arpa_backoff(gamma: np.ndarray, missing: float = 0.0) -> np.ndarray:
    """ARPA's log10 backoff from the model's gamma; ``missing`` where gamma is NaN (the n-gram
    is no context: ARPA writes 0, scoring adds nothing)."""
    bo = np.full(gamma.shape, missing, dtype=F32)
    known = ~np.isnan(gamma)
    bo[known] = log10_backoff(gamma[known])
    return bo


@dataclass(frozen=True)
class StreamFacts:
    """What the estimator needs of the whole training stream, gathered one batch at a time."""

    positions: int
    raw_unigram: np.ndarray
    """c(w): occurrences of every id"""
    first_seen: np.ndarray
    """position of every id's first occurrence (``positions`` where it never occurs)"""

    @classmethod
    def scan(cls, tokens: str | Path | pa.Table, width: int) -> StreamFacts:
        raw = np.zeros(width, dtype=np.int64)
        first = np.full(width, np.iinfo(np.int64).max, dtype=np.int64)
        at = 0
        for batch in id_batches(tokens):
            if batch.size and (batch.min() < 0 or batch.max() >= width):
                bad = int(batch.max()) if batch.max() >= width else int(batch.min())
                raise ValueError(f"token id {bad} is outside the vocabulary (vocab_size={width})")
            raw += np.bincount(batch, minlength=width)
            new = np.flatnonzero(first[batch] == np.iinfo(np.int64).max)  # ids not seen before
            if new.size:  # np.unique's indices are first occurrences; ``new`` ascends
                ids, idx = np.unique(batch[new], return_index=True)
                first[ids] = at + new[idx]
            at += batch.size
        first[first == np.iinfo(np.int64).max] = at
        return cls(at, raw, first)

    def ranks(self, unk_is_word: bool) -> np.ndarray:
        """KenLM's word ids (:func:`lm.ngram.mkn.first_appearance_ranks`)."""
        seen = np.flatnonzero(self.raw_unigram > 0)
        order = seen[np.argsort(self.first_seen[seen], kind="stable")]
        return ranks_in_order(order, self.raw_unigram.size, unk_is_word)


@dataclass
class DuckdbMknModel:
    """A modified Kneser-Ney model whose tables live in a DuckDB database file. Scores as
    :class:`lm.ngram.model.BackoffModel` with ``kenlm_exact`` does; :meth:`close` removes the
    file (a context manager does too)."""

    order: int
    vocab_size: int
    path: Path
    details: dict[str, Any]
    memory_limit: int
    seen: np.ndarray = field(repr=False)
    """mask of the ids that occur in training (the unigrams of an ARPA file)"""
    method: str = "mkn"
    normalized: bool = True
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)

    def __enter__(self) -> DuckdbMknModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        shutil.rmtree(self.path.parent, ignore_errors=True)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise ValueError(f"the model at {self.path} is closed")
        return self._con

    def sizes(self) -> list[int]:
        """Number of n-grams per order (the unigrams: every id of the vocabulary)."""
        return [
            int(self.con.sql(f"SELECT count(*) FROM p{n}").fetchall()[0][0])  # noqa: S608
            for n in range(1, self.order + 1)
        ]

    def tables(self, n: int) -> pa.Table:
        """The order-n n-grams and their ARPA values (``w1..wn``, ``logp``, ``bo``; bo 0 at
        the highest order), for tests and small models: in memory."""
        table = self.con.sql(self._rows(n) + " ORDER BY ALL").to_arrow_table()
        logp = _arpa_logp(_values(table, "p"))
        bo = _arpa_backoff(_values(table, "gamma")) if n < self.order else np.zeros_like(logp)
        grams = table.select([f"w{k}" for k in range(1, n + 1)])
        return grams.append_column("logp", pa.array(logp)).append_column("bo", pa.array(bo))

    def _rows(self, n: int) -> str:
        """The query of the order-n n-grams with their p and (below the highest order) gamma."""
        if n == self.order:
            return f"SELECT * FROM p{n}"  # noqa: S608
        return SQL["model_rows"].format(n=n, p_cols=_cols(n, "p."), match=_match("p", "b", n))

    def arpa_sizes(self) -> list[int]:
        """Number of n-grams per order in an ARPA file (:func:`lm.ngram.arpa.unigram_entries`)."""
        return [int(unigram_entries(self.seen).size), *self.sizes()[1:]]

    def write_arpa_section(self, f: Any, n: int, strings: pa.Array) -> None:
        """Write the order-n lines of an ARPA file, one batch of the table at a time."""
        with_bo = n < self.order
        if n == 1:
            ids = unigram_entries(self.seen)
            m1 = self.con.sql(self._rows(1) + " ORDER BY w1").to_arrow_table()
            logp1, bo1 = _arpa_logp(_values(m1, "p")), _arpa_backoff(_values(m1, "gamma"))
            write_lines(f, strings, ids[:, None], logp1[ids], bo1[ids])
            return
        reader = self.con.sql(self._rows(n)).to_arrow_reader(SCORE_BATCH)
        try:
            for batch in reader:
                grams = np.column_stack([batch.column(f"w{k}").to_numpy() for k in range(1, n + 1)])
                bo = _arpa_backoff(_values(batch, "gamma")) if with_bo else None
                write_lines(f, strings, grams, _arpa_logp(_values(batch, "p")), bo)
        finally:
            reader.close()

    def score(self, stream: np.ndarray) -> TokenScores:
        """Per-token scores of an evaluation stream (every token, ``</s>`` included) with
        KenLM's exact totals, equal to the in-memory model's."""
        table = stream_table(stream)
        if stream.size and int(stream.max()) >= self.vocab_size:
            raise ValueError(
                f"token id {int(stream.max())} is outside the model's vocabulary "
                f"(vocab_size={self.vocab_size})"
            )
        return self.score_tokens(table)

    def score_tokens(self, tokens: str | Path | pa.Table) -> TokenScores:
        """Score a token Parquet file (or table of its layout) without loading it whole."""
        n_max = self.order
        con = self.con
        gamma = con.execute("SELECT gamma FROM b1 WHERE w1 = $bos", {"bos": BOS}).fetchall()
        bos_bo = _arpa_backoff(np.array([gamma[0][0] if gamma else np.nan], dtype=F32))[0]
        con.register("windows", padded_windows(tokens, n_max))
        con.execute(SQL["evaluation_windows"])
        con.unregister("windows")

        values = ", ".join(
            [f"o{n}.p AS p{n}" for n in range(1, n_max + 1)]
            + [f"c{n}.gamma AS gamma{n}" for n in range(1, n_max)]
        )
        joins = "\n".join(
            [
                f"LEFT JOIN ({SQL[lookup].format(n=n, match=_match('m', 'q', n, n_max - n + 1))})"
                f" AS {alias}{n} ON {alias}{n}.pos = q.pos"
                for lookup, alias, top in (
                    ("order_lookup", "o", n_max),
                    ("backoff_lookup", "c", n_max - 1),
                )
                for n in range(1, top + 1)
            ]
        )
        query = SQL["score"].format(order=n_max, history=n_max - 1, values=values, joins=joins)
        parts: list[np.ndarray] = []
        words: list[np.ndarray] = []
        totals = KenlmTotals()
        finite = True
        carry = np.full(max(n_max - 1, 0), np.nan, dtype=np.float32)
        with _plain_errors("scoring", self.memory_limit, self.path.parent):
            result = con.sql(query).to_arrow_reader(SCORE_BATCH)
            try:
                for batch in result:
                    word = batch.column("word").to_numpy()
                    log10, carry = _backoff_batch(batch, n_max, carry, bos_bo)
                    parts.append(log10)
                    words.append(word)
                    if finite:
                        finite = not np.isneginf(log10).any()
                        if finite:
                            totals.add(log10, word, word == UNK)
            finally:
                result.close()
                con.execute("DROP TABLE eval_windows")
        log10 = np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)
        stream = np.concatenate(words) if words else np.empty(0, dtype=np.int32)
        oov = stream == UNK
        logprob = log10.astype(np.float64) * LN10
        if not finite:
            return TokenScores(logprob=logprob, oov=oov)
        totals.finish()
        return TokenScores(
            logprob=logprob, oov=oov, total_log10=totals.total, oov_log10=totals.oov_total
        )


def _values(batch: pa.RecordBatch | pa.Table, name: str) -> np.ndarray:
    """A float32 column with NULL as NaN."""
    column = batch.column(name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def _backoff_batch(
    batch: pa.RecordBatch, n_max: int, carry: np.ndarray, bos_bo: np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """log10 P of a batch of positions in stream order (docs/kenlm-mkn.md §7): log10 p of the
    longest n-gram in the model, plus the backoffs of the longer contexts, added in float32
    from the shortest context to the longest. The context of length j of a position is the
    window of length j that ends at the position before it (``carry`` holds the last
    position's backoffs for the next batch), or ``<s>`` alone at a sentence start."""
    size = batch.num_rows
    logp = [_arpa_logp(_values(batch, f"p{n}")) for n in range(1, n_max + 1)]
    score = logp[0].copy()
    order = np.ones(size, dtype=np.int8)
    for n in range(2, n_max + 1):
        hit = ~np.isnan(logp[n - 1])
        order[hit] = n
        score[hit] = logp[n - 1][hit]
    starts = batch.column("h1").to_numpy() == BOS
    new_carry = np.empty_like(carry)
    for j in range(1, n_max):
        # NaN where the window is no context (in the model or not): nothing to add, as KenLM
        # adds a backoff of 0 for an n-gram that is no context
        bo = _arpa_backoff(_values(batch, f"gamma{j}"), missing=np.nan)
        ctx = np.empty(size, dtype=np.float32)
        ctx[0] = carry[j - 1]
        ctx[1:] = bo[:-1]
        new_carry[j - 1] = bo[-1]
        ctx[starts] = bos_bo if j == 1 else np.nan
        add = ~np.isnan(ctx) & (order <= j)
        score[add] = (score[add] + ctx[add]).astype(np.float32)
    return score, new_carry


def estimate_mkn_duckdb(
    tokens: str | Path | pa.Table,
    order: int,
    vocab_size: int,
    *,
    memory_limit: int | None = None,
    spill_dir: str | Path | None = None,
    discount_fallback: Sequence[float] | None = DEFAULT_FALLBACK,
) -> DuckdbMknModel:
    """Estimate a KenLM-exact modified Kneser-Ney model of ``order`` >= 2 from a token Parquet
    file (or table of its layout) in a DuckDB database under ``spill_dir`` (default: a
    temporary folder). The process keeps within about ``memory_limit`` bytes (default
    :func:`lm.ngram.counting.default_memory_limit`; DuckDB gets :data:`DUCKDB_SHARE` of it).
    Same arguments and results as :func:`lm.ngram.fit` with ``"mkn"``."""
    if order < 2:
        raise ValueError(f"the out-of-core estimator needs order >= 2, got {order}")
    facts = StreamFacts.scan(tokens, vocab_size)
    if facts.positions == 0:
        raise ValueError("cannot fit an n-gram model on an empty training stream")
    if facts.raw_unigram[BOS]:
        raise ValueError("<s> never occurs in a token stream: it is context only")
    root = Path(spill_dir) if spill_dir is not None else Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    # a temporary name with our pid: `lmpipe check` removes it if this process is killed
    folder = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}mkn.{os.getpid()}.", dir=root))
    limit = memory_limit or default_memory_limit()
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": f"{int(limit * DUCKDB_SHARE)}B",
        "preserve_insertion_order": "false",
        "temp_directory": str(folder / "spill"),
    }
    path = folder / "model.duckdb"
    con = duckdb.connect(str(path), config=config)
    model = DuckdbMknModel(order, vocab_size, path, {}, limit, facts.raw_unigram > 0, _con=con)
    try:
        with _plain_errors(f"estimating the {order}-gram model", limit, root):
            model.details.update(
                _estimate(con, tokens, order, facts, discount_fallback, int(limit * DUCKDB_SHARE))
            )
    except BaseException:
        model.close()
        raise
    return model


def _estimate(
    con: duckdb.DuckDBPyConnection,
    tokens: str | Path | pa.Table,
    n_max: int,
    facts: StreamFacts,
    fallback: Sequence[float] | None,
    duckdb_bytes: int,
) -> dict[str, Any]:
    width = facts.raw_unigram.size
    con.register("windows", padded_windows(tokens, n_max))
    con.execute(SQL["full_counts"].format(cols=_cols(n_max)))
    con.unregister("windows")
    # adjusted counts, highest order first (§2)
    con.execute(SQL["highest_order"].format(n=n_max, cols=_cols(n_max)))
    for n in range(n_max - 1, 1, -1):
        con.execute(
            SQL["lower_order"].format(
                n=n,
                above=n + 1,
                suffix_as=_renamed(n, 2),
                tail_as=_renamed(n, n_max - n + 1),
                before_bos=f"w{n_max - n}",
                bos_col=f"w{n_max - n + 1}",
            ),
            {"bos": BOS},
        )
    a1 = np.zeros(width, dtype=np.int64)
    w, a = con.execute(SQL["continuation_of_unigrams"]).fetchnumpy().values()
    a1[np.asarray(w, dtype=np.int64)] = a
    # count-of-counts with the last-n-gram quirk (§3.3), discounts (§3.2)
    t = np.zeros((n_max, 4), dtype=np.int64)
    t[0] = count_of_counts(a1)
    for n in range(2, n_max + 1):
        t[n - 1] = con.execute(SQL["count_of_counts"].format(n=n)).fetchall()[0]
    unk_seen = bool(facts.raw_unigram[UNK] > 0)
    if con.execute(f"SELECT count(*) FROM g{n_max}").fetchall()[0][0]:  # noqa: S608
        _greatest_ngram_quirk(con, t, n_max, a1, facts, unk_seen)
    d, fell_back = discounts(t, fallback)
    # unigrams in numpy (vocabulary-sized), then orders 2..N in DuckDB (§4, §5)
    uniform_size = width - 2 + unk_seen
    p1 = unigram_probabilities(a1, d[0], uniform_size)
    con.register("p1_arrow", pa.table({"w1": np.arange(width, dtype=np.int32), "p": p1}))
    con.execute("CREATE TABLE p1 AS SELECT * FROM p1_arrow")
    con.unregister("p1_arrow")
    # Joins in the order written: g with its context, then with its suffix. Left to itself the
    # optimizer derives ctx.w_k = suffix.w_(k-1) from the two conditions and joins those two
    # tables first, on one column: billions of rows at 100 M tokens.
    con.execute("SET disabled_optimizers = 'join_order'")
    for n in range(2, n_max + 1):
        dk = {"d1": float(d[n - 1][0]), "d2": float(d[n - 1][1]), "d3": float(d[n - 1][2])}
        con.execute(SQL["contexts"].format(n=n, ctx_cols=_cols(n - 1)), dk)
        parts = _join_parts(con, n, facts.raw_unigram, duckdb_bytes) if n > 2 else [(0, width)]
        for i, (lo, hi) in enumerate(parts):
            con.execute(
                SQL["interpolate"].format(
                    n=n,
                    below=n - 1,
                    into=f"CREATE TABLE p{n} AS" if i == 0 else f"INSERT INTO p{n}",
                    g_cols=_cols(n, "g."),
                    ctx_join=_match("g", "h", n - 1),
                    suffix_join=_match("l", "g", n - 1, 2),
                    ctx_w2="h.w2" if n > 2 else "g.w2",
                ),
                {**dk, "lo": lo, "hi": hi},
            )
        if n < n_max:
            con.execute(f"DROP TABLE g{n}")
        # order n-1 is complete once its n-grams' backoffs (the contexts of order n) are known
        con.execute(SQL["drop_context_sums"].format(n=n))
        con.execute(SQL["rename_backoffs"].format(n=n, below=n - 1))
        con.execute("CHECKPOINT")  # the dropped tables' blocks become free for the next ones
    con.execute(f"DROP VIEW g{n_max}")
    con.execute("DROP TABLE full_counts")
    con.execute("CHECKPOINT")
    con.execute("RESET disabled_optimizers")  # scoring wants the optimizer's build sides
    return {
        "count_of_counts": t,
        "discounts": d,
        "fallback_orders": fell_back,
        "uniform_size": uniform_size,
    }


JOIN_ROW_BYTES = 32
"""Bytes of a hash-join row beyond its columns' (4 each): its hash, chain pointer and slot of
the pointer table, for :func:`_join_parts`. At 100 M Zipf tokens (4 GB) 24, 32 and 64 gave
176.5, 167.3 and 171.9 s, one part at 20 M (3 GB) with any of them, in the noise."""
MAX_JOIN_PARTS = 64


def _join_parts(
    con: duckdb.DuckDBPyConnection, n: int, raw_unigram: np.ndarray, duckdb_bytes: int
) -> list[tuple[int, int]]:
    """Ranges of the second token that split order n's interpolation so that each part's two
    hash tables (the contexts, n+1 columns; the order below, n columns) fit DuckDB's memory
    limit: one range where they fit, as at 20 M Zipf tokens; at 100 M the two joins of one
    statement spilled (126 of 222 s of the estimate; in parts, the whole estimate took
    167 s). Ranges hold about equal shares of the tokens' counts."""
    ctx_rows = int(con.execute(f"SELECT count(*) FROM ctx{n}").fetchall()[0][0])  # noqa: S608
    below_rows = int(con.execute(f"SELECT count(*) FROM p{n - 1}").fetchall()[0][0])  # noqa: S608
    need = ctx_rows * (4 * (n + 1) + JOIN_ROW_BYTES) + below_rows * (4 * n + JOIN_ROW_BYTES)
    k = min(MAX_JOIN_PARTS, max(1, -(-need // max(duckdb_bytes, 1))))
    width = raw_unigram.size
    if k == 1:
        return [(0, width)]
    share = np.cumsum(raw_unigram, dtype=np.float64)
    cuts = np.searchsorted(share, share[-1] * np.arange(1, k) / k, side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [width + 1]]))
    return [(int(lo), int(hi) - 1) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _greatest_ngram_quirk(
    con: duckdb.DuckDBPyConnection,
    t: np.ndarray,
    n_max: int,
    a1: np.ndarray,
    facts: StreamFacts,
    unk_seen: bool,
) -> None:
    """Apply §3.3 to ``t`` in place (as :func:`lm.ngram.mkn.count_of_counts_kenlm`): the
    suffixes of the greatest padded full N-gram in suffix order count with their raw count.
    Only when the highest order has n-grams (every sentence may be shorter than the order)."""

    def counts(suffix: np.ndarray) -> tuple[int, int]:
        k = len(suffix)
        values = {f"v{i}": int(v) for i, v in enumerate(suffix)}
        tail = " AND ".join(f"w{n_max - k + 1 + i} = $v{i}" for i in range(k))
        c = int(con.execute(SQL["raw_count"].format(match=tail), values).fetchall()[0][0])
        if suffix[0] == BOS:
            return c, c
        if k == 1:
            return c, int(a1[suffix[0]])
        own = " AND ".join(f"w{i + 1} = $v{i}" for i in range(k))
        return c, int(
            con.execute(SQL["adjusted_count"].format(n=k, match=own), values).fetchall()[0][0]
        )

    apply_last_ngram_quirk(t, _greatest_full_ngram(con, n_max, facts.ranks(unk_seen)), counts)


def _greatest_full_ngram(
    con: duckdb.DuckDBPyConnection, n_max: int, ranks: np.ndarray
) -> np.ndarray:
    """g* of §3.3 over the padded windows (missing oldest slots read as ``<s>``), greatest in
    suffix order (last token's rank first). Only the windows that end in the last token of
    greatest rank are read: usually a rare word, so a handful of rows."""
    last = con.execute(SQL["last_tokens"].format(last=f"w{n_max}")).fetchnumpy()["w"]
    best_last = int(last[np.argmax(ranks[last.astype(np.int64)])])
    rows = con.execute(
        SQL["windows_ending_in"].format(cols=_cols(n_max), last=f"w{n_max}"), {"w": best_last}
    ).fetchnumpy()
    grams = np.column_stack([rows[f"w{k}"].astype(np.int64) for k in range(1, n_max + 1)])
    grams[grams == PAST_BOS] = BOS
    return grams[np.lexsort(ranks[grams].T)[-1]].astype(np.int32)
