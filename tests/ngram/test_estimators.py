"""Estimators other than mkn: hand-computed values, NLTK where it defines the same quantity,
normalisation over the predictable vocabulary, zero probabilities."""

import math
import warnings

import numpy as np
import pytest
from nltk.lm import KneserNeyInterpolated, Lidstone, WittenBellInterpolated
from nltk.lm.preprocessing import padded_everygram_pipeline

from lmpipe.lm.ngram import METHODS, DiscountWarning, fit
from lmpipe.lm.ngram.model import BackoffModel
from lmpipe.lm.ngram.trie import NO_TOKEN
from lmpipe.lm.vocab import BOS, EOS, UNK

from .conftest import SMALL, encode


def quiet_fit(stream, order, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fit(stream, order, method, **kw)


def prob(model, context: list[int], word: int) -> float:
    return float(model.distribution(context)[word])


def nltk_model(cls, order: int, *args, **kw):
    train, vocab = padded_everygram_pipeline(order, [s.split() for s in SMALL])
    model = cls(*args, order, **kw) if args else cls(order, **kw)
    model.fit(train, vocab)
    return model


def test_add_k_by_hand(small) -> None:
    vocab, stream = small
    v = vocab.predictable_size  # 8 words + </s> + <unk>
    assert v == 10
    the, cat, sat = (vocab.id(w) for w in ("the", "cat", "sat"))
    laplace = fit(stream, 2, "add-k", vocab_size=len(vocab))
    # c(the cat) = 3, c(the .) = 4
    assert prob(laplace, [the], cat) == pytest.approx((3 + 1) / (4 + 10), abs=1e-15)
    assert prob(laplace, [the], sat) == pytest.approx(1 / 14, abs=1e-15)
    # unigram add-0.5: c(cat) = 4 of 23 tokens (18 words and 5 </s>)
    uni = fit(stream, 1, "add-k", vocab_size=len(vocab), k=0.5)
    assert prob(uni, [], cat) == pytest.approx((4 + 0.5) / (23 + 5), abs=1e-15)
    mle = fit(stream, 3, "mle", vocab_size=len(vocab))
    assert prob(mle, [the, cat], sat) == pytest.approx(1 / 3, abs=1e-15)
    assert prob(mle, [BOS], the) == pytest.approx(3 / 5, abs=1e-15)


def test_lidstone_matches_nltk(small) -> None:
    # NLTK's V also counts <s>: give our model one more id so that both V's are 13
    vocab, stream = small
    ours = fit(stream, 3, "add-k", vocab_size=len(vocab) + 1, k=0.5)
    theirs = nltk_model(Lidstone, 3, 0.5)
    assert len(theirs.vocab) == vocab.predictable_size + 1
    for ctx, word in [
        (("the", "cat"), "sat"),
        (("the", "cat"), "ran"),
        (("dog", "sat"), "down"),
        (("cat", "sat"), "on"),
        (("a", "dog"), "cat"),
    ]:
        p = prob(ours, [vocab.id(w) for w in ctx], vocab.id(word))
        assert p == pytest.approx(theirs.score(word, list(ctx)), rel=1e-12)


def test_witten_bell_matches_nltk_at_the_highest_order(small) -> None:
    # NLTK's lowest order is an MLE unigram that gives <unk> nothing, so full probabilities
    # differ; its (alpha, gamma) of a trigram context are the same quantities as our u, gamma.
    vocab, stream = small
    ours = fit(stream, 3, "witten-bell", vocab_size=len(vocab))
    est = nltk_model(WittenBellInterpolated, 3).estimator
    for ctx, word in [(("the", "cat"), "sat"), (("the", "cat"), "ran"), (("dog", "sat"), "on")]:
        ids = [vocab.id(w) for w in ctx]
        alpha, gamma = est.alpha_gamma(word, ctx)
        our_gamma = 10 ** ours.tables.backoff[1][int(ours.trie.lookup(np.array([ids]))[0])]
        u = prob(ours, ids, vocab.id(word)) - our_gamma * prob(ours, ids[1:], vocab.id(word))
        assert our_gamma == pytest.approx(gamma, rel=1e-12)
        assert u == pytest.approx(alpha, abs=1e-12)


def test_kneser_ney_matches_nltk_at_the_highest_order(small) -> None:
    # NLTK uses one fixed discount for all orders and a uniform lowest order over its own V
    # (which counts <s>); with our highest-order discount its trigram (alpha, gamma) agree.
    vocab, stream = small
    ours = quiet_fit(stream, 3, "kn", vocab_size=len(vocab))
    d3 = ours.details["discounts"][2]
    est = nltk_model(KneserNeyInterpolated, 3, discount=d3).estimator
    for ctx, word in [(("the", "cat"), "sat"), (("the", "cat"), "ran"), (("a", "dog"), "sat")]:
        ids = [vocab.id(w) for w in ctx]
        alpha, gamma = est.alpha_gamma(word, ctx)
        our_gamma = 10 ** ours.tables.backoff[1][int(ours.trie.lookup(np.array([ids]))[0])]
        u = prob(ours, ids, vocab.id(word)) - our_gamma * prob(ours, ids[1:], vocab.id(word))
        assert our_gamma == pytest.approx(gamma, rel=1e-12)
        assert u == pytest.approx(alpha, abs=1e-12)


def test_kn_discount_and_unigram_by_hand(small) -> None:
    vocab, stream = small
    model = quiet_fit(stream, 2, "kn", vocab_size=len(vocab))
    # 16 distinct bigrams: 11 seen once, 3 twice (dog sat, <s> a, cat </s>), 2 three times
    assert model.details["discounts"][1] == pytest.approx(11 / (11 + 2 * 3))
    # continuation counts: the, cat, sat, dog 2 each; down, a, ran, on 1; </s> 4 (sum 16)
    d1 = model.details["discounts"][0]
    assert d1 == pytest.approx(4 / (4 + 2 * 4))
    s, types = 16, 9
    assert model.trie.count[0][vocab.id("cat")] == 4
    expected = (2 - d1) / s + d1 * types / s / vocab.predictable_size
    assert prob(model, [], vocab.id("cat")) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "stupid-backoff"])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distributions_sum_to_one(small, method: str, order: int) -> None:
    vocab, stream = small
    model = quiet_fit(stream, order, method, vocab_size=len(vocab))
    the, cat, sat, dog = (vocab.id(w) for w in ("the", "cat", "sat", "dog"))
    contexts = [[], [BOS], [BOS, the], [the, cat], [cat, sat], [dog, the, cat], [UNK, sat]]
    if method == "mle":
        contexts = contexts[:5]  # MLE of an unseen history is 0/0: NLTK's convention gives 0
    tol = 1e-6 if method == "mkn" else 1e-12
    for ctx in contexts:
        p = model.distribution(ctx)
        assert p.sum() == pytest.approx(1.0, abs=tol), (method, order, ctx)
        assert p[BOS] == 0


def test_stupid_backoff_is_flagged_and_scores(small) -> None:
    vocab, stream = small
    model = fit(stream, 3, "stupid-backoff", vocab_size=len(vocab))
    assert not model.normalized
    assert all(fit(stream, 2, m, vocab_size=len(vocab)).normalized for m in ("mle", "add-k"))
    the, cat, ran = (vocab.id(w) for w in ("the", "cat", "ran"))
    # "cat ran" seen once after "cat" (4 times): alpha * 1/4 since "the cat ran"... is seen
    assert prob(model, [the, cat], ran) == pytest.approx(1 / 3)
    assert prob(model, [vocab.id("a"), cat], ran) == pytest.approx(0.4 * 1 / 4)


def test_zero_probability_is_minus_inf_not_a_crash(small) -> None:
    vocab, stream = small
    _, test = encode(["the cat flew"], vocab)  # "flew" -> <unk>, never seen in training
    scores = fit(stream, 2, "mle", vocab_size=len(vocab)).score(test)
    assert math.isinf(scores.logprob[2]) and scores.logprob[2] < 0
    assert scores.oov.tolist() == [False, False, True, False]
    assert np.isfinite(fit(stream, 2, "kn", vocab_size=len(vocab)).score(test).logprob).all()


def test_bad_parameters(small) -> None:
    vocab, stream = small
    with pytest.raises(ValueError, match="unknown smoothing"):
        fit(stream, 2, "good-turing", vocab_size=len(vocab))
    with pytest.raises(TypeError, match="takes no parameter k"):
        fit(stream, 2, "kn", vocab_size=len(vocab), k=1)
    with pytest.raises(ValueError, match="outside|>= vocab_size"):
        fit(stream, 2, "kn", vocab_size=4)


def test_katz_warns_on_tiny_data_and_stays_normalised(small) -> None:
    vocab, stream = small
    with pytest.warns(DiscountWarning, match="katz"):
        model = fit(stream, 3, "katz", vocab_size=len(vocab))
    assert isinstance(model, BackoffModel)
    hist = np.full((1, 2), NO_TOKEN)
    assert model.log10_prob(hist, np.array([EOS])).shape == (1,)
