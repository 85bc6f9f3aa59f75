"""The classic smoothing methods other than KenLM's MKN, in float64, on the same suffix trie.

Every normalised method here is either interpolated,
    p(w | h) = u(h w) + gamma(h) p(w | suf(h)),   p(w | empty) = u(w) + gamma(empty) / V,
or a backoff model; both are stored in backoff form (log10 p of the seen n-grams, log10 gamma of
the contexts) and scored by :mod:`lm.ngram.scoring`. V is the predictable vocabulary (words,
``</s>``, ``<unk>``). Orders below N see the n-grams of the collapsed model (a sentence's first
word has the context ``<s>``), like KenLM and SRILM.

* ``kn``: interpolated Kneser-Ney (Kneser & Ney 1995; Chen & Goodman 1998 §3): counts are
  KenLM's adjusted counts (continuation counts below the highest order), one discount per order
  D = n1 / (n1 + 2 n2); u = max(a - D, 0) / S(h), gamma = D N1+(h .) / S(h).
* ``absolute``: interpolated absolute discounting (Ney, Essen & Kneser 1994): the same with raw
  counts at every order.
* ``witten-bell``: interpolated Witten-Bell (Witten & Bell 1991; Chen & Goodman §2.6):
  u = c / (S(h) + N1+(h .)), gamma = N1+(h .) / (S(h) + N1+(h .)).
* ``katz``: Katz (1987) backoff with Good-Turing discounts as SRILM computes them
  (``ngram-discount(7)``): for counts r <= gtmax, d_r = (r*/r - A) / (1 - A) with
  r* = (r+1) n_{r+1} / n_r and A = (gtmax+1) n_{gtmax+1} / n_1; larger counts are not discounted.
  The unigram mass left over goes uniformly to the unseen predictable tokens;
  gamma(h) = (1 - sum_seen p(w|h)) / (1 - sum_seen p(w|suf h)).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from lmpipe.lm.ngram.counting import count_of_counts
from lmpipe.lm.ngram.scoring import BackoffTables
from lmpipe.lm.ngram.trie import SuffixTrie
from lmpipe.lm.vocab import BOS, PAD


class DiscountWarning(UserWarning):
    """A discount could not be estimated from the count-of-counts and a fallback is used."""


def predictable_mask(width: int) -> np.ndarray:
    """Ids a model predicts: everything but ``<s>`` and ``<pad>``."""
    mask = np.ones(width, dtype=bool)
    mask[[BOS, PAD]] = False
    return mask


def context_sums(trie: SuffixTrie, n: int, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S(h) = sum_w c(h w) and N1+(h .) for every context of order n (one empty context for
    n = 1), as float64."""
    n_ctx = 1 if n == 1 else trie.size(n - 1)
    ctx = trie.context[n - 1]
    s = np.bincount(ctx, weights=counts, minlength=n_ctx)
    types = np.bincount(ctx, weights=counts > 0, minlength=n_ctx)
    return s, types


def ney_discount(counts: np.ndarray, n: int, method: str, fixed: float | None) -> float:
    """D = n1 / (n1 + 2 n2) (Ney, Essen & Kneser 1994), or ``fixed`` when given. Falls back to
    0.5 with a warning when the estimate is not in (0, 1)."""
    if fixed is not None:
        if not 0.0 <= fixed <= 1.0:
            raise ValueError(f"{method}: discount must be in [0, 1], got {fixed}")
        return float(fixed)
    t = count_of_counts(counts)
    n1, n2 = int(t[0]), int(t[1])
    d = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.0
    if not 0.0 < d < 1.0:
        warnings.warn(
            f"{method}: cannot estimate the order-{n} discount from n1={n1}, n2={n2}; using 0.5",
            DiscountWarning,
            stacklevel=4,
        )
        d = 0.5
    return d


def interpolated_tables(
    trie: SuffixTrie,
    weights: Sequence[tuple[np.ndarray, np.ndarray]],
    uniform_size: int,
) -> BackoffTables:
    """Backoff tables of an interpolated model given, per order, the pair
    (u of every node, gamma of every context, NaN for nodes that are no context)."""
    prob: list[np.ndarray] = []
    gammas: list[np.ndarray] = []
    for n in range(1, trie.order + 1):
        u, gamma = weights[n - 1]
        if n == 1:
            p = u + gamma[0] / uniform_size
            p[~predictable_mask(trie.width)] = 0.0
            p[BOS] = 1.0
        else:
            p = u + gamma[trie.context[n - 1]] * prob[n - 2][trie.parent[n - 1]]
            gammas.append(gamma)
        prob.append(p)
    return _log10_tables(prob, gammas)


def _log10_tables(prob: Sequence[np.ndarray], gammas: Sequence[np.ndarray]) -> BackoffTables:
    """log10 of p and gamma; gamma is NaN for nodes that are no context (backoff 0, never used)
    and may be 0 for a context whose seen tokens take all the mass (backoff -inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = tuple(np.log10(p) for p in prob)
        backoff = tuple(np.where(np.isnan(g), 0.0, np.log10(g)) for g in gammas)
    return BackoffTables(logp=logp, backoff=backoff)


def discounted_weights(
    trie: SuffixTrie, counts: Sequence[np.ndarray], discounts: Sequence[float]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """u = max(c - D, 0) / S(h) and gamma = D N1+(h .) / S(h) per order (kn and absolute)."""
    out = []
    for n in range(1, trie.order + 1):
        c = counts[n - 1].astype(np.float64)
        s, types = context_sums(trie, n, c)
        safe = np.where(s > 0, s, 1.0)
        u = np.maximum(c - discounts[n - 1], 0.0) / safe[trie.context[n - 1]]
        out.append((u, np.where(s > 0, discounts[n - 1] * types / safe, np.nan)))
    return out


def witten_bell_weights(
    trie: SuffixTrie, counts: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """u = c / (S(h) + N1+(h .)), gamma = N1+(h .) / (S(h) + N1+(h .)) per order."""
    out = []
    for n in range(1, trie.order + 1):
        c = counts[n - 1].astype(np.float64)
        s, types = context_sums(trie, n, c)
        denom = np.where(s > 0, s + types, 1.0)
        out.append((c / denom[trie.context[n - 1]], np.where(s > 0, types / denom, np.nan)))
    return out


def good_turing_coefficients(counts: np.ndarray, gtmax: int, n: int) -> np.ndarray:
    """d_r for r = 0..gtmax (d_0 unused) as SRILM's GoodTuring discount computes them. When the
    count-of-counts make them invalid (a zero n_r, or d_r outside (0, 1]) the order is left
    undiscounted, as SRILM does, with a warning."""
    t = np.bincount(np.clip(counts, 0, gtmax + 2), minlength=gtmax + 3)
    d = np.ones(gtmax + 1)
    if gtmax == 0:
        return d
    n1 = t[1]
    common = (gtmax + 1) * t[gtmax + 1] / n1 if n1 else np.inf
    for r in range(1, gtmax + 1):
        if t[r] == 0 or common >= 1.0:
            break
        d[r] = ((r + 1) * t[r + 1] / (r * t[r]) - common) / (1.0 - common)
    if not np.all((d[1:] > 0) & (d[1:] <= 1)):
        warnings.warn(
            f"katz: Good-Turing discounts of order {n} are invalid for count-of-counts "
            f"{t[1 : gtmax + 2].tolist()}; that order is not discounted",
            DiscountWarning,
            stacklevel=4,
        )
        d = np.ones(gtmax + 1)
    return d


def katz_tables(trie: SuffixTrie, gtmax: Sequence[int]) -> BackoffTables:
    """Katz backoff with Good-Turing discounts (see the module docstring)."""
    prob: list[np.ndarray] = []
    gammas: list[np.ndarray] = []
    predictable = predictable_mask(trie.width)
    for n in range(1, trie.order + 1):
        c = trie.count[n - 1]
        k = gtmax[min(n, len(gtmax)) - 1]
        d = good_turing_coefficients(c, k, n)
        disc = np.where(c <= k, d[np.minimum(c, k)], 1.0)
        s, _ = context_sums(trie, n, c.astype(np.float64))
        ctx = trie.context[n - 1]
        p = disc * c / np.where(s > 0, s, 1.0)[ctx]
        if n == 1:
            unseen = predictable & (c == 0)
            left = 1.0 - p[predictable].sum()
            if unseen.any():
                p[unseen] = left / unseen.sum()
            else:
                p /= p[predictable].sum()
            p[~predictable] = 0.0
            p[BOS] = 1.0
        else:
            lower = prob[n - 2][trie.parent[n - 1]]
            n_ctx = trie.size(n - 1)
            seen = np.bincount(ctx, weights=p, minlength=n_ctx)
            seen_lower = np.bincount(ctx, weights=lower, minlength=n_ctx)
            num, den = 1.0 - seen, 1.0 - seen_lower
            closed = (s > 0) & (den <= 1e-12)
            # a context followed by every token its backoff knows: renormalise its seen tokens
            p = np.where(closed[ctx], p / np.where(seen > 0, seen, 1.0)[ctx], p)
            gamma = np.where(closed, 0.0, np.maximum(num, 0.0) / np.where(closed, 1.0, den))
            gamma[s == 0] = np.nan
            gammas.append(gamma)
        prob.append(p)
    return _log10_tables(prob, gammas)
