"""Tokenizers (docs/design.md §2). A tokenizer maps one stripped, non-empty line to tokens.

- ``char``: every Unicode character of the line, spaces included (the natural unit for Chinese).
- ``word``: d2l's: non-letters become spaces, lower-case, split.
- ``whitespace``: split on whitespace and nothing else (pre-tokenized corpora such as PTB).

``normalize="d2l"`` is d2l's ``TimeMachine`` preprocessing (letters and spaces only, lower
case), applied to each line before tokenizing: with ``char`` it gives d2l's 26 letters + space.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lmpipe.lm.errors import ConfigError

_NON_LETTERS = re.compile(r"[^A-Za-z]+")

Tokenizer = Callable[[str], list[str]]


def char_tokens(line: str) -> list[str]:
    return list(line)


def word_tokens(line: str) -> list[str]:
    return _NON_LETTERS.sub(" ", line).lower().split()


def whitespace_tokens(line: str) -> list[str]:
    return line.split()


TOKENIZERS: dict[str, Tokenizer] = {
    "char": char_tokens,
    "word": word_tokens,
    "whitespace": whitespace_tokens,
}

NORMALIZERS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "d2l": lambda s: _NON_LETTERS.sub(" ", s).lower(),
}


def get_tokenizer(name: str) -> Tokenizer:
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown tokenizer {name!r}; choose one of: {', '.join(TOKENIZERS)}"
        ) from None


def get_normalizer(name: str) -> Callable[[str], str]:
    try:
        return NORMALIZERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown normalization {name!r}; choose one of: {', '.join(NORMALIZERS)}"
        ) from None


def detokenize(tokenizer: str, tokens: list[str]) -> str:
    """Text of tokens (generated ones): ``</s>`` ends a line; characters join directly, words
    with spaces."""
    sep = "" if tokenizer == "char" else " "
    lines: list[list[str]] = [[]]
    for t in tokens:
        if t == "</s>":
            lines.append([])
        else:
            lines[-1].append(t)
    return "\n".join(sep.join(line) for line in lines).strip()
