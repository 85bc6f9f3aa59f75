"""Counting: padded n-grams by hand, DuckDB == in-memory, atomic Parquet output, pruning."""

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from lmpipe.lm.ngram import (
    StreamError,
    count_full_ngrams,
    count_ngrams,
    count_of_counts,
    stream_table,
)
from lmpipe.lm.vocab import BOS, EOS

from .conftest import encode


def as_dict(grams: np.ndarray, counts: np.ndarray) -> dict[tuple[int, ...], int]:
    return {tuple(int(t) for t in g): int(c) for g, c in zip(grams, counts, strict=True)}


def test_trigrams_by_hand() -> None:
    # "a b" / "a" with ids a=4, b=5: every real position ends one trigram, <s>-padded
    stream = np.array([4, 5, EOS, 4, EOS], dtype=np.int32)
    got = as_dict(*count_full_ngrams(stream, 3))
    assert got == {
        (BOS, BOS, 4): 2,
        (BOS, 4, 5): 1,
        (4, 5, EOS): 1,
        (BOS, 4, EOS): 1,
    }
    assert as_dict(*count_full_ngrams(stream, 1)) == {(4,): 2, (5,): 1, (EOS,): 2}


def sentence_windows(stream: np.ndarray, n: int) -> dict[tuple[int, ...], int]:
    """Plain-Python reference for the stored counts: every window of `<s> w.. </s>`, one <s> per
    sentence."""
    out: dict[tuple[int, ...], int] = {}
    sent: list[int] = [BOS]
    if n == 1:
        out[(BOS,)] = int((stream == EOS).sum())
    for tok in stream.tolist():
        sent.append(tok)
        if len(sent) - n >= 0:
            g = tuple(sent[-n:])
            out[g] = out.get(g, 0) + 1
        if tok == EOS:
            sent = [BOS]
    return out


def test_stored_counts_by_hand() -> None:
    from lmpipe.lm.ngram.counting import query_ngram_counts

    stream = np.array([4, 5, EOS, 4, EOS], dtype=np.int32)  # "a b" / "a"
    con = duckdb.connect()
    t3 = query_ngram_counts(con, stream_table(stream), 3)
    cols = np.column_stack([t3[f"w{k}"].to_numpy() for k in (1, 2, 3)])
    assert as_dict(cols, t3["count"].to_numpy()) == {
        (BOS, 4, 5): 1,
        (4, 5, EOS): 1,
        (BOS, 4, EOS): 1,
    }
    t1 = query_ngram_counts(con, stream_table(stream), 1)
    assert as_dict(t1["w1"].to_numpy()[:, None], t1["count"].to_numpy()) == {
        (BOS,): 2,
        (4,): 2,
        (5,): 1,
        (EOS,): 2,
    }


def test_duckdb_matches_plain_python(small) -> None:
    _, stream = small
    con = duckdb.connect()
    from lmpipe.lm.ngram.counting import query_ngram_counts

    for n in range(1, 8):
        table = query_ngram_counts(con, stream_table(stream), n)
        cols = np.column_stack([table[f"w{k}"].to_numpy() for k in range(1, n + 1)])
        assert as_dict(cols, table["count"].to_numpy()) == sentence_windows(stream, n)


def test_count_ngrams_writes_parquet_per_order(tmp_path, small) -> None:
    _, stream = small
    tokens = tmp_path / "tokens.parquet"
    pq.write_table(stream_table(stream), tokens)
    out = count_ngrams(tokens, 3, tmp_path / "counts", prune=(0, 0, 1))
    assert [o.n for o in out] == [1, 2, 3]
    for o in out:
        table = pq.read_table(o.path)
        assert table.column_names == [*(f"w{k}" for k in range(1, o.n + 1)), "count"]
        assert str(table.schema.field("w1").type) == "int32"
        assert str(table.schema.field("count").type) == "int64"
        assert o.tokens == sum(sentence_windows(stream, o.n).values())
        assert o.distinct == len(sentence_windows(stream, o.n))
    assert out[2].kept == out[2].distinct - out[2].count_of_counts[0]  # singletons pruned
    assert out[1].kept == out[1].distinct
    assert not list((tmp_path / "counts").rglob("*.tmp"))
    con = duckdb.connect()
    n3 = con.execute(
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = true, union_by_name = true)"
        " WHERE n = 3",
        [str(tmp_path / "counts" / "*" / "*.parquet")],
    ).fetchone()
    assert n3 == (out[2].kept,)


def test_count_of_counts() -> None:
    assert count_of_counts(np.array([1, 1, 2, 5, 4, 3, 3, 3])).tolist() == [2, 1, 3, 1]


def test_stream_contract() -> None:
    with pytest.raises(StreamError, match="end with </s>"):
        count_full_ngrams(np.array([4, 5], dtype=np.int32), 2)
    with pytest.raises(StreamError, match="context only"):
        count_full_ngrams(np.array([BOS, 4, EOS], dtype=np.int32), 2)


def test_order_longer_than_every_sentence() -> None:
    _, stream = encode(["a", "b a"])
    grams, counts = count_full_ngrams(stream, 6)
    assert counts.sum() == stream.size
    assert (grams[:, :3] == BOS).all()
