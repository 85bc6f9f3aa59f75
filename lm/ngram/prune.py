"""Relative-entropy pruning of backoff models (Stolcke 1998), exactly as SRILM's
``ngram -order N -lm model.arpa -prune THRESHOLD`` does it (docs/pruning.md).

SRILM's ``Ngram::pruneProbs`` (``lm/src/NgramLM.cc``, SRILM 1.7.3), for the context lengths
i = N-1 down to 1 (the orders n = i+1 from the highest down to 2, ``-minprune``), for every
context h of length i and every n-gram h w in the model:

    num(h) = 1 - sum_{v: hv in model} p(v|h),   den(h) = 1 - sum_{v: hv in model} p(v|h')
    bo'(h) = (num(h) + p(w|h)) / (den(h) + p(w|h'))            h' = h without its oldest word
    dH     = -P(h) [ p(w|h) (log10 p(w|h') + log10 bo'(h) - log10 p(w|h))
                     + num(h) (log10 bo'(h) - log10 bo(h)) ]
    prune h w  iff  threshold > 0  and  10**dH - 1 < threshold  and  h w is no context node

(``LogPtoProb`` is 10**x: SRILM's LogP is log10, so dH is in log10 units and 10**dH - 1 is the
relative change of the training-set perplexity.) P(h) is ``LM::contextProb``: the chain of the
model's own conditional probabilities of the history's words, the oldest ``<s>`` replaced by
``</s>`` (P(<s>) = p(</s>), the unigram marginal of a sentence start). Every quantity of one
order comes from the model as given: the higher orders pruned so far change neither the
probabilities of orders <= n nor the backoffs of contexts shorter than n, and SRILM recomputes
no backoff until the end. What the higher orders change is which n-grams are protected: h w
stays while it is a context node, i.e. a kept (n+1)-gram h w x exists or a still-present
longer context y h w has it as its suffix (a context node is removed once all its n-grams are
pruned and no longer context extends it). Afterwards ``recomputeBOWs`` renormalises every
context, shortest first: bo(h) = num(h) / den(h) over the kept n-grams, den from the pruned
model's backed-off p(w|h'). SRILM's sanity rules (numerators and denominators under 3e-6 count
as 0, and what follows from that) apply throughout. Unigrams are left as they are (SRILM only
spreads a unigram mass above 3e-6 that a normalised model does not leave).

SRILM may keep h w x while pruning its suffix w x (only contexts are protected). The suffix
trie needs every suffix, so such suffixes stay as *blanks*: rows whose probability is what
backing off gives, p(w x) = bo(w) p(x), and whose backoff is 0 -- what KenLM's ARPA loader
inserts for SRILM's pruned files (``lm.ngram.arpa.load_arpa``). They change no score and no
backoff (a blank is its own backoff estimate). ``details["pruning"]`` marks them, and pruning
a pruned model again treats them as absent, as SRILM does with its own file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmpipe.lm.metrics import LN10
from lmpipe.lm.ngram.model import BackoffModel, NgramModel
from lmpipe.lm.ngram.scoring import BackoffTables
from lmpipe.lm.ngram.trie import NO_TOKEN, SuffixTrie, subtrie
from lmpipe.lm.vocab import BOS, EOS

PROB_EPSILON = 3e-06
"""SRILM's ``Prob_Epsilon`` (``lm/src/Prob.cc``): backoff numerators and denominators smaller in
magnitude count as 0 (``Ngram::computeBOW``)."""

Rounding = Callable[[np.ndarray], np.ndarray]


def _f32(x: np.ndarray) -> np.ndarray:
    """SRILM's LogP is a C ``float``: every LogP it stores or adds is rounded to float32.
    Rounding a double result of +, -, * to float32 equals the float32 operation (53 >= 2*24+2
    bits, so the double rounding is innocuous)."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def _same(x: np.ndarray) -> np.ndarray:
    return np.array(x, dtype=np.float64)  # a copy: the model's tables are never written


def _prob(logp: np.ndarray) -> np.ndarray:
    """SRILM's ``LogPtoProb``: exp(x ln 10) in double, 0 for log10 0."""
    return np.exp(logp * LN10)


@dataclass(frozen=True)
class _BowTerms:
    """``Ngram::computeBOW`` of every context of one order: its numerator and denominator
    after SRILM's rounding rules, whether it succeeded, and the log10 factor its n-grams were
    rescaled by (0 where none)."""

    num: np.ndarray
    den: np.ndarray
    ok: np.ndarray
    scale: np.ndarray


def _bow_terms(num: np.ndarray, den: np.ndarray) -> _BowTerms:
    """SRILM's sanity rules, in its order: |x| < eps counts as 0; no backoff mass left
    (den < eps) with num > eps rescales the context's n-grams to sum to 1 (num = den = 0);
    num < 0, or den <= 0 with num > eps, fails (the context is skipped); den <= 0 with
    num <= eps gives num = den = 0."""
    num = np.where(np.abs(num) < PROB_EPSILON, 0.0, num)
    den = np.where(np.abs(den) < PROB_EPSILON, 0.0, den)
    rescale = (den < PROB_EPSILON) & (num > PROB_EPSILON)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(rescale, -np.log10(np.where(rescale, 1.0 - num, 1.0)), 0.0)
    fail = ~rescale & ((num < 0) | ((den <= 0) & (num > PROB_EPSILON)))
    zero = rescale | (~fail & (den <= 0))
    num = np.where(zero, 0.0, num)
    den = np.where(zero, 0.0, den)
    return _BowTerms(num=num, den=den, ok=~fail, scale=scale)


def _bow(terms: _BowTerms) -> np.ndarray:
    """``Ngram::computeBOWs``: log10 num - log10 den; 0 (LogP_One) where both are below eps,
    -inf (LogP_Zero, SRILM's value for an improper context) where computeBOW failed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bow = np.log10(terms.num) - np.log10(terms.den)
    bow = np.where((terms.num < PROB_EPSILON) & (terms.den < PROB_EPSILON), 0.0, bow)
    return np.where(terms.ok, bow, -np.inf)


def _context_sums(trie: SuffixTrie, n: int, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Sum of ``values`` over the order-n ``rows`` per context (order n-1 row)."""
    ctx = trie.context[n - 1][rows]
    return np.bincount(ctx, weights=values, minlength=trie.size(n - 1))


def _history_log10(
    model: BackoffModel, history: NgramModel | None = None, *, rounding: Rounding = _same
) -> list[np.ndarray]:
    """log10 P(h) of every n-gram h of orders 1..N-1 as a history (``LM::contextProb``): the
    sum of log10 p(h_k | h_1..h_{k-1}) over its words, with p(</s>) for a leading ``<s>``.

    With the model itself each factor is the logp of the prefix h_1..h_k, a model n-gram, so
    the sum runs up the context rows. ``history`` is SRILM's ``-prune-history-lm``: another
    model over the same ids gives the factors (Chelba et al. 2010 advise it for KN models,
    whose lower orders are poor marginals). ``rounding`` is applied to every factor and
    partial sum (SRILM adds LogP floats)."""
    trie = model.trie
    out: list[np.ndarray] = []
    if history is None:
        first = rounding(model.tables.logp[0])
        first[BOS] = first[EOS]
        out.append(first)
        for n in range(2, model.order):
            logp = rounding(model.tables.logp[n - 1])
            out.append(rounding(out[-1][trie.context[n - 1]] + logp))
        return out
    if history.vocab_size != model.vocab_size:
        raise ValueError("the history model must share the pruned model's vocabulary")
    width = max(history.order - 1, 0)
    for n in range(1, model.order):
        grams = trie.grams(n).astype(np.int64)
        total = np.zeros(len(grams))
        for k in range(n):
            word = grams[:, k].copy()
            if k == 0:
                word[word == BOS] = EOS
            hist = np.full((len(grams), width), NO_TOKEN, dtype=np.int64)
            back = grams[:, :k][:, ::-1][:, :width]  # most recent first, truncated
            hist[:, : back.shape[1]] = back
            total = rounding(total + rounding(history.log10_prob(hist, word)))
        out.append(total)
    return out


@dataclass(frozen=True)
class _Order:
    """What ``pruneProbs`` computes for the n-grams of one order: dH per row (NaN where SRILM
    cannot prune: a failed context, or 0 * inf), and per context (order n-1 row) whether its
    computeBOW succeeded and the log10 factor computeBOW rescaled its n-grams by (0: none)."""

    delta_h: np.ndarray
    context_ok: np.ndarray
    scale: np.ndarray


def _order_deltas(
    model: BackoffModel, n: int, hist_log10: np.ndarray, rounding: Rounding, real: np.ndarray
) -> _Order:
    trie = model.trie
    ctx = trie.context[n - 1]
    rows = np.flatnonzero(real)
    logp = rounding(model.tables.logp[n - 1])
    # p(w|h') is the logp of the suffix h' w, a trie row (a blank holds the backed-off value)
    lower = rounding(model.tables.logp[n - 2][trie.parent[n - 1]])
    terms = _bow_terms(
        1.0 - _context_sums(trie, n, _prob(logp[rows]), rows),
        1.0 - _context_sums(trie, n, _prob(lower[rows]), rows),
    )
    logp = np.where(terms.scale[ctx] != 0, rounding(logp + rounding(terms.scale)[ctx]), logp)
    num, den = terms.num[ctx], terms.den[ctx]
    bow = rounding(model.tables.backoff[n - 2])[ctx]
    p = _prob(logp)
    with np.errstate(divide="ignore", invalid="ignore"):
        new_bow = rounding(np.log10(num + p) - np.log10(den + _prob(lower)))
        delta_logp = rounding(rounding(lower + new_bow) - logp)
        delta_h = -_prob(hist_log10[ctx]) * (p * delta_logp + num * rounding(new_bow - bow))
    delta_h[~terms.ok[ctx] | ~real] = np.nan
    return _Order(delta_h=delta_h, context_ok=terms.ok, scale=terms.scale)


def _real(model: BackoffModel) -> list[np.ndarray]:
    """Per order, the rows that are n-grams of the model: all but the blanks of a model
    pruned before (SRILM's file of it lacks them)."""
    blanks = model.details.get("pruning", {}).get("blanks")
    if blanks is None:
        return [np.ones(model.trie.size(n), dtype=bool) for n in range(1, model.order + 1)]
    return [~np.asarray(b, dtype=bool) for b in blanks]


def _check(model: BackoffModel, min_order: int) -> None:
    if not isinstance(model, BackoffModel):
        raise TypeError(f"pruning needs a backoff model, not {type(model).__name__}")
    if min_order < 2:
        raise ValueError(f"min_order must be at least 2 (unigrams are never pruned): {min_order}")


def entropy_deltas(
    model: BackoffModel,
    *,
    min_order: int = 2,
    history: NgramModel | None = None,
    srilm_precision: bool = True,
) -> dict[int, np.ndarray]:
    """dH (log10 units) of removing each n-gram of orders ``min_order``..N, keyed by order and
    indexed by trie row; pruning at ``threshold`` removes the rows with ``10**dH - 1 <
    threshold`` that no kept n-gram needs as its context (:func:`prune_entropy`). NaN where
    SRILM never prunes. Each order's values depend on the given model only."""
    _check(model, min_order)
    rounding = _f32 if srilm_precision else _same
    hist = _history_log10(model, history, rounding=rounding)
    real = _real(model)
    return {
        n: _order_deltas(model, n, hist[n - 2], rounding, real[n - 1]).delta_h
        for n in range(max(min_order, 2), model.order + 1)
    }


def prune_entropy(
    model: BackoffModel,
    threshold: float,
    *,
    min_order: int = 2,
    history: NgramModel | None = None,
    srilm_precision: bool = True,
) -> BackoffModel:
    """The model pruned as ``ngram -lm model.arpa -prune threshold -minprune min_order`` prunes
    it (SRILM 1.7.3 ``Ngram::pruneProbs`` then ``recomputeBOWs``; module docstring), with
    ``history`` as ``-prune-history-lm``.

    ``srilm_precision`` makes the pruning decisions in SRILM's arithmetic: its log10 values
    (LogP) are C floats, its probabilities doubles; so the kept n-grams are SRILM's on the
    ARPA file of the model (which holds float32 values). False computes dH in float64 from the
    model's own values. Either way the backoffs are then recomputed in float64 from the
    model's values and stored in its precision (float32 for ``kenlm_exact``), so the pruned
    model scores as KenLM scores its ARPA file. ``threshold`` 0 returns the model unchanged,
    as ``ngram`` skips pruning then."""
    _check(model, min_order)
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"the pruning threshold must be finite and >= 0, got {threshold}")
    if threshold == 0:
        return model
    trie, order = model.trie, model.order
    rounding = _f32 if srilm_precision else _same
    hist = _history_log10(model, history, rounding=rounding)
    logp = [np.array(t, dtype=np.float64) for t in model.tables.logp]  # copies, written below
    kept = _real(model)  # blanks of an earlier pruning come back only where still needed
    # surviving context nodes of the order just processed (none have length N)
    nodes = np.zeros(trie.size(order), dtype=bool)
    for n in range(order, max(min_order, 2) - 1, -1):
        real = kept[n - 1]
        step = _order_deltas(model, n, hist[n - 2], rounding, real)
        ctx, par = trie.context[n - 1], trie.parent[n - 1]
        logp[n - 1] += np.where(real, step.scale[ctx], 0.0)  # computeBOW's rescaling stays
        with np.errstate(over="ignore", invalid="ignore"):
            change = np.exp(step.delta_h * LN10) - 1.0
        kept[n - 1] = real & (~(change < threshold) | nodes)
        size = trie.size(n - 1)
        nodes = (
            ~step.context_ok
            | (np.bincount(ctx[kept[n - 1]], minlength=size) > 0)
            | (np.bincount(par[nodes], minlength=size) > 0)
        )
    return _rebuild(model, logp, kept, threshold, min_order)


def _rebuild(
    model: BackoffModel,
    logp: list[np.ndarray],
    kept: list[np.ndarray],
    threshold: float,
    min_order: int,
) -> BackoffModel:
    """The pruned model: kept rows plus the blanks their suffixes need, backoffs recomputed
    as ``recomputeBOWs`` does (contexts of increasing length, each from the renormalised
    shorter ones), values stored in the model's precision."""
    trie, order = model.trie, model.order
    need = [k.copy() for k in kept]
    for n in range(order, 1, -1):
        need[n - 2][trie.parent[n - 1][need[n - 1]]] = True
    blank = [nd & ~k for nd, k in zip(need, kept, strict=True)]
    for n in range(2, order + 1):
        # a kept n-gram's context is a surviving context node, hence kept (module docstring)
        assert kept[n - 2][trie.context[n - 1][need[n - 1]]].all()
    backoff: list[np.ndarray] = []
    for j in range(1, order):
        if j >= 2:
            _fill_blanks(trie, j, logp, backoff, blank[j - 1])
        rows = np.flatnonzero(kept[j])
        terms = _bow_terms(
            1.0 - _context_sums(trie, j + 1, _prob(logp[j][rows]), rows),
            1.0 - _context_sums(trie, j + 1, _prob(logp[j - 1][trie.parent[j][rows]]), rows),
        )
        if terms.scale.any():  # computeBOW rescales the n-grams of a context with no backoff mass
            logp[j][rows] += terms.scale[trie.context[j][rows]]
        backoff.append(_bow(terms))
    dtype = model.tables.dtype
    logp_out = [p.astype(dtype) for p in logp]
    backoff_out = [b.astype(dtype) for b in backoff]
    for n in range(2, order + 1):  # blanks in the table precision, as KenLM's loader adds them
        _fill_blanks(trie, n, logp_out, backoff_out, blank[n - 1])
    new_trie = subtrie(trie, need)
    tables = BackoffTables(
        logp=tuple(p[nd] for p, nd in zip(logp_out, need, strict=True)),
        backoff=tuple(b[nd] for b, nd in zip(backoff_out, need[:-1], strict=True)),
    )
    pruning: dict[str, Any] = {
        "threshold": threshold,
        "min_order": min_order,
        "ngrams": tuple(int(k.sum()) for k in kept),
        "blanks": tuple(b[nd] for b, nd in zip(blank, need, strict=True)),
        "rows": tuple(np.flatnonzero(nd) for nd in need),
    }
    return BackoffModel(
        order=order,
        method=model.method,
        vocab_size=model.vocab_size,
        trie=new_trie,
        params=dict(model.params),
        tables=tables,
        kenlm_exact=model.kenlm_exact,
        details={**model.details, "pruning": pruning},
    )


def _fill_blanks(
    trie: SuffixTrie,
    n: int,
    logp: list[np.ndarray],
    backoff: list[np.ndarray],
    blank: np.ndarray,
) -> None:
    """log10 p of the order-n blanks: logp(suffix) + bo(context), what backing off gives."""
    rows = np.flatnonzero(blank)
    if rows.size:
        lower = logp[n - 2][trie.parent[n - 1][rows]]
        logp[n - 1][rows] = lower + backoff[n - 2][trie.context[n - 1][rows]]
