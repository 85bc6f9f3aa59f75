"""Fitted n-gram models and the single entry point :func:`fit`.

Three model shapes cover the eight methods:

* :class:`BackoffModel` (``mkn``, ``kn``, ``witten-bell``, ``absolute``, ``katz``): backoff-form
  tables scored as KenLM's ``query`` scores (docs/kenlm-mkn.md §7), exportable to ARPA;
* :class:`CountRatioModel` (``mle``, ``add-k``): p(w | h) = (c(h w) + k) / (c(h) + k V) with the
  full history (k = 0 is the maximum-likelihood estimate; an unseen history then gives 0, as in
  NLTK);
* :class:`StupidBackoffModel` (``stupid-backoff``, Brants et al. 2007): relative frequency of the
  longest seen n-gram times alpha per backoff step. Not a distribution: ``normalized`` is False.

Histories are KenLM's: a sentence's first word has the context ``<s>`` at every order. For the
count-ratio methods this equals padding with N-1 ``<s>`` (NLTK's convention), because
c(<s> <s> a) = c(<s> a) = the number of sentences starting with ``a``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmpipe.lm.metrics import LN10, TokenScores
from lmpipe.lm.ngram import estimators, mkn
from lmpipe.lm.ngram.counting import check_stream, count_linked_ngrams
from lmpipe.lm.ngram.mkn import adjusted_counts, first_appearance_ranks
from lmpipe.lm.ngram.scoring import (
    SCORE_CHUNK,
    BackoffTables,
    backoff_log10,
    chunk_histories,
    context_rows,
    longest_match,
    score_backoff,
    stream_chunks,
)
from lmpipe.lm.ngram.trie import NO_TOKEN, SuffixTrie, build_trie, subtrie
from lmpipe.lm.vocab import BOS, FIRST_WORD_ID, PAD, UNK


@dataclass(frozen=True)
class NgramModel:
    """A fitted n-gram model over ids ``0..vocab_size-1``."""

    order: int
    method: str
    vocab_size: int
    trie: SuffixTrie = field(repr=False)
    params: dict[str, Any] = field(default_factory=dict)

    normalized = True

    def log10_prob(self, hist: np.ndarray, words: np.ndarray) -> np.ndarray:
        """log10 P(word | history) per row; ``hist`` (M, order-1) holds the history most
        recent first, ``<s>`` at the sentence start and -1 beyond it."""
        raise NotImplementedError

    def score(self, stream: np.ndarray, *, chunk: int = SCORE_CHUNK) -> TokenScores:
        """Per-token scores of an evaluation stream (every token, ``</s>`` included), computed
        ``chunk`` tokens at a time (bounded temporaries; the results do not depend on it)."""
        stream = self._checked(stream)
        logprob = np.empty(stream.size, dtype=np.float64)
        for start, window, off in stream_chunks(stream, self.order - 1, chunk):
            hist = chunk_histories(window, off, self.order - 1)
            log10 = self.log10_prob(hist, stream[start : start + off.size])
            np.multiply(log10, LN10, out=logprob[start : start + off.size], dtype=np.float64)
        return TokenScores(logprob=logprob, oov=stream == UNK)

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """p(. | context) over all ids (0 for ``<s>`` and ``<pad>``, which are never
        predicted). ``context`` is oldest first; begin it with ``<s>`` for a sentence start."""
        ctx = list(context)[::-1][: self.order - 1]
        hist = np.full((self.vocab_size, self.order - 1), NO_TOKEN, dtype=np.int64)
        hist[:, : len(ctx)] = ctx
        p = np.power(10.0, self.log10_prob(hist, np.arange(self.vocab_size)).astype(np.float64))
        p[[BOS, PAD]] = 0.0
        return p

    def _checked(self, stream: np.ndarray) -> np.ndarray:
        stream = check_stream(stream)
        if stream.size and int(stream.max()) >= self.vocab_size:
            raise ValueError(
                f"token id {int(stream.max())} is outside the model's vocabulary "
                f"(vocab_size={self.vocab_size})"
            )
        return stream


@dataclass(frozen=True)
class BackoffModel(NgramModel):
    """Backoff-form model. ``kenlm_exact`` models (mkn) hold float32 tables and report
    KenLM's float32/double totals in their scores, so perplexities equal ``query``'s."""

    tables: BackoffTables = field(default=None, repr=False)  # type: ignore[assignment,unused-ignore]
    kenlm_exact: bool = False
    details: dict[str, Any] = field(default_factory=dict, repr=False)

    def log10_prob(self, hist: np.ndarray, words: np.ndarray) -> np.ndarray:
        return backoff_log10(self.trie, self.tables, hist, words)

    def score(self, stream: np.ndarray, *, chunk: int = SCORE_CHUNK) -> TokenScores:
        return score_backoff(
            self.trie, self.tables, self._checked(stream), kenlm_sums=self.kenlm_exact, chunk=chunk
        )


@dataclass(frozen=True)
class CountRatioModel(NgramModel):
    """(c(h w) + k) / (c(h) + k V) with the full history; k = 0 is MLE."""

    k: float = 0.0
    uniform_size: int = 0
    context_total: tuple[np.ndarray, ...] = field(default=(), repr=False)

    def log10_prob(self, hist: np.ndarray, words: np.ndarray) -> np.ndarray:
        length = (hist >= 0).sum(axis=1) if hist.shape[1] else np.zeros(len(words), np.int64)
        order, row = longest_match(self.trie, hist, words)
        exact = order == length + 1
        count = np.zeros(words.size)
        for n in range(1, self.order + 1):
            at = exact & (order == n)
            count[at] = self.trie.count[n - 1][row[at]]
        total = np.full(words.size, float(self.context_total[0][0]))
        for j, ctx in enumerate(context_rows(self.trie, hist), start=1):
            at = length == j
            total[at] = np.where(ctx[at] >= 0, self.context_total[j][np.maximum(ctx[at], 0)], 0)
        num = count + self.k
        den = total + self.k * self.uniform_size
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
            p[(words == BOS) | (words == PAD)] = 0.0
            return np.log10(p)


@dataclass(frozen=True)
class StupidBackoffModel(NgramModel):
    """S(w | h) = c(h w) / c(h) for the longest seen (h w), times alpha per shortened history
    (Brants et al. 2007). Scores, not probabilities."""

    normalized = False
    alpha: float = 0.4
    relative_log10: tuple[np.ndarray, ...] = field(default=(), repr=False)

    def log10_prob(self, hist: np.ndarray, words: np.ndarray) -> np.ndarray:
        length = (hist >= 0).sum(axis=1) if hist.shape[1] else np.zeros(len(words), np.int64)
        order, row = longest_match(self.trie, hist, words)
        out = np.empty(words.size)
        for n in range(1, self.order + 1):
            at = order == n
            out[at] = self.relative_log10[n - 1][row[at]]
        return out + (length + 1 - order) * math.log10(self.alpha)


def fit(
    train_stream: np.ndarray, order: int, method: str, *, vocab_size: int, **params: Any
) -> NgramModel:
    """Estimate an n-gram model of ``order`` on a training stream with the smoothing method
    ``method`` (an entry of :data:`lmpipe.lm.ngram.registry.SMOOTHING`, which lists each
    method's parameters and their defaults).

    ``vocab_size`` is ``len(vocab)``; the predictable vocabulary (V of add-k and of the uniform
    distribution) is every id but ``<s>`` and ``<pad>``: ``vocab_size - 2`` =
    ``Vocab.predictable_size``. Parameters per method: ``add-k``: ``k`` (1 = Laplace);
    ``absolute``/``kn``: ``discount`` (default estimated per order); ``mkn``:
    ``discount_fallback`` (D1, D2, D3+ used, with a warning, for orders whose discounts cannot be
    estimated; None raises instead); ``katz``: ``gtmax`` (per order, last repeated);
    ``stupid-backoff``: ``alpha``.

    ``mkn`` reproduces KenLM ``lmplz`` bit for bit (docs/kenlm-mkn.md). When the training stream
    contains ``<unk>`` (PTB ships its rare words as a literal ``<unk>``) mkn treats it as KenLM
    treats a word of that name: an ordinary type, with KenLM's own zeroton ``<unk>`` still
    counted in V (V = predictable size + 1); that is how the reference PTB figures were made.
    """
    from lmpipe.lm.ngram.registry import smoothing

    entry = smoothing(method)
    p = entry.parameters(params)
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    if vocab_size <= FIRST_WORD_ID - 1:
        raise ValueError(f"vocab_size must include the reserved ids, got {vocab_size}")
    stream = check_stream(train_stream)
    if stream.size == 0:
        raise ValueError("cannot fit an n-gram model on an empty training stream")
    if int(stream.max()) >= vocab_size:
        raise ValueError(f"token id {int(stream.max())} >= vocab_size={vocab_size}")
    grams, counts, previous = count_linked_ngrams(stream, order)
    trie = build_trie(grams, counts, vocab_size, previous)
    del grams, counts, previous  # the trie holds them; at 20 M tokens the (U, N) grams: 0.4 GB
    common = {"order": order, "method": method, "vocab_size": vocab_size, "trie": trie, "params": p}
    return entry.estimate(Fitting(stream, trie, vocab_size - 2, common), p)


@dataclass(frozen=True)
class Fitting:
    """What every estimator starts from: the training stream, its counts in a suffix trie,
    the predictable vocabulary size V, and the fields every model shares."""

    stream: np.ndarray
    trie: SuffixTrie
    v: int
    common: dict[str, Any]


def estimate_mkn(f: Fitting, p: dict[str, Any]) -> NgramModel:
    unk_seen = bool((f.stream == UNK).any())
    est = mkn.estimate_mkn(
        f.trie,
        first_appearance_ranks(f.stream, f.common["vocab_size"], unk_is_word=unk_seen),
        f.v + unk_seen,
        discount_fallback=p["discount_fallback"],
        prune_counts=p["prune_counts"],
    )
    details: dict[str, Any] = {
        "count_of_counts": est.count_of_counts,
        "discounts": est.discounts,
        "fallback_orders": est.fallback_orders,
        "uniform_size": f.v + unk_seen,
    }
    common, tables = f.common, est.tables
    if est.kept is not None:  # lmplz --prune: the trie and tables of the rows kept
        kept = est.kept
        common = {**common, "trie": subtrie(f.trie, kept)}
        tables = BackoffTables(
            logp=tuple(t[k] for t, k in zip(tables.logp, kept, strict=True)),
            backoff=tuple(t[k] for t, k in zip(tables.backoff, kept[:-1], strict=True)),
        )
        details["prune_counts"] = mkn.prune_thresholds(p["prune_counts"], f.trie.order)
    return BackoffModel(**common, tables=tables, kenlm_exact=True, details=details)


def estimate_discounted(f: Fitting, p: dict[str, Any]) -> NgramModel:
    """``kn`` (adjusted counts below the highest order) and ``absolute`` (raw counts)."""
    method, trie = f.common["method"], f.trie
    counts = adjusted_counts(trie) if method == "kn" else [c.astype(np.int64) for c in trie.count]
    d = [
        estimators.ney_discount(counts[n - 1], n, method, p["discount"])
        for n in range(1, trie.order + 1)
    ]
    tables = estimators.interpolated_tables(
        trie, estimators.discounted_weights(trie, counts, d), f.v
    )
    return BackoffModel(**f.common, tables=tables, details={"discounts": d})


def estimate_witten_bell(f: Fitting, p: dict[str, Any]) -> NgramModel:
    weights = estimators.witten_bell_weights(f.trie, f.trie.count)
    return BackoffModel(**f.common, tables=estimators.interpolated_tables(f.trie, weights, f.v))


def estimate_katz(f: Fitting, p: dict[str, Any]) -> NgramModel:
    gtmax = tuple(int(g) for g in np.atleast_1d(p["gtmax"]))
    return BackoffModel(**f.common, tables=estimators.katz_tables(f.trie, gtmax))


def estimate_count_ratio(f: Fitting, p: dict[str, Any]) -> NgramModel:
    """``mle`` (k = 0) and ``add-k``."""
    method, trie = f.common["method"], f.trie
    k = 0.0 if method == "mle" else float(p["k"])
    if k < 0 or (method == "add-k" and k == 0):
        raise ValueError(f"add-k needs k > 0, got {k}")
    totals = tuple(
        estimators.context_sums(trie, n, trie.count[n - 1].astype(np.float64))[0]
        for n in range(1, trie.order + 1)
    )
    return CountRatioModel(**f.common, k=k, uniform_size=f.v, context_total=totals)


def estimate_stupid_backoff(f: Fitting, p: dict[str, Any]) -> NgramModel:
    alpha = float(p["alpha"])
    if not 0 < alpha <= 1:
        raise ValueError(f"stupid-backoff needs 0 < alpha <= 1, got {alpha}")
    trie = f.trie
    rel = []
    for n in range(1, trie.order + 1):
        s = estimators.context_sums(trie, n, trie.count[n - 1].astype(np.float64))[0]
        with np.errstate(divide="ignore"):
            rel.append(np.log10(trie.count[n - 1] / s[trie.context[n - 1]]))
    return StupidBackoffModel(**f.common, alpha=alpha, relative_log10=tuple(rel))
