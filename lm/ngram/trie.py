"""A suffix trie over the n-grams of a model, stored as one sorted key array per order.

An order-n node is an n-gram g = (g_1..g_n). Its parent is its suffix suf(g) = (g_2..g_n), a node
of order n-1, and its key is ``row(suf(g)) * width + g_1``: keys sorted per order make the rows,
the children of a node are contiguous, and a node is found from its suffix with one
``searchsorted``. Order 1 is dense (row = token id, every id present), so lookups never fail there.

Why a suffix trie: KenLM's estimation walks n-grams in suffix order (docs/kenlm-mkn.md §2-§5). Here
the suffix of a node is its parent pointer, the continuation count N1+(. g) is the number of its
children, and the probability recursion p(h w) = u(h w) + gamma(h) p(suf(h w)) reads the parent.
Contexts ctx(g) = (g_1..g_{n-1}) are nodes too (every context ends at a real token or is ``<s>``),
found once per order and stored as ``context``.

Sentence starts are collapsed as in KenLM (§1): an n-gram never starts with two ``<s>``, so the
first word of a sentence has the single context ``<s>`` at every order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmpipe.lm.vocab import BOS

SORTED_LOOKUP_MIN = 1 << 20
"""Lookups of at least this many queries sort them first (:func:`find_rows`)."""

HASHED_LOOKUP_MIN = 1 << 14
"""Lookups of at least this many queries, and at least an eighth as many as there are keys, go
through a hash table of the keys instead (:func:`find_rows`)."""

NO_TOKEN = -1
"""History entry before the sentence's ``<s>``: no token there."""


@dataclass(frozen=True)
class SuffixTrie:
    """Per order n (index n-1): ``keys`` sorted int64, ``parent`` row of suf(g) at order n-1,
    ``token`` g_1, ``context`` row of ctx(g) at order n-1 (0 for unigrams: the empty context),
    all int32; ``count`` raw occurrences ending at real positions (int64 for unigrams, int32
    above: the bulk of a large model)."""

    width: int
    keys: tuple[np.ndarray, ...]
    parent: tuple[np.ndarray, ...]
    token: tuple[np.ndarray, ...]
    context: tuple[np.ndarray, ...]
    count: tuple[np.ndarray, ...]
    _hashes: dict[int, KeyHash] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_hashes"] = {}  # a cache: rebuilt on first use, never saved
        return state

    @property
    def order(self) -> int:
        return len(self.keys)

    def size(self, n: int) -> int:
        """Number of order-n nodes."""
        return int(self.keys[n - 1].size)

    def children(self, n: int) -> np.ndarray:
        """N1+(. g) for every order-n node: its distinct left extensions (``<s>`` included)."""
        if n >= self.order:
            return np.zeros(self.size(n), dtype=np.int64)
        return np.bincount(self.parent[n], minlength=self.size(n)).astype(np.int64)

    def find(
        self, n: int, suffix_rows: np.ndarray, tokens: np.ndarray, *, hashed: bool = False
    ) -> np.ndarray:
        """Rows of the order-n nodes (token, suffix...), ``-1`` where absent.

        ``suffix_rows`` are order-(n-1) rows (``-1`` allowed: stays absent). ``hashed`` looks
        them up in the order's hash table (:meth:`key_hash`, built on first use and cached)
        instead of a binary search of the sorted keys: scoring does, a one-off lookup need
        not build it."""
        if n == 1:
            return np.where(tokens >= 0, tokens, -1).astype(np.int64)
        if not hashed:
            return find_rows(self.keys[n - 1], self.width, suffix_rows, tokens)
        suffix_rows = np.asarray(suffix_rows)
        tokens = np.asarray(tokens)
        ok = (suffix_rows >= 0) & (tokens >= 0)
        if ok.all():
            return self.key_hash(n).find(suffix_rows.astype(np.int64) * self.width + tokens)
        out = np.full(ok.shape, -1, dtype=np.int64)
        out[ok] = self.key_hash(n).find(suffix_rows[ok].astype(np.int64) * self.width + tokens[ok])
        return out

    def key_hash(self, n: int) -> KeyHash:
        """The hash table of the order-n keys (n >= 2), built on first use and kept."""
        hashes = self.__dict__.get("_hashes")
        if hashes is None:  # a trie pickled before the cache existed
            hashes = {}
            object.__setattr__(self, "_hashes", hashes)
        table = hashes.get(n)
        if table is None:
            table = hashes[n] = KeyHash.build(self.keys[n - 1])
        return table

    def lookup(self, grams: np.ndarray) -> np.ndarray:
        """Rows of n-grams given as (M, n) token arrays, oldest first; ``-1`` where absent."""
        n = grams.shape[1]
        rows = self.find(1, np.zeros(len(grams), np.int64), grams[:, n - 1].astype(np.int64))
        for k in range(2, n + 1):
            rows = self.find(k, rows, grams[:, n - k])
        return rows

    def grams(self, n: int, rows: np.ndarray | None = None) -> np.ndarray:
        """The order-n n-grams (of ``rows``, default all) as a (rows, n) int32 array, oldest
        token first."""
        rows = np.arange(self.size(n)) if rows is None else rows
        out = np.empty((rows.size, n), dtype=np.int32)
        for k in range(n, 0, -1):
            out[:, n - k] = self.token[k - 1][rows]
            rows = self.parent[k - 1][rows]
        return out


_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class KeyHash:
    """An open-addressing hash table (linear probing, no wrap-around) over one order's sorted
    ``keys``: slot -> row of the key, -1 where empty. A lookup costs about one random memory
    access where a binary search of a large key array costs about twenty. The table has 2 to 4
    slots per key (4 bytes each, 8 from 2**31 keys), plus the few that the last run of
    occupied slots spills past the end; an empty slot always follows the last key."""

    keys: np.ndarray
    table: np.ndarray
    bits: int

    @classmethod
    def build(cls, keys: np.ndarray) -> KeyHash:
        size = int(keys.size)
        bits = max(1, size.bit_length() + 1)
        dtype = np.int32 if size < np.iinfo(np.int32).max else np.int64
        home = _slots(keys, bits)
        # Insert in the order of the home slots: key i then lands in the first free slot at or
        # after its home, max(home_i, pos_{i-1} + 1), i.e. a running maximum; the slots from
        # its home up to it are all occupied, as a lookup that probes forward needs.
        if bits + size.bit_length() <= 63:
            packed = np.sort((home << size.bit_length()) | np.arange(size, dtype=np.int64))
            row = packed & ((1 << size.bit_length()) - 1)
            home = packed >> size.bit_length()
            del packed
        else:
            row = np.argsort(home)
            home = home[row]
        step = np.arange(size, dtype=np.int64)
        pos = np.maximum.accumulate(home - step) + step if size else step
        table = np.full(max(1 << bits, int(pos[-1]) + 2 if size else 0), -1, dtype=dtype)
        table[pos] = row
        return cls(keys, table, bits)

    def find(self, query: np.ndarray) -> np.ndarray:
        """Rows of the non-negative int64 ``query`` keys, -1 where absent."""
        if self.keys.size == 0:
            return np.full(query.shape, -1, dtype=np.int64)
        slot = _slots(query, self.bits)
        row = self.table[slot].astype(np.int64)
        done = (row < 0) | (self.keys[row] == query)
        if done.all():
            return row
        out = np.where(done, row, -1)
        left = np.flatnonzero(~done)
        query, home = query[left], slot[left]
        slot = home.copy()
        while left.size:
            slot += 1
            row = self.table[slot].astype(np.int64)
            key = self.keys[np.maximum(row, 0)]
            hit = (row >= 0) & (key == query)
            out[left[hit]] = row[hit]
            # Along a run of occupied slots the keys' home slots never decrease (build inserts
            # in home order), so a key met whose home lies past the query's ends the search as
            # an empty slot does: an absent key costs about what a present one does, not the
            # rest of its run (PTB's 5-gram: 4 probe rounds per order instead of 9 to 18).
            more = (row >= 0) & ~hit
            more[more] = _slots(key[more], self.bits) <= home[more]
            left, query, slot, home = left[more], query[more], slot[more], home[more]
        return out


def _slots(keys: np.ndarray, bits: int) -> np.ndarray:
    """Home slots of non-negative int64 keys: the top ``bits`` of key * 2**64/phi (Fibonacci)."""
    h = keys.astype(np.uint64) * _FIBONACCI
    return (h >> np.uint64(64 - bits)).astype(np.intp)


def find_rows(
    keys: np.ndarray, width: int, suffix_rows: np.ndarray, tokens: np.ndarray
) -> np.ndarray:
    """Rows of the keys ``suffix_row * width + token`` in one order's sorted ``keys``, ``-1``
    where absent (or where the suffix row or the token is negative)."""
    if keys.size == 0:
        return np.full(np.shape(tokens), -1, dtype=np.int64)
    query = suffix_rows.astype(np.int64) * width + tokens
    if query.size >= HASHED_LOOKUP_MIN and query.size * 8 >= keys.size:
        # As many queries as keys, or about: an open-addressing table over the keys costs
        # about one random access per query where a binary search costs twenty (PTB's 5-gram
        # contexts, 790 k into 800 k keys: 0.10 s against 0.31 s; 18 M into 18 M: 2.5 s
        # against 5.3 s).
        ok = (suffix_rows >= 0) & (tokens >= 0)
        rows = KeyHash.build(keys).find(np.where(ok, query, 0))
        return np.where(ok, rows, -1)
    if query.size < SORTED_LOOKUP_MIN:
        idx = np.searchsorted(keys, query)
    else:
        # Random queries into a large key array miss the cache at every probe of the binary
        # search (18 M into 18 M: ~25 s); ascending queries walk the keys once, because numpy's
        # searchsorted starts from the previous bound when the queries ascend (~3 s with the sort).
        order = np.argsort(query)
        idx = np.empty(query.size, dtype=np.intp)
        idx[order] = np.searchsorted(keys, query[order])
        del order
    idx = np.minimum(idx, keys.size - 1)
    found = (suffix_rows >= 0) & (tokens >= 0) & (keys[idx] == query)
    return np.where(found, idx, -1)


def build_trie(
    grams: np.ndarray, counts: np.ndarray, width: int, previous: np.ndarray
) -> SuffixTrie:
    """The suffix trie of all model n-grams of orders 1..N, from the distinct padded full
    N-grams (``grams`` (U, N), oldest first), their counts and each one's predecessor
    (``previous``), as :func:`lm.ngram.counting.count_linked_ngrams` returns them.

    Contexts: the context (g_1..g_{n-1}) of an order-n node (n >= 3) ends one position before
    the node's end, inside the same sentence (it ends at a real token), so it is the
    order-(n-1) suffix of the window one position earlier: each order's contexts are one
    gather through ``previous`` from any of the node's grams, where a lookup of
    (ctx(suf(g)), g_1) per node took a hash table's build and probe (PTB's 5-gram: 5 ms
    against 75 ms).

    A full N-gram whose suffix of length n-1 already starts with ``<s>`` stops there: its longer
    suffixes would start with ``<s> <s>`` (docs/kenlm-mkn.md §1 "collapsing").

    Memory: parent, token and context rows, and the counts of orders >= 2, are int32 (4 bytes
    instead of 8; a row or a count never exceeds the number of positions, checked below), so a
    node costs 24 bytes with its int64 key. The largest transient is one order's ``np.unique``
    (about 5 int64 arrays of the n-gram count)."""
    n_max = grams.shape[1]
    total = int(counts.sum())
    if total >= np.iinfo(np.int32).max:
        raise ValueError(f"{total} positions do not fit the trie's int32 rows and counts")
    last = grams[:, n_max - 1].astype(np.int64)
    keys = [np.arange(width, dtype=np.int64)]
    parent = [np.zeros(width, dtype=np.int32)]
    token = [np.arange(width, dtype=np.int32)]
    context = [np.zeros(width, dtype=np.int32)]
    count = [np.bincount(last, weights=counts, minlength=width).astype(np.int64)]
    rows = last
    valid = np.ones(len(grams), dtype=bool)
    for n in range(2, n_max + 1):
        valid &= grams[:, n_max - n + 1] != BOS
        key = rows[valid] * width + grams[valid, n_max - n]
        uniq, inv, first = _unique_inverse(key)
        del key
        below = rows  # order n-1's row of every full N-gram
        keys.append(uniq)
        parent.append((uniq // width).astype(np.int32))
        token.append((uniq % width).astype(np.int32))
        count.append(np.bincount(inv, weights=counts[valid], minlength=uniq.size).astype(np.int32))
        rows = np.full(len(grams), -1, dtype=np.int64)
        rows[valid] = inv
        del inv
        if n == 2:
            context.append(token[1])
            continue
        before = previous[np.flatnonzero(valid)[first]]  # a gram of the node, one back
        assert (before >= 0).all(), "an order-n node (n >= 3) never starts its sentence"
        ctx = below[before]
        del before
        assert (ctx >= 0).all(), "every context of a model n-gram is a model n-gram"
        context.append(ctx.astype(np.int32))
    return SuffixTrie(width, tuple(keys), tuple(parent), tuple(token), tuple(context), tuple(count))


def _unique_inverse(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct keys, inverse, the index of one occurrence of each), as ``np.unique`` gives
    them, in one pass when ``key`` is already non-decreasing: so it is at every order when the
    full N-grams come in suffix order (as :func:`lm.ngram.counting.count_full_ngrams` gives them
    where it can sort), since each order's rows are then assigned in the order of the grams."""
    if key.size and bool((key[1:] >= key[:-1]).all()):
        new = np.empty(key.size, dtype=bool)
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        return key[new], np.cumsum(new, dtype=np.int64) - 1, np.flatnonzero(new)
    # not return_index: np.unique then sorts stably (mergesort): 1.5 s against 0.55 s at 8 M keys
    uniq, inv = np.unique(key, return_inverse=True)
    index = np.empty(uniq.size, dtype=np.int64)
    index[inv] = np.arange(key.size)  # one occurrence of each (any one: numpy picks which)
    return uniq, inv, index


def histories(stream: np.ndarray, offsets: np.ndarray, length: int) -> np.ndarray:
    """(T, length) history of every position, most recent first: column j-1 holds the token j
    positions back, ``<s>`` right before the sentence start and :data:`NO_TOKEN` beyond it."""
    out = np.full((stream.size, length), NO_TOKEN, dtype=np.int64)
    for j in range(1, length + 1):
        if j < stream.size:
            out[j:, j - 1] = stream[:-j]
        out[offsets < j, j - 1] = NO_TOKEN
        out[offsets == j - 1, j - 1] = BOS
    return out


def subtrie(trie: SuffixTrie, need: list[np.ndarray]) -> SuffixTrie:
    """The trie of the ``need`` rows of every order. Old rows map to new ones monotonically,
    so the keys row(suffix) * width + token stay sorted."""
    index = [np.cumsum(nd) - 1 for nd in need]
    keys, parent, token, context, count = [], [], [], [], []
    for n in range(1, trie.order + 1):
        rows = np.flatnonzero(need[n - 1])
        tok = trie.token[n - 1][rows]
        if n == 1:
            par = np.zeros(rows.size, dtype=np.int64)
            ctx = np.zeros(rows.size, dtype=np.int64)
            keys.append(trie.keys[0][rows])
        else:
            par = index[n - 2][trie.parent[n - 1][rows]]
            ctx = index[n - 2][trie.context[n - 1][rows]]
            keys.append(par * trie.width + tok)
        parent.append(par.astype(np.int32))
        token.append(tok)
        context.append(ctx.astype(np.int32))
        count.append(trie.count[n - 1][rows])
    return SuffixTrie(
        trie.width, tuple(keys), tuple(parent), tuple(token), tuple(context), tuple(count)
    )
