"""A backoff model's scoring tables laid out as KenLM's ``probing`` binary lays them out: per
order n >= 2 one open-addressing hash table whose slot holds the n-gram's key, log10 p and log10
backoff together, so that looking an n-gram up and reading its values is one memory access
(the suffix trie's hash, :class:`lm.ngram.trie.KeyHash`, takes four: slot, key, p, backoff).
The binary model file (:mod:`lm.ngram.binary`) holds these tables; scoring reads them in place.

Keys: an order-n n-gram (g_1 .. g_n) is ``slot(g_2 .. g_n) * width + g_1``, its suffix's slot in
the order-(n-1) table (for n - 1 = 1, the word id), so a lookup extends the match found one order
below by one older word, as :func:`lm.ngram.scoring.backoff_chunk` does with trie rows.

Slots: ``home(key)`` = the top 32 bits of key * 2**64/phi (Fibonacci hashing), scaled to the
table's ``SLOTS_PER_KEY * keys`` home slots; linear probing with no wrap-around (the table runs
on past the last home slot until an empty slot). Keys are inserted in the order of their home
slots, so along a run of occupied slots the homes never decrease: a search may stop at the first
key whose home lies past the query's, and an absent n-gram costs about what a present one does.
Each slot's key carries its shift (how far past its home it lies) in its top byte, so that test
is one shift and one comparison, and a key found d slots on is the query with shift d.

Scores equal the trie scorer's bit for bit (the same float additions in the same order; tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmpipe.lm.metrics import TokenScores
from lmpipe.lm.ngram.scoring import BackoffTables, score_chunks
from lmpipe.lm.ngram.trie import SuffixTrie
from lmpipe.lm.vocab import BOS

SLOTS_PER_KEY = 3
"""Home slots per key (load factor 1/3; KenLM's default is 1/1.5): PTB's 5-gram scores 15 %
faster than at 2 (the probe runs are shorter) in a file of the suffix trie's former size,
111 MB against KenLM's 51 MB."""

_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = -1
_TAG = 56  # a slot's key holds, above bit 56, how far past its home slot the key lies
_MAX_SHIFT = (1 << 7) - 1  # (7 bits: the sign bit stays for the empty slot's -1)
_KEY_LIMIT = 1 << _TAG
_NO_CONTEXT = -0.0  # what an absent context adds: x + -0.0 is x for every float, -0.0 too


def record_dtype(values: np.dtype) -> np.dtype:
    """A slot: the key (int64: its shift above bit 56, -1 when empty), log10 p and log10
    backoff in the model's precision (16 bytes for float32, KenLM's entry size)."""
    return np.dtype([("key", "<i8"), ("logp", values), ("backoff", values)])


def home_slots(keys: np.ndarray, homes: int) -> np.ndarray:
    """Home slot in [0, homes) of each non-negative int64 key (homes < 2**32)."""
    h = keys.astype(np.uint64) * _FIBONACCI
    return (((h >> np.uint64(32)) * np.uint64(homes)) >> np.uint64(32)).astype(np.intp)


@dataclass(frozen=True)
class ProbingTables:
    """``unigram_logp``/``unigram_backoff`` by word id; ``records[n-2]`` the order-n table
    (:func:`record_dtype`), ``homes[n-2]`` its number of home slots; ``width`` the key's word
    radix (the vocabulary size)."""

    width: int
    unigram_logp: np.ndarray
    unigram_backoff: np.ndarray
    records: tuple[np.ndarray, ...]
    homes: tuple[int, ...]

    @property
    def order(self) -> int:
        return len(self.records) + 1

    @property
    def dtype(self) -> np.dtype:
        return self.unigram_logp.dtype

    @classmethod
    def build(cls, trie: SuffixTrie, tables: BackoffTables) -> ProbingTables:
        """The tables of a suffix trie's model (order-1 rows are word ids, as in the trie)."""
        dtype = tables.dtype
        unigram_backoff = (
            tables.backoff[0] if trie.order > 1 else np.zeros(trie.size(1), dtype=dtype)
        )
        slot_of = np.arange(trie.size(1), dtype=np.int64)  # the previous order's slot per row
        records, homes = [], []
        for n in range(2, trie.order + 1):
            keys = slot_of[trie.parent[n - 1]] * trie.width + trie.token[n - 1]
            size = int(keys.size)
            if size and int(keys.max()) >= _KEY_LIMIT:
                raise ValueError(f"{size} {n}-grams: their keys need more than 56 bits")
            n_homes = max(1, SLOTS_PER_KEY * size)
            while True:
                if n_homes >= 1 << 32:
                    raise ValueError(f"{size} {n}-grams: more than 32-bit home slots can index")
                home = home_slots(keys, n_homes)
                rows = np.argsort(home, kind="stable")
                home = home[rows]
                # key i (in home order) lands in the first free slot at or after its home:
                # max(home_i, pos_{i-1} + 1), a running maximum (as KeyHash.build)
                step = np.arange(size, dtype=np.int64)
                pos = np.maximum.accumulate(home - step) + step if size else step
                shift = pos - home
                if not size or int(shift.max()) <= _MAX_SHIFT:
                    break
                n_homes *= 2  # a run too long for the tag (not met at 3 slots per key)
            table = np.zeros(max(n_homes, int(pos[-1]) + 2 if size else 1), record_dtype(dtype))
            table["key"] = _EMPTY
            table["key"][pos] = keys[rows] | (shift << _TAG)
            table["logp"][pos] = tables.logp[n - 1][rows]
            if n < trie.order:
                table["backoff"][pos] = tables.backoff[n - 1][rows]
            slot_of = np.empty(size, dtype=np.int64)
            slot_of[rows] = pos
            records.append(table)
            homes.append(n_homes)
        return cls(trie.width, tables.logp[0], unigram_backoff, tuple(records), tuple(homes))

    def find(self, n: int, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slots, records) of the order-n keys ``query``: slot -1 where absent (the record is
        then another key's)."""
        table, n_homes = self.records[n - 2], self.homes[n - 2]
        home = home_slots(query, n_homes)
        rec = table[home]
        stored = rec["key"]
        found = stored == query  # at its home: shift 0, the key itself
        slot = np.where(found, home, -1)
        # go on where the home slot holds another key, then while the slot d places on holds a
        # key shifted by d or more (its home is not past the query's)
        left = np.flatnonzero(~found & (stored >= 0))
        query = query[left]
        at = home[left]
        keys = table["key"]
        shift = 0
        while left.size:
            shift += 1
            at += 1
            query += 1 << _TAG  # the query as it is stored d slots past its home
            stored = keys[at]
            hit = stored == query
            if hit.any():
                rows, where = left[hit], at[hit]
                slot[rows] = where
                rec[rows] = table[where]
            more = ~hit & ((stored >> _TAG) >= shift)  # an empty slot's -1 stops too
            left, query, at = left[more], query[more], at[more]
        return slot, rec


def probing_chunk(
    pt: ProbingTables, window: np.ndarray, offsets: np.ndarray, carry: np.ndarray
) -> np.ndarray:
    """log10 P of a chunk's tokens (:func:`lm.ngram.scoring.stream_chunks`), as
    :func:`lm.ngram.scoring.backoff_chunk` computes it. ``carry[j-1]`` is the backoff of the
    order-j match of the position before the chunk (-0.0 where it has none) on entry, of the
    chunk's last position on return: the order-j match of a position is the context of length j
    of the next one, so each order keeps its matches' backoffs and the contexts need no
    lookups."""
    size = offsets.size
    p = window.size - size
    n_max = pt.order
    words = window[p:].astype(np.intp)
    dtype = pt.dtype
    score = pt.unigram_logp[words]
    if n_max == 1:
        return score
    order = np.ones(size, dtype=np.int8)
    match_bo = [pt.unigram_backoff[words]]  # per order j < N: backoff of each position's match
    active = np.arange(size)
    slots = words.astype(np.int64)
    for n in range(2, n_max + 1):
        # the token n-1 back: in the window, <s> right before the sentence, none beyond
        back = offsets[active]
        reach = back >= n - 2
        active, slots, back = active[reach], slots[reach], back[reach]
        tok = window[np.maximum(active + (p - n + 1), 0)].astype(np.int64)
        tok[back == n - 2] = BOS
        found, rec = pt.find(n, slots * pt.width + tok)
        hit = found >= 0
        active, slots = active[hit], found[hit]
        if active.size == 0:
            break
        order[active] = n
        score[active] = rec["logp"][hit]
        if n < n_max:
            bo = np.full(size, _NO_CONTEXT, dtype=dtype)
            bo[active] = rec["backoff"][hit]
            match_bo.append(bo)
    starts = offsets == 0
    ctx = np.empty(size, dtype=dtype)
    for j in range(1, n_max):
        ctx[0] = carry[j - 1]
        if j <= len(match_bo):
            ctx[1:] = match_bo[j - 1][:-1]
            carry[j - 1] = match_bo[j - 1][-1]
        else:  # no position of the chunk has an order-j match
            ctx[1:] = _NO_CONTEXT
            carry[j - 1] = _NO_CONTEXT
        ctx[starts] = pt.unigram_backoff[BOS] if j == 1 else _NO_CONTEXT
        # the backoffs of the contexts longer than the match, shortest first, in the table's
        # precision (docs/kenlm-mkn.md §7); an absent context's -0.0 changes nothing
        at = np.flatnonzero(order <= j)
        score[at] = (score[at] + ctx[at]).astype(dtype)
    return score


def score_probing(
    pt: ProbingTables, stream: np.ndarray, ends: np.ndarray | None, *, kenlm_sums: bool
) -> TokenScores:
    """Every token of a stream of the model's ids (``ends``: the sentence ends, default every
    ``</s>``), as :func:`lm.ngram.scoring.score_backoff` scores it."""
    carry = np.full(max(pt.order - 1, 0), _NO_CONTEXT, dtype=pt.dtype)

    def chunk(window: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return probing_chunk(pt, window, offsets, carry)

    return score_chunks(chunk, pt.order, stream, ends, kenlm_sums=kenlm_sums)
