"""Interpolated modified Kneser-Ney exactly as KenLM's ``lmplz`` estimates it (docs/kenlm-mkn.md).

The stages follow lmplz's pipeline, one function each: adjusted counts (§2,
``adjust_counts.cc``), count-of-counts with the last-n-gram quirk (§3.3), discounts (§3.2),
initial probabilities and interpolation weights (§4, ``initial_probabilities.cc``) and the
interpolation (§5, ``interpolate.cc``). Everything is float32 with the rounding order of the C++
code and ``log10f`` from the C library (Arrow's float32 ``log10`` calls it), so the ARPA values
are bit-identical to KenLM's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmpipe.lm.errors import ModelError
from lmpipe.lm.ngram.counting import COUNT_OF_COUNTS, count_of_counts, first_positions
from lmpipe.lm.ngram.registry import DEFAULT_FALLBACK
from lmpipe.lm.ngram.scoring import BackoffTables
from lmpipe.lm.ngram.trie import SuffixTrie
from lmpipe.lm.vocab import BOS, EOS, PAD, UNK

F32 = np.float32
"""lmplz's ``--discount_fallback`` default D1, D2, D3+."""


class DiscountError(ModelError):
    """Modified Kneser-Ney discounts cannot be estimated for an order (lmplz aborts here)."""


class DiscountFallbackWarning(UserWarning):
    """An order's discounts were replaced by the fallback values."""


def log10f(x: np.ndarray) -> np.ndarray:
    """Single-precision log10 of the C library, as KenLM calls it. numpy's own float32 log10
    (SIMD) differs from glibc's ``log10f`` in about half of all inputs; Arrow's kernel calls
    ``log10f`` element by element."""
    return pc.log10(pa.array(np.asarray(x, dtype=F32))).to_numpy(zero_copy_only=False)


def adjusted_count(trie: SuffixTrie, n: int) -> np.ndarray:
    """a(g) of the order-n nodes (§2): raw counts at the highest order and for n-grams that start
    with ``<s>``; otherwise the continuation count N1+(. g). A unigram-only model uses raw
    counts. int64 for unigrams, int32 above (like the trie's counts)."""
    if n == trie.order:
        return trie.count[n - 1].copy()
    a = trie.children(n).astype(trie.count[n - 1].dtype)
    starts_bos = trie.token[n - 1] == BOS
    a[starts_bos] = trie.count[n - 1][starts_bos]
    return a


def adjusted_counts(trie: SuffixTrie) -> list[np.ndarray]:
    """a(g) of every order (:func:`adjusted_count`)."""
    return [adjusted_count(trie, n) for n in range(1, trie.order + 1)]


def first_appearance_ranks(stream: np.ndarray, width: int, unk_is_word: bool) -> np.ndarray:
    """KenLM's word ids (§1): ``<unk>``=0, ``<s>``=1, ``</s>``=2, then words in order of first
    appearance. Only the suffix order of §3.3 depends on them. A literal ``<unk>`` that occurs in
    the training text is numbered like a word when it is treated as one."""
    stream = np.asarray(stream)
    first = first_positions(stream, width)  # PTB: 2 ms; np.unique's stable sort took 55
    seen = np.flatnonzero(first < stream.size)
    return ranks_in_order(seen[np.argsort(first[seen])], width, unk_is_word)


def ranks_in_order(words: np.ndarray, width: int, unk_is_word: bool) -> np.ndarray:
    """KenLM's word ids given the ids seen in training, ``words``, in order of first appearance
    (:func:`first_appearance_ranks`)."""
    fixed = [UNK, BOS, EOS] if not unk_is_word else [BOS, EOS]
    words = words[~np.isin(words, fixed)]
    ranks = np.full(width, width + 1, dtype=np.int64)
    ranks[UNK], ranks[BOS], ranks[EOS] = 0, 1, 2
    ranks[words] = np.arange(3, 3 + words.size)
    return ranks


def count_of_counts_kenlm(trie: SuffixTrie, ranks: np.ndarray) -> np.ndarray:
    """t_{n,k}, k = 1..4 (§3.1), with the quirk of §3.3: the suffixes of the greatest full
    N-gram in suffix order count with their raw count instead of their adjusted count. The
    adjusted counts are computed one order at a time and dropped (memory)."""
    t = np.stack([count_of_counts(adjusted_count(trie, n)) for n in range(1, trie.order + 1)])
    if trie.order == 1 or trie.size(trie.order) == 0:
        return t

    def counts(suffix: np.ndarray) -> tuple[int, int]:
        row = int(trie.lookup(suffix[None, :])[0])
        c = int(trie.count[len(suffix) - 1][row])
        # a(s_k): its raw count if it starts with <s>, else its children (left extensions)
        return c, c if suffix[0] == BOS else int(np.count_nonzero(trie.parent[len(suffix)] == row))

    apply_last_ngram_quirk(t, greatest_full_ngram(trie, ranks), counts)
    return t


def apply_last_ngram_quirk(
    t: np.ndarray, g_star: np.ndarray, counts: Callable[[np.ndarray], tuple[int, int]]
) -> None:
    """§3.3 on the count-of-counts ``t`` in place: the suffixes s_k of length k = 1, 2, .. of
    the greatest full N-gram ``g_star`` count with their raw count c instead of their adjusted
    count a, up to the first one that starts with ``<s>``. ``counts(s_k)`` gives (c, a)."""
    n_max = len(g_star)
    for k in range(1, n_max):
        suffix = g_star[n_max - k :]
        c, a = counts(suffix)
        if 1 <= a <= COUNT_OF_COUNTS:
            t[k - 1, a - 1] -= 1
        if 1 <= c <= COUNT_OF_COUNTS:
            t[k - 1, c - 1] += 1
        if suffix[0] == BOS:
            break


def greatest_full_ngram(trie: SuffixTrie, ranks: np.ndarray) -> np.ndarray:
    """g* of §3.3: the greatest padded full N-gram in suffix order (last token's rank first).
    Candidates are the highest-order nodes and the collapsed ones (``<s>``-initial nodes of
    lower orders, padded back with ``<s>``). Only the candidates whose last token has the
    greatest rank are spelt out: a sort of every full N-gram would cost seconds and gigabytes."""
    n_max = trie.order
    best: list[np.ndarray] = []
    for n in range(1, n_max + 1):
        rows = np.arange(trie.size(n))
        if n < n_max:
            rows = rows[(trie.token[n - 1] == BOS) & (trie.count[n - 1] > 0)]
        if rows.size == 0:
            continue
        last = rows
        for k in range(n, 1, -1):  # the order-1 ancestor holds the last token
            last = trie.parent[k - 1][last]
        r = ranks[last]
        g = trie.grams(n, rows[r == r.max()])
        pad = np.full((len(g), n_max - n), BOS, dtype=np.int32)
        best.append(np.hstack([pad, g]))
    full = np.vstack(best)
    return full[np.lexsort(ranks[full].T)[-1]]


def discounts(
    t: np.ndarray, fallback: Sequence[float] | None = DEFAULT_FALLBACK
) -> tuple[np.ndarray, tuple[int, ...]]:
    """D1, D2, D3+ per order in float32 (§3.2): y = t1/(t1+2 t2), D_k = k - (k+1) y t_{k+1}/t_k.

    An order fails when t1, t2 or t3 is 0 or a D_k falls outside [0, k]; it then takes
    ``fallback`` with a :class:`DiscountFallbackWarning`, or raises :class:`DiscountError` when
    ``fallback`` is None. Returns the (N, 3) discounts and the orders that fell back."""
    out = np.zeros((len(t), 3), dtype=F32)
    fell_back: list[int] = []
    for i, row in enumerate(t):
        t1, t2, t3, t4 = (int(x) for x in row)
        d = _chen_goodman(t1, t2, t3, t4)
        if d is not None:
            out[i] = d
            continue
        n = i + 1
        msg = (
            f"modified Kneser-Ney cannot estimate discounts for order {n}: count-of-counts "
            f"t1..t4 = {t1}, {t2}, {t3}, {t4} (a count-of-count of 0, typical of tiny or "
            "character-level data)"
        )
        if fallback is None:
            raise DiscountError(msg + "; allow discount_fallback to use fixed discounts")
        out[i] = np.asarray(fallback, dtype=F32)
        fell_back.append(n)
        warnings.warn(
            msg + f"; using the fallback discounts D1, D2, D3+ = {tuple(fallback)}, as lmplz "
            "--discount_fallback does",
            DiscountFallbackWarning,
            stacklevel=4,
        )
    return out, tuple(fell_back)


def _chen_goodman(t1: int, t2: int, t3: int, t4: int) -> np.ndarray | None:
    if t1 == 0 or t2 == 0 or t3 == 0:
        return None
    y = F32(t1) / F32(float(t1 + 2 * t2))
    tk = [F32(t1), F32(t2), F32(t3), F32(t4)]
    d = np.array([F32(k) - ((F32(k + 1) * y) * tk[k]) / tk[k - 1] for k in (1, 2, 3)], dtype=F32)
    if np.any(d < 0) or np.any(d > np.array([1, 2, 3], dtype=F32)):
        return None
    return d


@dataclass(frozen=True)
class MknModelTables:
    """What lmplz computes besides the probabilities: the count-of-counts, discounts and the
    orders that fell back, plus the ARPA values (log10 p and backoff per order, float32)."""

    count_of_counts: np.ndarray
    discounts: np.ndarray
    fallback_orders: tuple[int, ...]
    tables: BackoffTables
    kept: list[np.ndarray] | None = None  # count pruning: the rows of each order kept


def estimate_mkn(
    trie: SuffixTrie,
    ranks: np.ndarray,
    uniform_size: int,
    *,
    discount_fallback: Sequence[float] | None = DEFAULT_FALLBACK,
    prune_counts: Sequence[int] | None = None,
) -> MknModelTables:
    """Run lmplz's stages on a suffix trie. ``uniform_size`` is V of the uniform distribution
    (§5); ``ranks`` are KenLM's word ids (:func:`first_appearance_ranks`).

    Memory: one order at a time. Order n needs only p of order n-1, so each order's p and gamma
    become their log10 values (4 bytes a node each) as soon as the next order is done.

    ``prune_counts`` is lmplz's ``--prune``, one threshold per order (:func:`count_pruned`):
    the tables still hold every trie row, ``kept`` says which are the model's."""
    thresholds = prune_thresholds(prune_counts, trie.order)
    t = count_of_counts_kenlm(trie, ranks)
    d, fell_back = discounts(t, discount_fallback)
    logp: list[np.ndarray] = []
    backoff: list[np.ndarray] = []
    lower = np.empty(0, dtype=F32)
    for n in range(1, trie.order + 1):
        if n == 1:
            p = unigram_probabilities(adjusted_count(trie, 1), d[0], uniform_size)
        else:
            ctx = trie.context[n - 1]
            marked = trie.count[n - 1] <= thresholds[n - 1] if thresholds[n - 1] else None
            u, g = _initial_probabilities(
                adjusted_count(trie, n), ctx, trie.size(n - 1), d[n - 1], marked
            )
            p = (u + (g[ctx] * lower[trie.parent[n - 1]]).astype(F32)).astype(F32)
            backoff.append(log10_backoff(g))
            del u, g
        logp.append(np.minimum(log10f(p), F32(0.0)))
        lower = p
    return MknModelTables(
        count_of_counts=t,
        discounts=d,
        fallback_orders=fell_back,
        tables=BackoffTables(logp=tuple(logp), backoff=tuple(backoff)),
        kept=count_pruned(trie, thresholds) if any(thresholds) else None,
    )


def prune_thresholds(prune_counts: Sequence[int] | None, order: int) -> list[int]:
    """lmplz's ``--prune`` values as one threshold per order: the last value repeats for the
    orders left; non-decreasing (else a kept n-gram's suffix could be pruned); unigrams are
    never pruned (KenLM: "threshold for unigram can only be 0")."""
    given = [int(c) for c in (prune_counts or [])]
    if not given:
        return [0] * order
    if len(given) > order:
        raise ValueError(
            f"{len(given)} pruning thresholds for a model of order {order}: give at most {order}"
        )
    if any(c < 0 for c in given):
        raise ValueError(f"pruning thresholds are counts >= 0, got {given}")
    if given[0] != 0:
        raise ValueError(f"unigrams are not pruned: the first threshold must be 0, got {given}")
    if any(b < a for a, b in zip(given, given[1:], strict=False)):
        raise ValueError(
            f"pruning thresholds must not decrease with the order, got {given} (else a kept "
            "n-gram's suffix would be pruned)"
        )
    return given + [given[-1]] * (order - len(given))


def count_pruned(trie: SuffixTrie, thresholds: Sequence[int]) -> list[np.ndarray]:
    """Per order, the rows an lmplz ``--prune`` model keeps: an n-gram (n >= 2) goes when its
    raw count is at most the order's threshold (KenLM ``AdjustCounts``: the *actual* count
    decides, not the adjusted one). Non-decreasing thresholds keep every suffix and context of
    a kept n-gram, whose raw counts are at least as large."""
    return [
        np.ones(trie.size(n), dtype=bool) if not thresholds[n - 1] or n == 1
        else trie.count[n - 1] > thresholds[n - 1]
        for n in range(1, trie.order + 1)
    ]  # fmt: skip


def unigram_probabilities(a: np.ndarray, d: np.ndarray, uniform_size: int) -> np.ndarray:
    """p(w) of every id from the unigrams' adjusted counts ``a`` (§4, §5): the discounted
    estimate interpolated with the uniform 1/V; p(<s>) = 1 and p(<pad>) = 0 by convention."""
    u, g = _initial_probabilities(a, np.zeros(a.size, dtype=np.int64), 1, d)
    p = (u + F32(g[0] * F32(1.0 / float(F32(uniform_size))))).astype(F32)
    p[BOS] = F32(1.0)
    p[PAD] = F32(0.0)
    return p


def log10_backoff(gamma: np.ndarray) -> np.ndarray:
    """ARPA backoff log10f(gamma), 0 where the node is no context (gamma 0)."""
    return np.where(gamma > 0, log10f(np.where(gamma > 0, gamma, 1)), F32(0.0)).astype(F32)


def _initial_probabilities(
    a: np.ndarray, ctx: np.ndarray, n_ctx: int, d: np.ndarray, marked: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """u(h w) = (a - D(a)) / S(h) and gamma(h) = (D1 N1 + D2 N2 + D3 N3+) / S(h), float32 with
    lmplz's rounding order (§4). gamma is 0 for nodes that are no context. Each float64 sum
    becomes float32 at once, so one float64 array per context is alive at a time.

    With count pruning (``marked``: the rows pruned), lmplz's ``AddRight``: S(h) still sums
    every extension, N1..N3+ count the kept ones only, and the pruned extensions' adjusted
    counts join gamma's numerator (their mass goes to the backoff), so the model still sums
    to one."""
    s = np.bincount(ctx, weights=a, minlength=n_ctx).astype(F32)
    num = np.zeros(n_ctx, dtype=F32)
    for k, mask in enumerate((a == 1, a == 2, a >= 3)):
        if marked is not None:
            mask &= ~marked
        nk = np.bincount(ctx[mask], minlength=n_ctx).astype(F32)
        num = (num + (d[k] * nk).astype(F32)).astype(F32)
    if marked is not None:
        pruned = np.bincount(ctx[marked], weights=a[marked], minlength=n_ctx).astype(F32)
        num = (num + pruned).astype(F32)
    safe = np.where(s > 0, s, F32(1.0))
    g = np.where(s > 0, num / safe, F32(0.0)).astype(F32)
    d_of_a = np.concatenate(([F32(0.0)], d))[np.minimum(a, 3)]
    u = ((a.astype(F32) - d_of_a).astype(F32) / safe[ctx]).astype(F32)
    return u, g
