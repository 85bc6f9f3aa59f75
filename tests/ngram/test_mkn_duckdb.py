"""Out-of-core modified Kneser-Ney (lm/ngram/mkn_duckdb.py): bit for bit the in-memory model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from lmpipe.lm.ngram import (
    DiscountError,
    DiscountFallbackWarning,
    choose_engine,
    estimate_mkn_duckdb,
    fit,
    kenlm_perplexity,
    load_arpa,
    stream_table,
    write_arpa,
)
from lmpipe.lm.ngram import mkn_duckdb as mkn_duckdb_mod
from lmpipe.lm.ngram import windows as windows_mod
from lmpipe.lm.vocab import Vocab, build_vocab, encode_sentences

from .conftest import CORPORA, KENLM_TOY, SMALL, encode
from .test_mkn import ARPA_ROWS


def both(vocab: Vocab, stream: np.ndarray, order: int, tmp_path: Path, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        mem = fit(stream, order, "mkn", vocab_size=len(vocab), **params)
        disk = estimate_mkn_duckdb(
            stream_table(stream), order, len(vocab), spill_dir=tmp_path / "spill", **params
        )
    return mem, disk


def assert_same_model(mem, disk) -> None:
    """Every n-gram of every order, its log10 p and backoff, as float32 bit patterns."""
    assert np.array_equal(mem.details["count_of_counts"], disk.details["count_of_counts"])
    assert np.array_equal(mem.details["discounts"], disk.details["discounts"])
    assert mem.details["fallback_orders"] == disk.details["fallback_orders"]
    assert disk.sizes() == [mem.trie.size(n) for n in range(1, mem.order + 1)]
    for n in range(1, mem.order + 1):
        tab = disk.tables(n)
        grams = np.column_stack([tab.column(f"w{k}").to_numpy() for k in range(1, n + 1)])
        rows = mem.trie.lookup(grams)
        assert (rows >= 0).all()
        logp = tab.column("logp").to_numpy()
        assert np.array_equal(logp.view(np.int32), mem.tables.logp[n - 1][rows].view(np.int32))
        if n < mem.order:
            bo = tab.column("bo").to_numpy()
            assert np.array_equal(bo.view(np.int32), mem.tables.backoff[n - 1][rows].view(np.int32))


def assert_same_scores(mem, disk, stream: np.ndarray) -> None:
    a, b = mem.score(stream), disk.score(stream)
    assert np.array_equal(a.logprob, b.logprob)
    assert np.array_equal(a.oov, b.oov)
    assert (a.total_log10, a.oov_log10) == (b.total_log10, b.oov_log10)


def test_worked_example(tmp_path: Path) -> None:
    vocab, stream = encode(KENLM_TOY)
    mem, disk = both(vocab, stream, 3, tmp_path)
    with disk:
        assert_same_model(mem, disk)
        rows = {
            n: {tuple(r[:n]): r[n:] for r in zip(*disk.tables(n).to_pydict().values(), strict=True)}
            for n in range(1, 4)
        }
        for gram, (logp, bo) in ARPA_ROWS.items():
            row = rows[len(gram)].get(tuple(vocab.id(w) for w in gram))
            assert row and np.float32(row[0]) == np.float32(logp), gram
            if bo is not None:
                assert np.float32(row[1]) == np.float32(bo), gram
        _, test = encode(["the cat sat down", "a dog", "the bird sat"], vocab)
        assert_same_scores(mem, disk, test)
    assert not disk.path.exists()  # closing removes the database


@pytest.mark.parametrize("order", [2, 3, 5])
def test_small_corpus_every_order(tmp_path: Path, order: int) -> None:
    vocab, stream = encode(SMALL)
    mem, disk = both(vocab, stream, order, tmp_path)
    with disk:
        assert_same_model(mem, disk)
        _, test = encode(["the cat sat on the dog", "a bird", "cat"], vocab)
        assert_same_scores(mem, disk, test)


def test_orders_longer_than_sentences_and_literal_unk(tmp_path: Path) -> None:
    chars = [list(line) for line in ["abab", "ba", "a", "abba", "bbb"]]
    vocab = build_vocab(chars)
    mem, disk = both(vocab, encode_sentences(vocab, chars), 7, tmp_path)
    with disk:
        assert_same_model(mem, disk)
        assert_same_scores(mem, disk, encode_sentences(vocab, [list("abc"), list("bbbbbbbbb")]))
    vocab, stream = encode(["the <unk> sat", "a <unk>", "the cat sat", "a cat sat"])
    mem, disk = both(vocab, stream, 3, tmp_path)
    with disk:
        assert disk.details["uniform_size"] == vocab.predictable_size + 1
        assert_same_model(mem, disk)


def test_interpolation_in_parts_of_the_second_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the two hash tables of an order's interpolation would outgrow DuckDB's memory,
    the order is interpolated in ranges of its second token: the same model and scores."""
    text = (CORPORA / "timemachine.txt").read_text(encoding="utf-8")
    train = [ln.split() for ln in text.splitlines()[:1200] if ln.strip()]
    vocab = build_vocab(train)
    seen: list[list[tuple[int, int]]] = []
    real = mkn_duckdb_mod._join_parts

    def spy(*args: object) -> list[tuple[int, int]]:
        seen.append(real(*args))  # type: ignore[arg-type]
        return seen[-1]

    monkeypatch.setattr(mkn_duckdb_mod, "JOIN_ROW_BYTES", 10**9)
    monkeypatch.setattr(mkn_duckdb_mod, "_join_parts", spy)
    mem, disk = both(vocab, encode_sentences(vocab, train), 4, tmp_path)
    with disk:
        assert len(seen) == 2  # orders 3 and 4 (order 2's hash tables are vocabulary-sized)
        assert all(1 < len(parts) <= mkn_duckdb_mod.MAX_JOIN_PARTS for parts in seen)
        for parts in seen:  # consecutive ranges covering every id
            assert parts[0][0] == 0 and parts[-1][1] == len(vocab)
            assert all(a[1] + 1 == b[0] for a, b in zip(parts, parts[1:], strict=False))
        assert_same_model(mem, disk)
        assert_same_scores(
            mem, disk, encode_sentences(vocab, [ln.split() for ln in text.splitlines()[1200:1300]])
        )


def test_time_machine_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows cut from 1,000-id batches and scores fetched 777 rows at a time: the carried
    history and backoffs make every batch boundary invisible."""
    text = (CORPORA / "timemachine.txt").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    train = [ln.split() for ln in lines[:1500]]
    test = [ln.split() for ln in lines[1500:1800]]
    vocab = build_vocab(train)
    monkeypatch.setattr(windows_mod, "BATCH_ROWS", 1000)
    monkeypatch.setattr(mkn_duckdb_mod, "SCORE_BATCH", 777)
    mem, disk = both(vocab, encode_sentences(vocab, train), 4, tmp_path)
    with disk:
        assert_same_model(mem, disk)
        stream = encode_sentences(vocab, test)
        assert_same_scores(mem, disk, stream)
        ppl, ppl_excl = kenlm_perplexity(disk.score(stream))
        assert ppl > ppl_excl > 1


def test_arpa_export_has_the_same_lines(tmp_path: Path) -> None:
    vocab, stream = encode(SMALL)
    mem, disk = both(vocab, stream, 3, tmp_path)
    with disk:
        write_arpa(mem, tmp_path / "mem.arpa", vocab.tokens)
        write_arpa(disk, tmp_path / "disk.arpa", vocab.tokens)
    a = (tmp_path / "mem.arpa").read_text().split("\n\n")
    b = (tmp_path / "disk.arpa").read_text().split("\n\n")
    assert a[0] == b[0] and len(a) == len(b) == 5  # header, 3 sections, end
    for x, y in zip(a[1:], b[1:], strict=True):
        assert sorted(x.splitlines()) == sorted(y.splitlines())
    sentences = ["the cat sat on the dog", "a bird"]
    assert load_arpa(tmp_path / "disk.arpa").score(sentences).total_log10 == (
        load_arpa(tmp_path / "mem.arpa").score(sentences).total_log10
    )


def test_refused_fallback_raises_and_leaves_nothing(tmp_path: Path) -> None:
    vocab, stream = encode(KENLM_TOY)
    with pytest.raises(DiscountError):
        estimate_mkn_duckdb(
            stream_table(stream), 3, len(vocab), spill_dir=tmp_path, discount_fallback=None
        )
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_refused(tmp_path: Path) -> None:
    vocab, stream = encode(SMALL)
    with pytest.raises(ValueError, match="order >= 2"):
        estimate_mkn_duckdb(stream_table(stream), 1, len(vocab), spill_dir=tmp_path)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        estimate_mkn_duckdb(stream_table(stream), 3, len(vocab) - 1, spill_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_choose_engine() -> None:
    gb = 1 << 30
    # 10 M tokens x 5 orders x 60 bytes = 3 GB: fits 4 GB, not 2 GB
    assert choose_engine("auto", "mkn", 5, 10_000_000, 4 * gb) == "memory"
    assert choose_engine("auto", "mkn", 5, 10_000_000, 2 * gb) == "duckdb"
    assert choose_engine("memory", "mkn", 5, 10**9, gb) == "memory"
    assert choose_engine("duckdb", "mkn", 2, 10, gb) == "duckdb"
    assert choose_engine("duckdb", "kn", 5, 10**9, gb) == "memory"  # mkn only
    assert choose_engine("auto", "mkn", 1, 10**9, gb) == "memory"  # vocabulary-sized
    with pytest.raises(ValueError, match="unknown n-gram engine"):
        choose_engine("disk", "mkn", 3, 10, gb)


@pytest.mark.skipif(not (CORPORA / "ptb.zip").exists(), reason="shared corpora absent")
def test_ptb_out_of_core_equals_kenlm(tmp_path: Path) -> None:
    """KenLM's PTB test perplexities (docs/kenlm-mkn.md §10) to every digit, out of core, under a
    small memory limit."""
    import zipfile

    from .test_ptb_slow import PTB_KENLM

    with zipfile.ZipFile(CORPORA / "ptb.zip") as z:
        split = {
            k: [ln.split() for ln in z.read(f"ptb/ptb.{k}.txt").decode().splitlines() if ln.strip()]
            for k in ("train", "test")
        }
    vocab = build_vocab(split["train"])
    train, test = (encode_sentences(vocab, split[k]) for k in ("train", "test"))
    for order in (3, 5):
        with estimate_mkn_duckdb(
            stream_table(train), order, len(vocab), memory_limit=256 << 20, spill_dir=tmp_path
        ) as model:
            assert kenlm_perplexity(model.score(test))[0] == PTB_KENLM[order]
