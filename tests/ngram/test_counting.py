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


def test_sorted_and_hashed_factorization_agree_and_the_grams_come_in_suffix_order() -> None:
    from lmpipe.lm.ngram.counting import _factorize_hashed, _factorize_sorted

    rng = np.random.default_rng(3)
    code = rng.integers(0, 50, 2000).astype(np.int64) * 1_000_003
    ranks, distinct = _factorize_sorted(code, 11)
    ids, distinct_h = _factorize_hashed(code)
    assert distinct == distinct_h == np.unique(code).size
    assert (np.unique(code)[ranks] == code).all()  # the rank among the ascending distinct codes
    assert all(len(set(ranks[ids == i])) == 1 for i in range(distinct))

    stream = np.where(rng.random(3000) < 0.15, EOS, rng.integers(4, 30, 3000)).astype(np.int32)
    stream[-1] = EOS
    grams, counts = count_full_ngrams(stream, 4)
    newest_first = grams[:, ::-1]
    assert (np.lexsort(newest_first.T[::-1]) == np.arange(len(grams))).all()  # suffix order
    assert as_dict(grams, counts) == _python_full_ngrams(stream, 4)


def _python_full_ngrams(stream: np.ndarray, n: int) -> dict[tuple[int, ...], int]:
    """Every real position ends one n-gram, its history <s>-padded at the sentence start."""
    out: dict[tuple[int, ...], int] = {}
    sent: list[int] = [BOS] * (n - 1)
    for tok in stream.tolist():
        sent.append(tok)
        g = tuple(sent[-n:])
        out[g] = out.get(g, 0) + 1
        if tok == EOS:
            sent = [BOS] * (n - 1)
    return out


def _shuffled(grams, counts, previous, perm):
    """The linked grams in the order ``perm``, their predecessor links renumbered with them."""
    renumber = np.empty_like(perm)
    renumber[perm] = np.arange(len(perm))
    linked = np.where(previous[perm] >= 0, renumber[previous[perm]], -1)
    return grams[perm], counts[perm], linked


def test_the_trie_is_the_same_from_grams_in_any_order() -> None:
    """build_trie's one-pass unique (grams in suffix order) and np.unique (any order) agree,
    and so do the hashed and binary-searched lookups of find_rows."""
    from lmpipe.lm.ngram.counting import count_linked_ngrams
    from lmpipe.lm.ngram.trie import build_trie, find_rows

    rng = np.random.default_rng(5)
    stream = np.where(rng.random(40_000) < 0.1, EOS, rng.integers(4, 60, 40_000)).astype(np.int32)
    stream[-1] = EOS
    grams, counts, previous = count_linked_ngrams(stream, 5)
    shuffle = rng.permutation(len(grams))
    a = build_trie(grams, counts, 60, previous)
    s_grams, s_counts, s_previous = _shuffled(grams, counts, previous, shuffle)
    b = build_trie(s_grams, s_counts, 60, s_previous)
    for name in ("keys", "parent", "token", "context", "count"):
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            assert (x == y).all(), name
    keys = a.keys[3]
    rows = rng.integers(-1, a.keys[2].size, 30_000)
    toks = rng.integers(-1, 60, 30_000)
    hashed = find_rows(keys, 60, rows, toks)  # 30 k queries >= 2**14: the hash table
    searched = np.concatenate([find_rows(keys, 60, rows[i : i + 1000], toks[i : i + 1000])
                               for i in range(0, 30_000, 1000)])  # fmt: skip
    assert (hashed == searched).all() and (hashed >= 0).sum() > 100 and (hashed < 0).any()


def test_contexts_from_the_previous_window_equal_the_looked_up_ones() -> None:
    """build_trie's contexts gathered through each gram's predecessor (count_linked_ngrams) are
    the rows that looking each node's (g_1..g_{n-1}) up in the trie finds, for grams in suffix
    order and shuffled (the links renumbered with them); a sentence's first window has no
    predecessor."""
    from lmpipe.lm.ngram.counting import count_linked_ngrams
    from lmpipe.lm.ngram.trie import build_trie

    rng = np.random.default_rng(9)
    stream = np.where(rng.random(30_000) < 0.12, EOS, rng.integers(4, 40, 30_000)).astype(np.int32)
    stream[-1] = EOS
    for order in (3, 5):
        grams, counts, previous = count_linked_ngrams(stream, order)
        assert previous[(grams[:, -2] == BOS)].tolist() == [-1] * int((grams[:, -2] == BOS).sum())
        s_grams, s_counts, s_previous = _shuffled(
            grams, counts, previous, rng.permutation(len(grams))
        )
        for trie in (
            build_trie(grams, counts, 40, previous),
            build_trie(s_grams, s_counts, 40, s_previous),
        ):
            for n in range(2, order + 1):
                looked_up = trie.lookup(trie.grams(n)[:, :-1])
                assert (looked_up >= 0).all() and (trie.context[n - 1] == looked_up).all()
