"""Relative-entropy pruning (lm/ngram/prune.py, docs/pruning.md) against SRILM's definitions.

The reference values are computed here step by step with plain floats from the model's own
conditional probabilities (``distribution``), by Stolcke's formulas as SRILM 1.7.3's
``Ngram::pruneProbs`` evaluates them; the kept sets follow from SRILM's protection rule,
written out again below. The literal sets and the hand-written model's figures were also
checked against SRILM 1.7.3 itself (``ngram -lm m.arpa -prune T -debug 4``), built for that
check only; see docs/pruning.md.
"""

from __future__ import annotations

import math
import random
import re
import warnings
from functools import cache
from pathlib import Path

import kenlm
import numpy as np
import pytest

from lmpipe.lm.ngram import fit, load_arpa, write_arpa
from lmpipe.lm.ngram.model import BackoffModel
from lmpipe.lm.ngram.prune import entropy_deltas, prune_entropy
from lmpipe.lm.ngram.registry import BACKOFF_METHODS
from lmpipe.lm.ngram.scoring import BackoffTables
from lmpipe.lm.vocab import BOS, EOS

from .conftest import encode


def quiet_fit(stream, order: int, method: str, vocab) -> BackoffModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = fit(stream, order, method, vocab_size=len(vocab))
    assert isinstance(model, BackoffModel)
    return model


def synthetic(sentences: int, seed: int, words: int = 30) -> list[str]:
    """A Zipf-ish text with some word-to-word structure, so that every order has n-grams
    worth keeping and n-grams worth pruning."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(words)]
    weights = [1 / (i + 1) for i in range(words)]
    lines = []
    for _ in range(sentences):
        sent: list[str] = []
        for _ in range(rng.randint(1, 9)):
            if sent and rng.random() < 0.5:
                sent.append(vocab[(vocab.index(sent[-1]) * 7 + 3) % words])
            else:
                sent.append(rng.choices(vocab, weights)[0])
        lines.append(" ".join(sent))
    return lines


TEXT = synthetic(300, 1)
HELD_OUT = synthetic(40, 7, words=34)  # a few words the training text lacks


@cache
def text_model(method: str, order: int) -> tuple[BackoffModel, tuple[str, ...]]:
    vocab, stream = encode(TEXT)
    return quiet_fit(stream, order, method, vocab), vocab.tokens


# --- the reference, in plain floats ----------------------------------------------------------


def plain_delta_h(model: BackoffModel, gram: tuple[int, ...]) -> float:
    """Stolcke's dH (log10 units) of removing the n-gram ``gram`` = h w (ids, oldest first)."""
    *h, w = gram
    n = len(gram)
    p_h = [float(x) for x in model.distribution(h)]  # p(. | h)
    p_low = [float(x) for x in model.distribution(h[1:])]  # p(. | h'), h' = h minus its oldest
    explicit = [g[-1] for g in real_ngrams(model, n) if list(g[:-1]) == h]
    numerator = 1.0 - sum(p_h[v] for v in explicit)  # mass h leaves to backing off
    denominator = 1.0 - sum(p_low[v] for v in explicit)
    row = int(model.trie.lookup(np.array([h]))[0])
    bow = 10.0 ** float(model.tables.backoff[n - 2][row])
    # P(h): the model's own chain p(h_1) p(h_2 | h_1) ..., a leading <s> counted as </s>
    p_hist = 1.0
    for k, word in enumerate(h):
        p_hist *= float(model.distribution(h[:k])[EOS if k == 0 and word == BOS else word])
    p, q = p_h[w], p_low[w]
    new_bow = (numerator + p) / (denominator + q)
    return -p_hist * (
        p * (math.log10(q * new_bow) - math.log10(p))
        + numerator * (math.log10(new_bow) - math.log10(bow))
    )


def plain_kept(model: BackoffModel, threshold: float) -> dict[int, set[tuple[int, ...]]]:
    """SRILM's decisions, highest order first: prune h w when 10**dH - 1 < threshold unless
    h w is still a context node (a kept h w x exists, or a surviving node y h w)."""
    kept: dict[int, set[tuple[int, ...]]] = {}
    nodes: set[tuple[int, ...]] = set()
    for n in range(model.order, 1, -1):
        grams = real_ngrams(model, n)
        kept[n] = {
            g for g in grams if not 10 ** plain_delta_h(model, g) - 1 < threshold or g in nodes
        }
        nodes = {g[:-1] for g in kept[n]} | {g[1:] for g in nodes}
    return kept


def real_ngrams(model: BackoffModel, n: int) -> set[tuple[int, ...]]:
    """The n-grams of the model (of SRILM's file of it): after pruning, the trie rows that are
    not blanks."""
    grams = model.trie.grams(n)
    if "pruning" in model.details:
        grams = grams[~model.details["pruning"]["blanks"][n - 1]]
    return {tuple(g) for g in grams.tolist()}


def blank_ngrams(pruned: BackoffModel, n: int) -> set[tuple[int, ...]]:
    """The suffixes a pruned model keeps only because a kept n-gram needs them."""
    return {
        tuple(g) for g in pruned.trie.grams(n)[pruned.details["pruning"]["blanks"][n - 1]].tolist()
    }


def words(grams: set[tuple[int, ...]], tokens) -> set[str]:
    return {" ".join(tokens[t] for t in g) for g in grams}


def assert_valid_trie(model: BackoffModel) -> None:
    trie = model.trie
    for n in range(2, model.order + 1):
        keys = trie.keys[n - 1]
        assert (np.diff(keys) > 0).all()
        np.testing.assert_array_equal(keys, trie.parent[n - 1] * trie.width + trie.token[n - 1])
        grams = trie.grams(n)
        np.testing.assert_array_equal(trie.lookup(grams), np.arange(len(grams)))
        np.testing.assert_array_equal(trie.grams(n - 1, trie.context[n - 1]), grams[:, :-1])
    assert len(model.tables.logp) == model.order and len(model.tables.backoff) == model.order - 1


# --- dH and the decisions --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["kn", "mkn"])
def test_delta_h_equals_the_step_by_step_value(small, method: str) -> None:
    vocab, stream = small
    model = quiet_fit(stream, 3, method, vocab)
    exact = entropy_deltas(model, srilm_precision=False)
    srilm = entropy_deltas(model)
    the, cat, sat, a, dog = (vocab.id(w) for w in ("the", "cat", "sat", "a", "dog"))
    # <s>-initial histories take P(<s>) = p(</s>) (LM::contextProb), not 1
    for gram in [(the, cat, sat), (BOS, the, cat), (BOS, a, dog), (cat, sat), (BOS, the)]:
        n = len(gram)
        row = int(model.trie.lookup(np.array([gram]))[0])
        want = plain_delta_h(model, gram)
        assert exact[n][row] == pytest.approx(want, rel=1e-9, abs=1e-15)
        # SRILM adds its log10 values as floats: a relative 1e-4 here, and a few 1e-9 where
        # dH is about 0 (mkn's p(the | <s>) is its own backoff estimate to 7 digits)
        assert srilm[n][row] == pytest.approx(want, rel=1e-4, abs=5e-9)


def srilm_float_delta_h(model: BackoffModel, gram: tuple[int, ...]) -> float:
    """dH as SRILM's C++ computes it: LogP values are floats (float32), probabilities and
    the sums doubles; one scalar operation at a time."""
    f32, ln10 = np.float32, math.log(10.0)
    trie, tables = model.trie, model.tables

    def logp(g) -> np.float32:
        return f32(tables.logp[len(g) - 1][int(trie.lookup(np.array([g]))[0])])

    def prob(x) -> float:  # LogPtoProb
        return math.exp(float(x) * ln10)

    *h, w = gram
    n = len(gram)
    explicit = [g[-1] for g in real_ngrams(model, n) if list(g[:-1]) == h]
    numerator, denominator = 1.0, 1.0
    for v in explicit:
        numerator -= prob(logp([*h, v]))
        denominator -= prob(logp([*h[1:], v]))
    bow = f32(tables.backoff[n - 2][int(trie.lookup(np.array([h]))[0])])
    joint = f32(0.0)  # contextProb: float sum, <s> first counted as </s>
    for k in range(1, len(h) + 1):
        joint = f32(joint + (logp([EOS]) if k == 1 and h[0] == BOS else logp(h[:k])))
    ngram, backoff = logp(gram), logp(gram[1:])
    new_bow = f32(math.log10(numerator + prob(ngram)) - math.log10(denominator + prob(backoff)))
    delta_prob = f32(f32(backoff + new_bow) - ngram)
    return -prob(joint) * (prob(ngram) * float(delta_prob) + numerator * float(f32(new_bow - bow)))


def test_srilm_precision_rounds_as_srilm_does(small) -> None:
    vocab, stream = small
    the, cat, sat = (vocab.id(w) for w in ("the", "cat", "sat"))
    for method in ("mkn", "kn"):
        model = quiet_fit(stream, 3, method, vocab)
        srilm = entropy_deltas(model)
        for gram in [(BOS, the), (the, cat), (cat, sat), (BOS, the, cat), (the, cat, sat)]:
            row = int(model.trie.lookup(np.array([gram]))[0])
            want = srilm_float_delta_h(model, gram)
            assert srilm[len(gram)][row] == pytest.approx(want, rel=1e-12, abs=1e-18)
    # mkn's <s> the is its own backoff estimate to 7 digits: dH is rounding, SRILM's floats
    mkn = quiet_fit(stream, 3, "mkn", vocab)
    row = int(mkn.trie.lookup(np.array([(BOS, the)]))[0])
    assert entropy_deltas(mkn)[2][row] == pytest.approx(-6.1757e-09, rel=1e-4)
    assert entropy_deltas(mkn, srilm_precision=False)[2][row] == pytest.approx(
        -7.2537e-09, rel=1e-4
    )


def test_kept_ngrams_at_a_threshold_follow_srilm(small) -> None:
    """mkn, order 3, threshold 0.005 (prune when dH < log10 1.005 = 0.002166): the trigrams
    with context <s> the go, so <s> the (dH ~ 0) is no context any more and goes; cat sat
    (dH 0.00202) stays as the context of the kept cat sat </s>; cat </s> and sat </s> go
    although a cat </s> and cat sat </s> stay: they remain as blanks."""
    vocab, stream = small
    model = quiet_fit(stream, 3, "mkn", vocab)
    pruned = prune_entropy(model, 0.005)
    tokens = vocab.tokens
    assert words(real_ngrams(pruned, 3), tokens) == {
        "a cat </s>", "a dog sat", "cat sat </s>", "on the cat", "the dog sat",
    }  # fmt: skip
    bigrams = {" ".join(tokens[t] for t in g) for g in model.trie.grams(2).tolist()}
    assert bigrams - words(real_ngrams(pruned, 2), tokens) == {"<s> the", "cat </s>", "sat </s>"}
    assert words(blank_ngrams(pruned, 2), tokens) == {"cat </s>", "sat </s>"}
    assert pruned.details["pruning"]["ngrams"] == (len(vocab), 13, 5)
    cat, sat = vocab.id("cat"), vocab.id("sat")
    assert 10 ** plain_delta_h(model, (cat, sat)) - 1 < 0.005  # protected, not kept on merit
    expected = plain_kept(model, 0.005)
    for n in (2, 3):
        assert real_ngrams(pruned, n) == expected[n]
    assert_valid_trie(pruned)


def test_decisions_on_a_larger_text_follow_srilm() -> None:
    model, _ = text_model("kn", 3)
    for threshold in (1e-4, 1e-3):
        pruned = prune_entropy(model, threshold)
        expected = plain_kept(model, threshold)
        for n in (2, 3):
            assert real_ngrams(pruned, n) == expected[n]
        assert_valid_trie(pruned)
    # pruning the pruned model again is pruning SRILM's file of it: the blanks are no n-grams
    once = prune_entropy(model, 1e-4)
    assert once.details["pruning"]["blanks"][1].any()
    twice = prune_entropy(once, 3e-4)
    expected = plain_kept(once, 3e-4)
    for n in (2, 3):
        assert real_ngrams(twice, n) == expected[n]
    assert_valid_trie(twice)


# A hand-written bigram model with SRILM's special cases (log10 values exact to 7 digits):
# context a: its bigrams cover every word, so the backoff mass is 0 (denominator 0) while the
# bigrams sum to 0.9: SRILM rescales them to sum to 1 and their dH is 0, so they all go;
# context c: its bigrams sum to 1.2, computeBOW fails, nothing is pruned and its backoff ends
# up log10 0; context <s>: no mass left (numerator 0, backoff log10 0), so dH is 0 * inf = NaN
# and nothing is pruned; context b: dH(b a) = -0.3 [0.5 log10(0.4/0.5) + 0.5 log10(0.6/0.5)]
# = 0.00265931 (SRILM prints DELTA-H 0.00265931, PPL-CHANGE 0.00614208).
EDGE_ARPA = """
\\data\\
ngram 1=7
ngram 2=9

\\1-grams:
-99\t<unk>
-99\t<s>\t-99
-0.69897\t</s>
-0.39794\ta\t-0.5
-0.5228787\tb\t-0.07918125
-1\tc\t0
-99\td

\\2-grams:
-0.2218487\t<s> a
-0.39794\t<s> b
-0.69897\ta a
-0.5228787\ta b
-0.5228787\ta </s>
-1\ta c
-0.30103\tb a
-0.154902\tc a
-0.30103\tc b

\\end\\
"""


def hand_model(text: str, tmp_path) -> tuple[BackoffModel, dict[str, int]]:
    """A BackoffModel of a hand-written ARPA file (every suffix present: no blanks)."""
    path = tmp_path / "hand.arpa"
    path.write_text(text.lstrip())
    arpa = load_arpa(path)
    assert arpa.blanks == 0

    def zero(tables):  # SRILM reads -99 as log10 0
        return tuple(np.where(t <= -99, -np.inf, t) for t in tables)

    tables = BackoffTables(logp=zero(arpa.tables.logp), backoff=zero(arpa.tables.backoff))
    model = BackoffModel(
        order=arpa.order, method="arpa", vocab_size=len(arpa.tokens), trie=arpa.trie, tables=tables
    )
    return model, {t: i for i, t in enumerate(arpa.tokens)}


def test_srilm_special_cases_on_a_hand_written_model(tmp_path) -> None:
    model, ids = hand_model(EDGE_ARPA, tmp_path)
    tokens = sorted(ids, key=ids.__getitem__)

    def row(*gram: str) -> int:
        return int(model.trie.lookup(np.array([[ids[w] for w in gram]]))[0])

    dh = entropy_deltas(model)[2]
    assert dh[row("b", "a")] == pytest.approx(0.00265931, rel=1e-5)
    assert 10 ** dh[row("b", "a")] - 1 == pytest.approx(0.00614208, rel=1e-5)
    assert all(abs(dh[row("a", w)]) < 1e-7 for w in ("a", "b", "</s>", "c"))
    assert np.isnan([dh[row("<s>", "a")], dh[row("c", "a")]]).all()
    for threshold, kept in [
        (0.01, {"<s> a", "<s> b", "c a", "c b"}),
        (0.001, {"<s> a", "<s> b", "b a", "c a", "c b"}),
    ]:
        pruned = prune_entropy(model, threshold)
        assert words(real_ngrams(pruned, 2), tokens) == kept
        backoff = pruned.tables.backoff[0]
        assert backoff[ids["a"]] == 0.0  # no bigram left: p(. | a) = p(.)
        assert backoff[ids["c"]] == backoff[ids["<s>"]] == -np.inf
        b_bow = math.log10(0.5 / 0.6) if "b a" in kept else 0.0
        assert backoff[ids["b"]] == pytest.approx(b_bow, abs=1e-6)


# A 4-gram model whose context <s> a has no backoff mass (its trigrams cover a, b, </s>, all
# that p(. | a) has) while they sum to 0.8: SRILM rescales them by 1/0.8 for good; dH is 0 for
# each, but <s> a b stays as the context of the kept <s> a b a (dH 0.0089515, P(<s> a b) =
# p(</s>) p(a|<s>) p(b|<s> a) = 0.2 x 0.7 x 0.4 = 0.056), with p = 0.4/0.8. Then bo(<s> a) =
# (1 - 0.5)/(1 - p(b|a)) = 1 and bo(a) = (1 - 0.5)/(1 - 0.3) once a a and a </s> are gone.
# Every figure is SRILM's.
SCALE_ARPA = """
\\data\\
ngram 1=5
ngram 2=5
ngram 3=4
ngram 4=1

\\1-grams:
-99\t<unk>
-99\t<s>\t-0.2218487
-0.6989700\t</s>
-0.3010300\ta\t0
-0.5228787\tb\t0

\\2-grams:
-0.1549020\t<s> a\t0
-0.5228787\ta a\t0
-0.3010300\ta b\t0
-0.6989700\ta </s>
-0.3010300\tb a\t0

\\3-grams:
-0.5228787\t<s> a a
-0.3979400\t<s> a b\t-0.6989700
-1.0000000\t<s> a </s>
-0.3010300\ta b a

\\4-grams:
-0.0457575\t<s> a b a

\\end\\
"""


def test_rescaled_context_keeps_its_rescaled_ngrams(tmp_path) -> None:
    model, ids = hand_model(SCALE_ARPA, tmp_path)
    tokens = sorted(ids, key=ids.__getitem__)
    dh = entropy_deltas(model)
    row = int(model.trie.lookup(np.array([[ids[w] for w in ("<s>", "a", "b", "a")]]))[0])
    assert 10 ** dh[4][row] - 1 == pytest.approx(0.0208255, rel=1e-5)
    assert np.nanmax(np.abs(dh[3])) < 1e-7  # the rescaled trigrams, and a b a (its own backoff)
    pruned = prune_entropy(model, 0.01)
    expected = {2: {"<s> a", "a b"}, 3: {"<s> a b"}, 4: {"<s> a b a"}}
    for n, kept in expected.items():
        assert words(real_ngrams(pruned, n), tokens) == kept
    assert words(blank_ngrams(pruned, 2), tokens) == {"b a"}

    def log10p(*gram: str) -> float:
        r = int(pruned.trie.lookup(np.array([[ids[w] for w in gram]]))[0])
        return float(pruned.tables.logp[len(gram) - 1][r])

    def bo(*gram: str) -> float:
        r = int(pruned.trie.lookup(np.array([[ids[w] for w in gram]]))[0])
        return float(pruned.tables.backoff[len(gram) - 1][r])

    assert log10p("<s>", "a", "b") == pytest.approx(math.log10(0.4 / 0.8), abs=1e-6)
    assert bo("<s>", "a") == pytest.approx(0.0, abs=1e-6)
    assert bo("a") == pytest.approx(math.log10(0.5 / 0.7), abs=1e-6)
    assert bo("<s>", "a", "b") == pytest.approx(math.log10(0.1 / 0.5), abs=1e-6)
    assert bo("<s>") == pytest.approx(math.log10(0.3 / 0.5), abs=1e-6)


# --- the pruned model ------------------------------------------------------------------------


@pytest.mark.parametrize("method", BACKOFF_METHODS)
def test_threshold_zero_keeps_everything(method: str) -> None:
    model, _ = text_model(method, 3)
    assert prune_entropy(model, 0.0) is model  # ngram skips pruneProbs for -prune 0
    # a threshold no n-gram falls under: nothing goes and recomputeBOWs finds the same weights
    same = prune_entropy(model, 1e-300)
    assert same.details["pruning"]["ngrams"] == tuple(model.trie.size(n) for n in (1, 2, 3))
    assert not any(b.any() for b in same.details["pruning"]["blanks"])
    for n in range(1, 4):
        np.testing.assert_array_equal(same.trie.keys[n - 1], model.trie.keys[n - 1])
        np.testing.assert_array_equal(same.tables.logp[n - 1], model.tables.logp[n - 1])
    tol = 2e-6 if model.kenlm_exact else 1e-9  # float32 tables: an ulp or so
    for n in (1, 2):
        before, after = model.tables.backoff[n - 1], same.tables.backoff[n - 1]
        # a leftover mass under SRILM's 3e-6 counts as 0 (Katz contexts nothing was discounted
        # in): log10 0, or log10 1 where the backed-off mass is under 3e-6 too (computeBOWs)
        tiny = before < math.log10(3e-6)
        assert np.isin(after[tiny], [-np.inf, 0.0]).all()
        np.testing.assert_allclose(after[~tiny], before[~tiny], atol=tol)


@pytest.mark.parametrize("method", BACKOFF_METHODS)
def test_a_large_threshold_leaves_unigrams(method: str) -> None:
    model, _ = text_model(method, 3)
    pruned = prune_entropy(model, 1e6)
    np.testing.assert_array_equal(pruned.tables.logp[0], model.tables.logp[0])
    if method == "katz":
        # contexts without leftover mass (no count discounted): SRILM's dH is NaN there, and
        # such n-grams stay; all else goes
        dh = entropy_deltas(model)
        top = pruned.details["pruning"]["rows"][2][~pruned.details["pruning"]["blanks"][2]]
        assert np.isnan(dh[3][top]).all()
        assert pruned.details["pruning"]["ngrams"][1] < model.trie.size(2)
        return
    assert [pruned.trie.size(n) for n in (1, 2, 3)] == [model.trie.size(1), 0, 0]
    assert (pruned.tables.backoff[0] == 0).all()
    a = model.trie.token[1][0]
    np.testing.assert_allclose(pruned.distribution([BOS, int(a)]), model.distribution([]))


@pytest.mark.parametrize("method", BACKOFF_METHODS)
def test_pruned_models_are_normalized(method: str) -> None:
    model, _ = text_model(method, 4)
    before = [t.copy() for t in (*model.tables.logp, *model.tables.backoff)]
    pruned = prune_entropy(model, 1e-4)
    for old, new in zip(before, (*model.tables.logp, *model.tables.backoff), strict=True):
        np.testing.assert_array_equal(old, new)  # the model itself is left as it was
    assert sum(pruned.details["pruning"]["ngrams"]) < sum(model.trie.size(n) for n in range(1, 5))
    assert_valid_trie(pruned)
    contexts = [[], [BOS]] + [list(g) for g in model.trie.grams(3)[::25].tolist()]
    contexts += [list(g) for g in model.trie.grams(2)[::20].tolist()]
    tol = 1e-5 if model.kenlm_exact else 1e-9
    for ctx in contexts:
        assert pruned.distribution(ctx).sum() == pytest.approx(1.0, abs=tol), ctx


def test_pruned_mkn_scores_as_kenlm_scores_its_arpa(tmp_path) -> None:
    model, tokens = text_model("mkn", 4)
    pruned = prune_entropy(model, 1e-4)
    blanks = pruned.details["pruning"]["blanks"]
    assert any(b.any() for b in blanks)  # suffixes SRILM drops: the case to check
    path = tmp_path / "pruned.arpa"
    write_arpa(pruned, path, tokens)
    vocab, stream = encode(HELD_OUT, encode(TEXT)[0])
    ours = pruned.score(stream)
    lm = kenlm.Model(str(path))
    theirs = np.array([s for line in HELD_OUT for s, _, _ in lm.full_scores(line)])
    np.testing.assert_allclose(ours.logprob / np.log(10), theirs, rtol=1e-6)
    total = sum(lm.score(line) for line in HELD_OUT)
    assert ours.total_log10 == pytest.approx(total, rel=1e-6)
    # SRILM's own file lacks the blanks; KenLM's loader puts back exactly the same values
    lines = path.read_text().split("\n")
    drop = {
        " ".join(tokens[t] for t in g)
        for n in range(2, pruned.order + 1)
        for g in pruned.trie.grams(n)[blanks[n - 1]].tolist()
    }
    kept = [ln for ln in lines if ln.count("\t") < 1 or ln.split("\t")[1] not in drop]
    for n in range(2, pruned.order + 1):
        size = pruned.details["pruning"]["ngrams"][n - 1]
        kept = [f"ngram {n}={size}" if ln.startswith(f"ngram {n}=") else ln for ln in kept]
    srilm_style = tmp_path / "srilm_style.arpa"
    srilm_style.write_text("\n".join(kept))
    lm2 = kenlm.Model(str(srilm_style))
    again = np.array([s for line in HELD_OUT for s, _, _ in lm2.full_scores(line)])
    np.testing.assert_array_equal(again, theirs)


def test_more_pruning_keeps_fewer_ngrams() -> None:
    model, _ = text_model("kn", 4)
    previous: list[set[int]] | None = None
    sizes = []
    for threshold in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
        info = prune_entropy(model, threshold).details["pruning"]
        kept = [set(r[~b].tolist()) for r, b in zip(info["rows"], info["blanks"], strict=True)]
        if previous is not None:
            assert all(k <= q for k, q in zip(kept, previous, strict=True))
        previous = kept
        sizes.append(sum(info["ngrams"][1:]))
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)


def test_min_order_and_history_model(small) -> None:
    vocab, stream = small
    model = quiet_fit(stream, 3, "kn", vocab)
    pruned = prune_entropy(model, 0.01, min_order=3)  # -minprune 3: bigrams untouched
    assert pruned.trie.size(2) == model.trie.size(2) and pruned.trie.size(3) < model.trie.size(3)
    np.testing.assert_array_equal(pruned.tables.logp[1], model.tables.logp[1])
    # -prune-history-lm: the model itself gives its own marginals; another one rescales dH
    own = entropy_deltas(model, srilm_precision=False)
    same = entropy_deltas(model, history=model, srilm_precision=False)
    for n in (2, 3):
        np.testing.assert_array_equal(own[n], same[n])
    other = quiet_fit(stream, 2, "witten-bell", vocab)
    rescaled = entropy_deltas(model, history=other, srilm_precision=False)
    the, cat, sat = (vocab.id(w) for w in ("the", "cat", "sat"))
    row = int(model.trie.lookup(np.array([[the, cat, sat]]))[0])
    ratio = (other.distribution([])[the] * other.distribution([the])[cat]) / (
        model.distribution([])[the] * model.distribution([the])[cat]
    )
    assert rescaled[3][row] == pytest.approx(own[3][row] * ratio, rel=1e-9)


def test_bad_arguments(small) -> None:
    vocab, stream = small
    model = quiet_fit(stream, 2, "kn", vocab)
    with pytest.raises(ValueError, match="threshold"):
        prune_entropy(model, -1e-6)
    with pytest.raises(ValueError, match="threshold"):
        prune_entropy(model, float("nan"))
    with pytest.raises(ValueError, match="min_order"):
        prune_entropy(model, 1e-3, min_order=1)
    with pytest.raises(TypeError, match="backoff"):
        prune_entropy(fit(stream, 2, "add-k", vocab_size=len(vocab)), 1e-3)  # type: ignore[arg-type]


def test_cli_prune_equals_the_library_and_exports_srilms_file(tmp_path: Path) -> None:
    """``lmpipe ngram --prune T`` scores the model ``prune_entropy`` gives, reports the n-grams
    kept, and writes an ARPA file without the blanks (as SRILM writes a pruned model), which
    kenlm scores as lmpipe does."""
    import json
    import subprocess
    import sys

    import kenlm

    words = "the cat sat on a mat and dog ran far away from home".split()
    rng = np.random.default_rng(3)
    lines = [" ".join(rng.choice(words, 7)) for _ in range(120)]
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("\n".join(lines[:100]) + "\n", encoding="utf-8")
    test.write_text("\n".join(lines[100:]) + "\n", encoding="utf-8")
    arpa = tmp_path / "pruned.arpa"

    def lmpipe(*extra: str) -> dict:
        r = subprocess.run(
            [sys.executable, "-m", "lmpipe.flows.cli", "ngram", "--train", str(train), "--test",
             str(test), "--order", "3", "--smoothing", "kn", "--json", "--home",
             str(tmp_path / "home"), *extra],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    full = lmpipe()
    pruned = lmpipe("--prune", "1e-3", "--arpa", str(arpa))
    vocab, stream = encode(lines[:100])
    model = prune_entropy(fit(stream, 3, "kn", vocab_size=len(vocab)), 1e-3)
    kept = sum(model.details["pruning"]["ngrams"])
    assert pruned["prune"] == 1e-3 and pruned["parameters"] == kept < full["parameters"]
    _, test_stream = encode(lines[100:], vocab)
    ppl = float(np.exp(-model.score(test_stream).logprob.mean()))
    assert pruned["perplexity"] == pytest.approx(ppl, rel=1e-12)
    body = arpa.read_text(encoding="utf-8")
    listed = sum(int(x) for x in re.findall(r"^ngram \d+=(\d+)$", body, re.M))
    assert listed == kept - 1  # the file leaves out <pad>, as every lmpipe ARPA file does
    ref = kenlm.Model(str(arpa))
    total = sum(ref.score(line) for line in lines[100:])
    assert 10 ** (-total / test_stream.size) == pytest.approx(ppl, rel=1e-6)
