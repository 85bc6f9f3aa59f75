"""Zipf helpers: rank/frequency tables and top n-grams."""

import numpy as np

from lmpipe.lm.ngram import rank_frequency, top_ngrams, zipf_exponent
from lmpipe.lm.vocab import EOS


def test_rank_frequency_and_top(small) -> None:
    vocab, stream = small
    table = rank_frequency(stream, (1, 2))
    uni = table[table.n == 1]
    assert uni["frequency"].tolist()[:3] == [5, 4, 4]  # </s>, then the / cat
    assert uni["rank"].tolist() == list(range(1, len(uni) + 1))
    assert uni["frequency"].sum() == stream.size
    top = top_ngrams(stream, 2, 2, vocab.tokens)
    assert top["text"].tolist() == ["<s> the", "the cat"]
    assert top["count"].tolist() == [3, 3]
    assert top_ngrams(stream, 1, 1)["ngram"].tolist() == [(EOS,)]


def test_zipf_exponent_of_a_power_law() -> None:
    freq = 1000.0 / np.arange(1, 200) ** 1.1
    assert abs(zipf_exponent(freq) - 1.1) < 1e-9
