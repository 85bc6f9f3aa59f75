"""KenLM-exact modified Kneser-Ney: the worked example of docs/kenlm-mkn.md §9 to every digit."""

import warnings

import numpy as np
import pytest

from lmpipe.lm.ngram import DiscountError, DiscountFallbackWarning, fit, kenlm_perplexity
from lmpipe.lm.vocab import BOS, EOS, UNK

from .conftest import encode

# n-gram -> (log10 p, log10 backoff or None), as printed in docs/kenlm-mkn.md §9
ARPA_ROWS = {
    ("<unk>",): (-1.0694214, 0.0),
    ("<s>",): (0.0, -0.30103),
    ("</s>",): (-1.0694214, 0.0),
    ("the",): (-0.8837849, -0.30103),
    ("cat",): (-0.8141489, -0.30103),
    ("<s>", "the"): (-0.39938182, -0.30103),
    ("<s>", "a"): (-0.6344978, -0.30103),
    ("the", "cat"): (-0.4858448, -0.30103),
    ("cat", "</s>"): (-0.5337055, 0.0),
    ("<s>", "the", "cat"): (-0.38367966, None),
    ("the", "cat", "sat"): (-0.1782558, None),
    ("sat", "down", "</s>"): (-0.11277283, None),
}


def fit_toy(toy, **params):
    vocab, stream = toy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        return fit(stream, 3, "mkn", vocab_size=len(vocab), **params)


def test_worked_example_arpa_values(toy) -> None:
    vocab, _ = toy
    model = fit_toy(toy)
    for words, (logp, backoff) in ARPA_ROWS.items():
        gram = np.array([[vocab.id(w) for w in words]])
        n = len(words)
        row = int(model.trie.lookup(gram)[0])
        assert row >= 0, words
        assert model.tables.logp[n - 1][row] == np.float32(logp), words
        if backoff is not None:
            assert model.tables.backoff[n - 1][row] == np.float32(backoff), words
    assert model.details["fallback_orders"] == (2, 3)
    np.testing.assert_array_equal(model.details["count_of_counts"][0], [4, 2, 1, 0])
    np.testing.assert_array_equal(
        model.details["discounts"][0], np.array([0.5, 1.25, 3.0], dtype=np.float32)
    )


def test_worked_example_perplexities(toy) -> None:
    vocab, _ = toy
    model = fit_toy(toy)
    _, test = encode(["the cat sat down", "the bird sat"], vocab)
    scores = model.score(test)
    log10 = scores.logprob / np.log(10)
    expected = [
        -0.39938182,
        -0.38367966,
        -0.1782558,
        -0.80224967,
        -0.11277283,
        -0.39938182,
        -1.6714815,
        -0.8141489,
        -0.5337055,
    ]
    np.testing.assert_array_equal(log10.astype(np.float32), np.array(expected, np.float32))
    assert scores.oov.tolist() == [False] * 6 + [True, False, False]
    assert kenlm_perplexity(scores) == (3.875606832595709, 2.837572657842173)


def test_fallback_warns_and_can_be_refused(toy) -> None:
    vocab, stream = toy
    with pytest.warns(DiscountFallbackWarning, match=r"order [23].*discount_fallback"):
        fit(stream, 3, "mkn", vocab_size=len(vocab))
    with pytest.raises(DiscountError, match="order 2: count-of-counts t1..t4 = 10, 1, 0, 0"):
        fit(stream, 3, "mkn", vocab_size=len(vocab), discount_fallback=None)
    custom = fit_toy(toy, discount_fallback=(0.4, 0.9, 1.2))
    np.testing.assert_array_equal(
        custom.details["discounts"][2], np.array([0.4, 0.9, 1.2], dtype=np.float32)
    )


def test_char_level_and_orders_longer_than_sentences() -> None:
    lines = ["abab", "ba", "a", "abba", "bbb"]
    chars = [list(line) for line in lines]
    from lmpipe.lm.vocab import build_vocab, encode_sentences

    vocab = build_vocab(chars)
    stream = encode_sentences(vocab, chars)
    with pytest.warns(DiscountFallbackWarning):
        model = fit(stream, 7, "mkn", vocab_size=len(vocab))
    scores = model.score(encode_sentences(vocab, [list("abc"), list("bbbbbbbbb")]))
    assert np.isfinite(scores.logprob).all()
    assert scores.oov.sum() == 1  # "c"
    p = model.distribution([BOS, vocab.id("a")])
    assert abs(p.sum() - 1) < 1e-6 and p[UNK] > 0 and p[EOS] > 0


def test_unk_in_training_counts_as_word_plus_zeroton() -> None:
    # PTB ships "<unk>" as a word; KenLM's own zeroton <unk> then still counts in V
    vocab, stream = encode(["the <unk> sat", "a <unk>", "the cat sat", "a cat sat"])
    with pytest.warns(DiscountFallbackWarning):
        model = fit(stream, 2, "mkn", vocab_size=len(vocab))
    assert model.details["uniform_size"] == vocab.predictable_size + 1
    assert model.trie.count[0][UNK] == 2


def test_kenlm_word_ids_follow_first_appearance() -> None:
    """<unk>=0, <s>=1, </s>=2, then the words in the order they first appear in the training
    stream (not by id or count); ids never seen rank past every seen one. A literal <unk> seen
    in training is numbered where it first appears when it is treated as a word."""
    from lmpipe.lm.ngram.mkn import first_appearance_ranks

    stream = np.array([7, 5, 7, 2, 4, 5, 0, 9, 2], dtype=np.int32)  # ids 4..9 words, 0 <unk>
    ranks = first_appearance_ranks(stream, 10, unk_is_word=False)
    assert ranks[[0, 1, 2]].tolist() == [0, 1, 2]
    assert ranks[[7, 5, 4, 9]].tolist() == [3, 4, 5, 6]  # first seen at positions 0, 1, 4, 7
    assert ranks[[3, 6, 8]].tolist() == [11, 11, 11]  # <pad> and ids not in the stream
    as_word = first_appearance_ranks(stream, 10, unk_is_word=True)
    assert as_word[[7, 5, 4, 0, 9]].tolist() == [3, 4, 5, 6, 7]
