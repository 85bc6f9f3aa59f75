"""The probing tables of the binary form (lm.ngram.probing): lookups equal a binary search even
in long runs of occupied slots, and scores equal the suffix trie's bit for bit, chunk by chunk."""

import warnings

import numpy as np
import pytest

from lmpipe.lm.ngram import fit, load_arpa, probing, scoring, write_arpa
from lmpipe.lm.ngram.binary import BinaryModel, load_binary, write_binary
from lmpipe.lm.ngram.probing import ProbingTables, home_slots, score_probing
from lmpipe.lm.ngram.scoring import BackoffTables, score_backoff
from lmpipe.lm.ngram.trie import SuffixTrie

from .conftest import SMALL, encode

TEXT = [
    "the cat sat on the dog",
    "a zebra ran </s> down the road",  # a literal </s>: a word, the state goes on
    "<s> the bird sat",
    "dog",
    "cat cat cat the zebra",
]


def _arpa_model(tmp_path, order: int):
    vocab, train = encode(SMALL * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = fit(train, order, "mkn", vocab_size=len(vocab))
    write_arpa(model, tmp_path / "m.arpa", vocab.tokens)
    return load_arpa(tmp_path / "m.arpa")


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.logprob.view(np.uint64), b.logprob.view(np.uint64))
    np.testing.assert_array_equal(a.oov, b.oov)
    assert (repr(a.total_log10), repr(a.oov_log10)) == (repr(b.total_log10), repr(b.oov_log10))


def _flat_trie(keys: np.ndarray, width: int) -> tuple[SuffixTrie, BackoffTables]:
    """A two-order trie whose bigram keys are ``keys`` (suffix row * width + token), every
    unigram present: the probing table of order 2 then holds exactly these keys."""
    parent, token = (keys // width).astype(np.int32), (keys % width).astype(np.int32)
    uni = np.arange(width, dtype=np.int64)
    zeros = np.zeros(keys.size, dtype=np.int32)
    trie = SuffixTrie(
        width, (uni, keys), (uni.astype(np.int32) * 0, parent), (uni.astype(np.int32), token),
        (uni.astype(np.int32) * 0, zeros), (uni, zeros),
    )  # fmt: skip
    logp2 = np.arange(keys.size, dtype=np.float32)  # each key's row, to check what is found
    tables = BackoffTables(
        logp=(np.zeros(width, np.float32), logp2), backoff=(np.zeros(width, np.float32),)
    )
    return trie, tables


@pytest.mark.parametrize("slots_per_key", [1, 3])
def test_lookups_equal_a_binary_search(monkeypatch, slots_per_key: int) -> None:
    # one home slot per key makes long runs of occupied slots, where a search for an absent key
    # must stop at the first key whose home lies past its own
    monkeypatch.setattr(probing, "SLOTS_PER_KEY", slots_per_key)
    rng = np.random.default_rng(0)
    width = 97
    for size in (1, 7, 2000, 30_000):
        keys = np.unique(rng.integers(0, width * width, size))
        trie, tables = _flat_trie(keys, width)
        pt = ProbingTables.build(trie, tables)
        # a run longer than the shift tag holds doubles the home slots (only at 1 per key)
        assert pt.homes[0] in [slots_per_key * keys.size << k for k in range(4)]
        table = pt.records[0]
        occupied = np.flatnonzero(table["key"] >= 0)
        stored = table["key"][occupied]
        key, shift = stored & ((1 << 56) - 1), stored >> 56
        np.testing.assert_array_equal(np.sort(key), keys)
        homes = home_slots(key, pt.homes[0])
        np.testing.assert_array_equal(occupied - homes, shift)  # the tag: how far it was pushed
        assert (np.diff(homes) >= 0).all()  # in home order along the table
        assert table["key"][-1] == -1  # an empty slot ends the last run
        query = np.concatenate([keys, rng.integers(0, width * width + 50, 5000)])
        slot, rec = pt.find(2, query)
        row = np.searchsorted(keys, query)
        present = (row < keys.size) & (keys[np.minimum(row, keys.size - 1)] == query)
        np.testing.assert_array_equal(slot >= 0, present)
        np.testing.assert_array_equal(rec["logp"][present], row[present].astype(np.float32))
        np.testing.assert_array_equal(table["key"][slot[present]] & ((1 << 56) - 1), query[present])


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_scores_equal_the_tries_bit_for_bit(tmp_path, order: int) -> None:
    model = _arpa_model(tmp_path, order)
    stream, ends = model.encode_lines(TEXT * 3)
    expect = model.score_stream(stream, ends)
    pt = ProbingTables.build(model.trie, model.tables)
    for chunk in (1, 2, 5, 17, 1 << 14):
        by_trie = score_backoff(  # the trie scorer at the same chunking
            model.trie, model.tables, stream, kenlm_sums=True, chunk=chunk, validate=False,
            ends=ends,
        )  # fmt: skip
        _same(by_trie, expect)
        carry = np.zeros(max(order - 1, 0), dtype=pt.dtype)

        def chunk_scores(window, offsets, carry=carry):
            return probing.probing_chunk(pt, window, offsets, carry)

        got = scoring.score_chunks(chunk_scores, order, stream, ends, kenlm_sums=True, chunk=chunk)
        _same(got, expect)
    _same(score_probing(pt, stream, ends, kenlm_sums=True), expect)
    assert expect.oov.sum() == 12  # zebra x 2, road, bird per copy: OOV positions are scored


def test_binary_file_round_trips_byte_for_byte(tmp_path) -> None:
    model = _arpa_model(tmp_path, 4)
    write_binary(model, tmp_path / "a.bin")
    loaded = load_binary(tmp_path / "a.bin")
    assert isinstance(loaded, BinaryModel)
    assert (loaded.order, loaded.tokens, loaded.size) == (model.order, model.tokens, model.size)
    write_binary(loaded, tmp_path / "b.bin")  # a binary model writes itself as it was read
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    _same(loaded.score(TEXT), model.score(TEXT))
