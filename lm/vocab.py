"""Vocabulary: token strings <-> integer ids, built from the training split only.

Reserved ids are fixed so that every model, file and test agrees on them:
``<unk>`` = 0, ``<s>`` = 1, ``</s>`` = 2, ``<pad>`` = 3 (KenLM uses the same first three).
Words follow from id 4 in order of descending training frequency, ties broken by first
appearance in the training text, so a vocabulary is a pure function of the training split.

A token stream (what every model consumes and every metric scores) is a 1-D int32 array of ids
in which every sentence is terminated by ``EOS``; ``BOS`` never occurs in a stream (it is
context only, docs/design.md §3).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from lmpipe.lm.errors import ConfigError

UNK, BOS, EOS, PAD = 0, 1, 2, 3
RESERVED: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<pad>")
FIRST_WORD_ID = len(RESERVED)


class VocabularyError(ConfigError):
    """The vocabulary cannot be built as asked (for example min_freq leaves no word)."""


@dataclass(frozen=True)
class Vocab:
    """An immutable id <-> token mapping with the training count of every token."""

    tokens: tuple[str, ...]
    counts: tuple[int, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tokens[:FIRST_WORD_ID] != RESERVED:
            raise VocabularyError(f"a vocabulary must start with the reserved tokens {RESERVED}")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def id(self, token: str) -> int:
        """The id of ``token``, ``UNK`` when it is out of vocabulary."""
        return self._index.get(token, UNK)

    def ids(self, tokens: Iterable[str]) -> list[int]:
        get = self._index.get
        return [get(t, UNK) for t in tokens]

    def token(self, idx: int) -> str:
        return self.tokens[idx]

    @property
    def num_words(self) -> int:
        """Word types (reserved tokens excluded)."""
        return len(self.tokens) - FIRST_WORD_ID

    @property
    def predictable_size(self) -> int:
        """Size of the set a model predicts over: the words, ``</s>`` and ``<unk>``.

        ``<s>`` (context only) and ``<pad>`` (batching only) are never predicted. This is the
        ``V`` of add-k smoothing and of KenLM's uniform distribution (docs/design.md §3)."""
        return self.num_words + 2

    def fingerprint(self) -> str:
        """sha256 of the token list: stored in every model and checkpoint built on it."""
        h = hashlib.sha256()
        for t in self.tokens:
            h.update(t.encode("utf-8"))
            h.update(b"\n")
        return h.hexdigest()


def build_vocab(
    sentences: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
) -> Vocab:
    """Count tokens over training ``sentences`` and keep those seen at least ``min_freq`` times
    (at most ``max_size`` words, the most frequent). A literal ``<unk>`` in the text is the
    unknown token itself (PTB ships its rare words as ``<unk>``) and is counted there."""
    counter: Counter[str] = Counter()
    for sent in sentences:
        counter.update(sent)
    return vocab_from_counts(counter, min_freq=min_freq, max_size=max_size)


def vocab_from_counts(
    counter: Counter[str] | dict[str, int], min_freq: int = 1, max_size: int | None = None
) -> Vocab:
    """Build a vocabulary from token counts; dict order stands for first appearance."""
    if min_freq < 1:
        raise VocabularyError(f"min_freq must be at least 1, got {min_freq}")
    first_seen = {tok: i for i, tok in enumerate(counter)}
    words = [t for t, c in counter.items() if c >= min_freq and t not in RESERVED]
    words.sort(key=lambda t: (-counter[t], first_seen[t]))
    if max_size is not None:
        words = words[:max_size]
    if not words:
        raise VocabularyError(
            f"min_freq={min_freq} leaves no word in the vocabulary (only reserved tokens); "
            "lower min_freq or use a larger training split"
        )
    kept = set(words)
    unk_count = sum(c for t, c in counter.items() if t not in kept and t not in RESERVED[1:])
    counts = (unk_count, 0, 0, 0, *(counter[t] for t in words))
    return Vocab(tokens=(*RESERVED, *words), counts=counts)


def encode_sentences(vocab: Vocab, sentences: Iterable[Sequence[str]]) -> np.ndarray:
    """The token stream of ``sentences``: their ids, each sentence followed by ``EOS``."""
    out: list[int] = []
    get = vocab._index.get
    for sent in sentences:
        out.extend(get(t, UNK) for t in sent)
        out.append(EOS)
    return np.asarray(out, dtype=np.int32)


def sentence_bounds(stream: np.ndarray) -> np.ndarray:
    """Start offsets of the sentences of a stream, plus its length: ``len == #sentences + 1``."""
    ends = np.flatnonzero(stream == EOS) + 1
    return np.concatenate(([0], ends)).astype(np.int64)
