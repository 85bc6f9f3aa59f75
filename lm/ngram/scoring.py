"""Scoring with a backoff-form model, exactly as KenLM's ``query`` does (docs/kenlm-mkn.md §7).

log10 P(w | h) = logp(longest h' w in the model) + sum of bo(c) over the contexts c of h that
are longer than h' (bo = 0 for contexts absent from the model), added in the table's precision
from the shortest context to the longest. Every backoff-expressible estimator (mkn, kn,
witten-bell, absolute, katz) and every ARPA file is scored by this one procedure; the tables are
float32 for KenLM-exact models and float64 otherwise.

Everything runs per order over all positions of a chunk at once (:func:`score_backoff`): one
hash lookup per order (:class:`lm.ngram.trie.KeyHash`) for the positions whose match is still
growing. The contexts need no lookups of their own: the context of length j of a position is the
order-j match of the position before it. Long streams are scored in chunks of
:data:`SCORE_CHUNK` tokens, so the temporaries stay bounded; the chunks carry what crosses their
boundary (the previous position's matches, the sentence offset, the float32 total of the
unfinished sentence), so the results do not depend on the chunking.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lmpipe.lm.metrics import LN10, TokenScores
from lmpipe.lm.ngram.counting import check_stream
from lmpipe.lm.ngram.trie import SuffixTrie
from lmpipe.lm.vocab import BOS, EOS, UNK

SCORE_CHUNK = 1 << 14
"""Tokens scored at a time: the scoring temporaries are a few dozen bytes per token of a chunk,
here a few hundred kilobytes, which stay in the caches and which glibc's allocator keeps
reusing (a chunk of 2**20 made fresh pages each time, whose page faults cost a fifth of a PTB
scoring; 2**13 costs more per-chunk overhead than it saves: benchmarks/arpa_scoring.py)."""


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
        cur = trie.find(n, cur, hist[:, n - 2], hashed=True)
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
        rows = trie.find(j, rows, hist[:, j - 1], hashed=True)
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


def kenlm_totals(
    log10: np.ndarray, stream: np.ndarray, oov: np.ndarray, ends: np.ndarray | None = None
) -> tuple[float, float]:
    """Corpus and OOV totals accumulated as ``query`` does: float32 per sentence (line) in token
    order, then a double sum of the sentence totals; the OOV total is a double sum (§7).
    ``ends`` marks the tokens that end a sentence (default: every ``</s>``)."""
    totals = KenlmTotals()
    totals.add(log10, stream, oov, ends)
    totals.finish()
    return totals.total, totals.oov_total


class KenlmTotals:
    """KenLM's totals (§7) accumulated chunk by chunk, exactly as over the whole stream: the
    float32 total of a sentence that a chunk leaves unfinished is carried into the next one."""

    def __init__(self) -> None:
        self.total = 0.0
        self.oov_total = 0.0
        self.open_sentence = np.float32(0.0)
        self.is_open = False

    def add(
        self,
        log10: np.ndarray,
        stream: np.ndarray,
        oov: np.ndarray,
        ends: np.ndarray | None = None,
    ) -> None:
        if stream.size == 0:
            return
        ends = stream == EOS if ends is None else ends
        sent = np.cumsum(ends) - ends
        per_sentence = np.zeros(int(sent[-1]) + 1, dtype=np.float32)
        per_sentence[0] = self.open_sentence
        # a copy: np.add.at's fast path needs the canonical float32 dtype (an unpickled table's
        # equal dtype took 20 times longer)
        np.add.at(per_sentence, sent, log10.astype(np.float32))
        finished = int(np.count_nonzero(ends))
        self.is_open = finished < per_sentence.size
        self.open_sentence = per_sentence[-1] if self.is_open else np.float32(0)
        # cumsum adds in order (np.sum would add pairwise)
        self.total = _running_sum(self.total, per_sentence[:finished])
        self.oov_total = _running_sum(self.oov_total, log10[oov])

    def finish(self) -> None:
        """Add the total of a last sentence without ``</s>`` (only an unchecked stream has
        one), as a whole-stream sum would."""
        if self.is_open:
            self.total = _running_sum(self.total, np.array([self.open_sentence]))
            self.is_open, self.open_sentence = False, np.float32(0.0)


def _running_sum(start: float, values: np.ndarray) -> float:
    """start + v_0 + v_1 + ... in double, left to right."""
    if values.size == 0:
        return start
    acc = np.empty(values.size + 1, dtype=np.float64)
    acc[0] = start
    acc[1:] = values
    return float(np.cumsum(acc)[-1])


def to_token_scores(log10: np.ndarray, stream: np.ndarray, *, kenlm_sums: bool) -> TokenScores:
    """Per-token natural-log scores; with ``kenlm_sums`` also KenLM's exact log10 totals."""
    oov = stream == UNK
    logprob = log10.astype(np.float64) * LN10
    if not kenlm_sums or np.isneginf(log10).any():
        return TokenScores(logprob=logprob, oov=oov)
    total, oov_total = kenlm_totals(log10, stream, oov)
    return TokenScores(logprob=logprob, oov=oov, total_log10=total, oov_log10=oov_total)


def chunk_offsets(words: np.ndarray, first: int, ends: np.ndarray | None = None) -> np.ndarray:
    """:func:`lm.ngram.counting.sentence_offsets` of a chunk whose first token has ``first``
    tokens of its sentence before it; ``ends`` marks the sentence ends (default: ``</s>``)."""
    ends = words == EOS if ends is None else ends
    sent = np.cumsum(ends) - ends
    starts = np.concatenate(([-first], np.flatnonzero(ends) + 1))
    return np.arange(words.size, dtype=np.int64) - starts[sent]


def stream_chunks(
    stream: np.ndarray, context: int, chunk: int = SCORE_CHUNK, ends: np.ndarray | None = None
):
    """Yield ``(start, window, offsets)`` per chunk of at most ``chunk`` tokens:
    ``window = stream[start - p : end]`` with ``p = min(start, context)`` tokens of history
    before the chunk, ``offsets`` the sentence offsets of the chunk's tokens. ``ends`` marks the
    tokens that end a sentence (default: every ``</s>``)."""
    ends = stream == EOS if ends is None else ends
    first = 0
    for start in range(0, stream.size, max(1, chunk)):
        end = min(start + chunk, stream.size)
        p = min(start, context)
        off = chunk_offsets(stream[start:end], first, ends[start:end])
        first = 0 if ends[end - 1] else int(off[-1]) + 1
        yield start, stream[start - p : end], off


def chunk_histories(window: np.ndarray, offsets: np.ndarray, length: int) -> np.ndarray:
    """(L, length) :func:`lm.ngram.trie.histories` of a chunk's tokens, from its window (the
    chunk after ``window.size - L`` tokens of history) and its sentence offsets."""
    size = offsets.size
    p = window.size - size
    out = np.full((size, length), -1, dtype=np.int64)
    for j in range(1, length + 1):
        src = window[max(0, p - j) : window.size - j]
        out[size - src.size :, j - 1] = src
        out[offsets < j, j - 1] = -1
        out[offsets == j - 1, j - 1] = BOS
    return out


def backoff_chunk(
    trie: SuffixTrie,
    tables: BackoffTables,
    window: np.ndarray,
    offsets: np.ndarray,
    carry: list[int],
) -> np.ndarray:
    """log10 P of a chunk's tokens (:func:`stream_chunks`). ``carry[j-1]`` is the order-j match
    of the position before the chunk (-1: none) on entry, of the chunk's last one on return.

    Per order n, only the positions whose order-(n-1) match exists and whose sentence reaches
    back far enough are looked up: the node (h_{n-1} .. h_1 w) is the order-n child of their
    match. The order-j match of position t is also the context of length j of position t + 1
    (unless t + 1 starts a sentence: its only context is ``<s>``), so the backoffs need no
    lookups."""
    size = offsets.size
    p = window.size - size
    n_max = trie.order
    words = window[p:].astype(np.intp)
    dtype = tables.dtype
    score = tables.logp[0][words]
    if n_max == 1:
        return score
    order = np.ones(size, dtype=np.int8)
    matches: list[np.ndarray] = [words]  # order-j match of every position, j = 1..N-1
    active = np.arange(size)
    rows = words
    for n in range(2, n_max + 1):
        # the token n-1 back: in the window, <s> right before the sentence, none beyond
        reach = offsets[active] >= n - 2
        active, rows = active[reach], rows[reach]
        tok = window[np.maximum(active + (p - n + 1), 0)].astype(np.int64)
        tok[offsets[active] == n - 2] = BOS
        found = trie.key_hash(n).find(rows * trie.width + tok)
        hit = found >= 0
        active, rows = active[hit], found[hit]
        if n < n_max:
            full = np.full(size, -1, dtype=np.intp)
            full[active] = rows
            matches.append(full)
        if active.size == 0:
            break
        order[active] = n
        score[active] = tables.logp[n - 1][rows]
    starts = offsets == 0
    for j in range(1, n_max):
        if j <= len(matches):
            ctx = np.empty(size, dtype=np.intp)
            ctx[0] = carry[j - 1]
            ctx[1:] = matches[j - 1][:-1]
            carry[j - 1] = int(matches[j - 1][-1])
        else:  # no position of the chunk has an order-j match; the one before it may
            ctx = np.full(size, -1, dtype=np.intp)
            ctx[0] = carry[j - 1]
            carry[j - 1] = -1
        ctx[starts] = BOS if j == 1 else -1
        add = (ctx >= 0) & (order <= j)
        at = np.flatnonzero(add)
        if at.size:
            score[at] = (score[at] + tables.backoff[j - 1][ctx[at]]).astype(dtype)
    return score


def score_backoff(
    trie: SuffixTrie,
    tables: BackoffTables,
    stream: np.ndarray,
    *,
    kenlm_sums: bool,
    chunk: int = SCORE_CHUNK,
    validate: bool = True,
    ends: np.ndarray | None = None,
) -> TokenScores:
    """Score every token of a stream (``</s>`` included) with a backoff-form model, ``chunk``
    tokens at a time (the results do not depend on ``chunk``). ``validate=False`` skips
    :func:`lm.ngram.counting.check_stream` (an ARPA model's stream may hold a literal ``<s>``).
    ``ends`` marks the tokens that end a sentence, default every ``</s>``: a text scored with an
    ARPA model may hold a literal ``</s>`` inside a line, which ``query`` scores as a word and
    carries the state over."""
    stream = check_stream(stream) if validate else np.asarray(stream, dtype=np.int32)
    carry = [-1] * max(trie.order - 1, 0)

    def score(window: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return backoff_chunk(trie, tables, window, offsets, carry)

    return score_chunks(score, trie.order, stream, ends, kenlm_sums=kenlm_sums, chunk=chunk)


def score_chunks(
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    order: int,
    stream: np.ndarray,
    ends: np.ndarray | None,
    *,
    kenlm_sums: bool,
    chunk: int = SCORE_CHUNK,
) -> TokenScores:
    """Per-token scores of a stream of ids from ``score(window, offsets)``, the log10 P of one
    chunk's tokens (:func:`stream_chunks`, called in order, so it may carry state from one chunk
    to the next), with KenLM's exact totals when ``kenlm_sums`` (and every score is finite)."""
    stream = np.asarray(stream, dtype=np.int32)
    ends = stream == EOS if ends is None else np.asarray(ends, dtype=bool)
    logprob = np.empty(stream.size, dtype=np.float64)
    oov = stream == UNK
    totals = KenlmTotals()
    finite = True
    for start, window, off in stream_chunks(stream, order - 1, chunk, ends):
        log10 = score(window, off)
        end = start + off.size
        np.multiply(log10, LN10, out=logprob[start:end], dtype=np.float64)
        if kenlm_sums and finite:
            finite = not np.isneginf(log10).any()
            if finite:
                totals.add(log10, stream[start:end], oov[start:end], ends[start:end])
    if not kenlm_sums or not finite:
        return TokenScores(logprob=logprob, oov=oov)
    totals.finish()
    return TokenScores(
        logprob=logprob, oov=oov, total_log10=totals.total, oov_log10=totals.oov_total
    )


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
