import math

import numpy as np

from lmpipe.lm.metrics import TokenScores, summarize


def test_perplexity_bits_and_oov_by_hand():
    # p = 1/2, 1/4, 1/8 (an OOV), 1/2
    lp = np.log([0.5, 0.25, 0.125, 0.5])
    oov = np.array([False, False, True, False])
    r = summarize(TokenScores(lp, oov), n_bytes=6)
    assert r.tokens == 4 and r.oov == 1 and r.zero_prob == 0
    assert math.isclose(r.perplexity, 2 ** (7 / 4))
    assert math.isclose(r.perplexity_excluding_oov, 2 ** (4 / 3))
    assert math.isclose(r.bits_per_token, 7 / 4)
    assert math.isclose(r.bits_per_byte, 7 / 6)


def test_zero_probability_gives_inf_and_is_counted():
    lp = np.array([np.log(0.5), -np.inf])
    r = summarize(TokenScores(lp, np.array([False, False])), n_bytes=2)
    assert r.perplexity == math.inf and r.zero_prob == 1 and r.perplexity_excluding_oov == math.inf


def test_zero_probability_on_an_oov_leaves_the_excluding_figure_finite():
    lp = np.array([np.log(0.5), -np.inf])
    r = summarize(TokenScores(lp, np.array([False, True])), n_bytes=2)
    assert r.perplexity == math.inf and math.isclose(r.perplexity_excluding_oov, 2.0)


def test_exact_log10_totals_take_precedence():
    lp = np.log10([0.1, 0.1]) * math.log(10)
    r = summarize(TokenScores(lp, np.zeros(2, bool), total_log10=-2.0, oov_log10=0.0), n_bytes=1)
    assert math.isclose(r.perplexity, 10.0)
