"""Fast scoring: hash lookups equal binary searches, chunked scoring equals one pass, and the
reference procedure of docs/kenlm-mkn.md §7 (per-position histories, one lookup per context) gives
the same bits."""

import pickle
import warnings

import numpy as np
import pytest

from lmpipe.lm.metrics import LN10
from lmpipe.lm.ngram import fit, load_arpa, write_arpa
from lmpipe.lm.ngram.counting import sentence_offsets
from lmpipe.lm.ngram.scoring import backoff_log10, kenlm_totals, score_backoff
from lmpipe.lm.ngram.trie import KeyHash, find_rows, histories
from lmpipe.lm.vocab import EOS, UNK

from .conftest import SMALL, encode

TEST = ["the cat sat on the dog", "a cat ran down", "the bird sat", "dog", "cat cat cat the"]


def _fit(stream, vocab, order: int, method: str = "mkn"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fit(stream, order, method, vocab_size=len(vocab))


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.logprob.view(np.uint64), b.logprob.view(np.uint64))
    np.testing.assert_array_equal(a.oov, b.oov)
    assert repr(a.total_log10) == repr(b.total_log10)
    assert repr(a.oov_log10) == repr(b.oov_log10)


def test_key_hash_matches_binary_search() -> None:
    rng = np.random.default_rng(0)
    for size in (0, 1, 5, 1000, 50_000):
        keys = np.unique(rng.integers(0, 10 * size + 10, size))
        table = KeyHash.build(keys)
        query = np.concatenate([keys, rng.integers(0, 10 * size + 20, 3000)])
        expect = find_rows(keys, 1 << 40, query >> 40, query & ((1 << 40) - 1))
        np.testing.assert_array_equal(table.find(query), expect)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_scores_equal_the_reference_procedure(order: int) -> None:
    vocab, train = encode(SMALL * 3)
    _, test = encode(TEST + ["zebra cat", "the zebra sat down"], vocab)
    model = _fit(train, vocab, order)
    # §7 spelled out: the full history of every position, one lookup per context
    hist = histories(test, sentence_offsets(test), order - 1)
    log10 = backoff_log10(model.trie, model.tables, hist, test)
    total, oov_total = kenlm_totals(log10, test, test == UNK)
    scores = model.score(test)
    np.testing.assert_array_equal(
        scores.logprob.view(np.uint64), (log10.astype(np.float64) * LN10).view(np.uint64)
    )
    assert (scores.total_log10, scores.oov_log10) == (total, oov_total)


@pytest.mark.parametrize("method", ["mkn", "kn", "katz", "add-k", "mle", "stupid-backoff"])
def test_chunked_scoring_is_exact(method: str) -> None:
    vocab, train = encode(SMALL * 3)
    _, test = encode(TEST * 3 + ["zebra", "a dog sat on the cat"], vocab)
    for order in (2, 4):
        model = _fit(train, vocab, order, method)
        whole = model.score(test)
        for chunk in (1, 2, 3, 7, test.size - 1):
            _same(model.score(test, chunk=chunk), whole)


def test_chunks_split_long_sentences_exactly() -> None:
    # one sentence far longer than the chunks: its float32 total is carried across them
    rng = np.random.default_rng(1)
    vocab, train = encode(SMALL * 3)
    words = rng.integers(3, len(vocab), 5000).astype(np.int32)
    test = np.concatenate([words, [EOS], words[:10], [EOS]]).astype(np.int32)
    model = _fit(train, vocab, 3)
    whole = model.score(test, chunk=1 << 20)
    for chunk in (64, 999, 4999, 5000, 5001):
        _same(model.score(test, chunk=chunk), whole)


def test_arpa_model_scores_as_the_fitted_one(tmp_path) -> None:
    vocab, train = encode(SMALL * 3)
    model = _fit(train, vocab, 4)
    write_arpa(model, tmp_path / "m.arpa", vocab.tokens)
    loaded = load_arpa(tmp_path / "m.arpa")
    ours = model.score(encode(TEST, vocab)[1])
    theirs = loaded.score(TEST)
    _same(ours, theirs)


def test_pickled_trie_drops_the_hash_cache() -> None:
    vocab, train = encode(SMALL)
    model = _fit(train, vocab, 3)
    _, test = encode(TEST, vocab)
    before = model.score(test)
    assert model.trie._hashes  # built by scoring
    copy = pickle.loads(pickle.dumps(model))
    assert not copy.trie._hashes
    _same(copy.score(test), before)


def test_unchecked_stream_without_final_eos_keeps_its_last_sentence(tmp_path) -> None:
    vocab, train = encode(SMALL * 3)
    model = _fit(train, vocab, 3)
    write_arpa(model, tmp_path / "m.arpa", vocab.tokens)
    loaded = load_arpa(tmp_path / "m.arpa")
    stream = loaded.encode(TEST)[:-1]  # the last sentence lacks its </s>
    hist = histories(stream, sentence_offsets(stream), 2)
    log10 = backoff_log10(loaded.trie, loaded.tables, hist, stream)
    expect = kenlm_totals(log10, stream, stream == UNK)
    for chunk in (2, 5, 1 << 20):
        scores = score_backoff(
            loaded.trie, loaded.tables, stream, kenlm_sums=True, chunk=chunk, validate=False
        )
        assert (scores.total_log10, scores.oov_log10) == expect
