"""Tokenizers (docs/design.md §2). A tokenizer maps one stripped, non-empty line to tokens.

- ``char``: every Unicode character of the line, spaces included (the natural unit for Chinese).
- ``word``: d2l's: non-letters become spaces, lower-case, split.
- ``whitespace``: split on whitespace and nothing else (pre-tokenized corpora such as PTB).
- ``jieba``: Chinese words, jieba's default segmentation (its bundled dictionary and HMM for
  words the dictionary lacks; deterministic, nothing downloaded), whitespace dropped; Latin
  and digit runs come out whole (``hello``, ``2024``). Measured on the Jay Chou lyrics (5,819
  lines): jieba 0.51 s; its Rust port rjieba 0.019 s but 2 lines segmented differently (ties
  among equally likely cuts of repeated characters), so jieba is the reference used.
- ``bpe``: byte-level BPE learned on the training split of each data key (:mod:`lmpipe.lm.bpe`);
  a *learned* tokenizer: its function exists only with the merges of an ingest
  (``get_tokenizer(name, learned=path)``).

``normalize="d2l"`` is d2l's ``TimeMachine`` preprocessing (letters and spaces only, lower
case), applied to each line before tokenizing: with ``char`` it gives d2l's 26 letters + space.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmpipe.lm.errors import ConfigError

_NON_LETTERS = re.compile(r"[^A-Za-z]+")

Tokenizer = Callable[[str], list[str]]


def char_tokens(line: str) -> list[str]:
    return list(line)


def word_tokens(line: str) -> list[str]:
    return _NON_LETTERS.sub(" ", line).lower().split()


def whitespace_tokens(line: str) -> list[str]:
    return line.split()


def jieba_tokens(line: str) -> list[str]:
    return [t for t in _jieba().lcut(line) if not t.isspace()]


@functools.cache
def _jieba() -> Any:
    """jieba's tokenizer, its dictionary loaded once per process (0.5-2 s; jieba caches the
    prefix dictionary in the temporary folder), without its log lines."""
    import logging

    try:
        import jieba
    except ImportError:  # a dependency: only a broken install lacks it
        raise ConfigError("--tokenizer jieba needs the jieba package: pip install jieba") from None
    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    tk.initialize()
    return tk


TOKENIZERS: dict[str, Tokenizer] = {
    "char": char_tokens,
    "word": word_tokens,
    "whitespace": whitespace_tokens,
    "jieba": jieba_tokens,
}

# What a tokenizer's tokens cannot give back of a line (char and bpe keep all of it): its
# bits per byte are over bytes that it does not model, a lower figure for less work.
DISCARDS: dict[str, str] = {
    "word": "case, digits and punctuation",
    "whitespace": "how much whitespace separates tokens",
    "jieba": "whitespace",
}

# Tokenizers learned from a corpus's training split, stored with the vocabulary of their ingest.
LEARNED_TOKENIZERS = ("bpe",)
TOKENIZER_NAMES = (*TOKENIZERS, *LEARNED_TOKENIZERS)

NORMALIZERS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "d2l": lambda s: _NON_LETTERS.sub(" ", s).lower(),
}


def check_tokenizer(name: str) -> str:
    if name not in TOKENIZER_NAMES:
        raise ConfigError(
            f"unknown tokenizer {name!r}; choose one of: {', '.join(TOKENIZER_NAMES)}"
        )
    return name


def get_tokenizer(name: str, learned: str | Path | None = None) -> Tokenizer:
    """The tokenizer ``name``; a learned one (``bpe``) from the merges file ``learned`` of its
    ingest (``IngestResult.tokenizer_path``)."""
    if name in LEARNED_TOKENIZERS:
        if not learned:
            raise ConfigError(
                f"--tokenizer {name} is learned from a corpus's training split, and there is "
                "none here; use it with --corpus, --text or --train"
            )
        from lmpipe.lm.bpe import Bpe

        return Bpe.load(learned).tokens
    return TOKENIZERS[check_tokenizer(name)]


def get_normalizer(name: str) -> Callable[[str], str]:
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown normalization {name!r}; choose one of: {', '.join(NORMALIZERS)}"
        ) from None


def detokenize(tokenizer: str, tokens: list[str], learned: str | Path | None = None) -> str:
    """Text of tokens (generated ones): ``</s>`` ends a line; characters join directly, words
    with spaces; jieba's words directly, but for a space between two Latin or digit runs; BPE
    units by their merges (``learned``), exactly."""
    lines: list[list[str]] = [[]]
    for t in tokens:
        if t == "</s>":
            lines.append([])
        else:
            lines[-1].append(t)
    if tokenizer == "jieba":
        return "\n".join(_join_words(line) for line in lines).strip()
    if tokenizer in LEARNED_TOKENIZERS:
        from lmpipe.lm.bpe import Bpe

        bpe = Bpe.load(learned or "")
        return "\n".join(bpe.decode(line) for line in lines).strip()
    sep = "" if tokenizer == "char" else " "
    return "\n".join(sep.join(line) for line in lines).strip()


def _join_words(words: list[str]) -> str:
    out = ""
    for w in words:
        if out and _LATIN_END.search(out) and _LATIN_START.match(w):
            out += " "
        out += w
    return out


_LATIN_END = re.compile(r"[A-Za-z0-9]\Z")
_LATIN_START = re.compile(r"[A-Za-z0-9]")
