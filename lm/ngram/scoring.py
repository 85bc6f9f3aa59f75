"""Scoring with a backoff-form model, exactly as KenLM's ``query`` does (KENLM_MKN.md §7).

log10 P(w | h) = logp(longest h' w in the model) + sum of bo(c) over the contexts c of h that
are longer than h' (bo = 0 for contexts absent from the model), added in the table's precision
from the shortest context to the longest. Every backoff-expressible estimator (mkn, kn,
witten-bell, absolute, katz) and every ARPA file is scored by this one procedure; the tables are
float32 for KenLM-exact models and float64 otherwise.

Everything runs per order over all positions at once: one ``searchsorted`` per order for the
longest match and one per order for the context backoffs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lm.metrics import LN10, TokenScores
from lm.ngram.counting import check_stream, sentence_offsets
from lm.ngram.trie import SuffixTrie, histories
from lm.vocab import EOS, UNK


@dataclass(frozen=True)
class BackoffTables:
    """``logp[n-1]``: log10 p of every order-n node; ``backoff[n-1]``: log10 backoff of every
    order-n node as a context (0 where it is none), orders 1..N-1. ``-inf`` is allowed in
    ``logp`` (p = 0)."""

    logp: tuple[np.ndarray, ...]
    backoff: tuple[np.ndarray, ...]

    @property
    def dtype(self) -> np.dtype:
        return self.logp[0].dtype


def longest_match(
    trie: SuffixTrie, hist: np.ndarray, words: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every (history, word): the order of the longest model n-gram (h' w) and its row."""
    order = np.ones(words.size, dtype=np.int64)
    row = trie.find(1, np.zeros(words.size, np.int64), words.astype(np.int64))
    cur = row
    for n in range(2, min(trie.order, hist.shape[1] + 1) + 1):
        cur = trie.find(n, cur, hist[:, n - 2])
        hit = cur >= 0
        if not hit.any():
            break
        order[hit] = n
        row = np.where(hit, cur, row)
    return order, row


def context_rows(trie: SuffixTrie, hist: np.ndarray) -> list[np.ndarray]:
    """Rows of the contexts (last j history tokens), j = 1..N-1; ``-1`` where absent."""
    out: list[np.ndarray] = []
    rows = np.zeros(len(hist), dtype=np.int64)
    for j in range(1, min(trie.order - 1, hist.shape[1]) + 1):
        rows = trie.find(j, rows, hist[:, j - 1])
        out.append(rows)
    return out


def backoff_log10(
    trie: SuffixTrie, tables: BackoffTables, hist: np.ndarray, words: np.ndarray
) -> np.ndarray:
    """log10 P(word | history) for each row of ``hist`` (most recent token first, ``-1`` where
    there is none), in the precision of ``tables``."""
    order, row = longest_match(trie, hist, words)
    dtype = tables.dtype
    score = np.empty(words.size, dtype=dtype)
    for n in range(1, trie.order + 1):
        at = order == n
        score[at] = tables.logp[n - 1][row[at]]
    for j, ctx in enumerate(context_rows(trie, hist), start=1):
        add = (ctx >= 0) & (order <= j)
        score[add] = (score[add] + tables.backoff[j - 1][ctx[add]]).astype(dtype)
    return score


def kenlm_totals(log10: np.ndarray, stream: np.ndarray, oov: np.ndarray) -> tuple[float, float]:
    """Corpus and OOV totals accumulated as ``query`` does: float32 per sentence in token order,
    then a double sum of the sentence totals; the OOV total is a double sum (§7)."""
    sent = np.cumsum(stream == EOS) - (stream == EOS)
    per_sentence = np.zeros(int(sent[-1]) + 1 if sent.size else 0, dtype=np.float32)
    np.add.at(per_sentence, sent, log10.astype(np.float32))
    total = float(np.cumsum(per_sentence.astype(np.float64))[-1]) if per_sentence.size else 0.0
    oov_scores = log10[oov].astype(np.float64)
    oov_total = float(np.cumsum(oov_scores)[-1]) if oov_scores.size else 0.0
    return total, oov_total


def to_token_scores(log10: np.ndarray, stream: np.ndarray, *, kenlm_sums: bool) -> TokenScores:
    """Per-token natural-log scores; with ``kenlm_sums`` also KenLM's exact log10 totals."""
    oov = stream == UNK
    logprob = log10.astype(np.float64) * LN10
    if not kenlm_sums or np.isneginf(log10).any():
        return TokenScores(logprob=logprob, oov=oov)
    total, oov_total = kenlm_totals(log10, stream, oov)
    return TokenScores(logprob=logprob, oov=oov, total_log10=total, oov_log10=oov_total)


def score_backoff(
    trie: SuffixTrie, tables: BackoffTables, stream: np.ndarray, *, kenlm_sums: bool
) -> TokenScores:
    """Score every token of a stream (``</s>`` included) with a backoff-form model."""
    stream = check_stream(stream)
    hist = histories(stream, sentence_offsets(stream), trie.order - 1)
    return to_token_scores(backoff_log10(trie, tables, hist, stream), stream, kenlm_sums=kenlm_sums)


def kenlm_perplexity(scores: TokenScores) -> tuple[float, float]:
    """(perplexity, perplexity excluding OOV positions) as ``query`` prints them:
    ``10 ** (-total / T)`` from the exact log10 totals (§7). ``exp`` of the same total in nats
    can differ in the last digit."""
    if scores.total_log10 is None:
        raise ValueError("these scores carry no exact log10 totals")
    n = scores.logprob.size
    n_oov = int(np.count_nonzero(scores.oov))
    incl = math.pow(10.0, -scores.total_log10 / n)
    excl_total = scores.total_log10 - (scores.oov_log10 or 0.0)
    excl = math.pow(10.0, -excl_total / (n - n_oov)) if n > n_oov else float("nan")
    return incl, excl
