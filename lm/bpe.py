"""Byte-level BPE, learned per data key (docs/tokenizers.md).

GPT-2's scheme through Hugging Face ``tokenizers``: a line's UTF-8 bytes are mapped to 256
printable stand-ins (``Ġ`` is the space, ``è¿Ļ`` the three bytes of 这), cut by GPT-2's
pre-tokenization pattern (a word keeps the space before it: ``Ġtime``), and merged by BPE
merges learned on the **training split only**. Every text can be spelled (the 256 bytes are
the base units) and decoding is exact: ``decode(tokens(line)) == line``. The vocabulary is
still the units the training split's tokens use, as for every tokenizer: a unit a test text
needs and training never produced as a token (the lone bytes of a character training did not
have, a merge that training always merged further) is out of vocabulary, and counted so.

The learned tokenizer is stored with the vocabulary of its data key (``tokenizer.json``), so
every model, n-gram and neural, of one ingest sees the same merges, and generation decodes
with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmpipe.lm.errors import ConfigError, WarehouseError
from lmpipe.lm.fileio import atomic_write_text

# A merge seen once in training is memorization, not a unit: it must occur twice.
MIN_PAIR_COUNT = 2


def _lib() -> Any:
    try:
        import tokenizers
    except ImportError:  # a dependency: only a broken install lacks it
        raise ConfigError(
            "--tokenizer bpe needs Hugging Face's tokenizers package: pip install tokenizers"
        ) from None
    return tokenizers


class Bpe:
    """A learned byte-level BPE tokenizer: ``tokens`` of a text, ``decode`` of tokens."""

    def __init__(self, tok: Any) -> None:
        self._tok = tok

    @classmethod
    def learn(cls, texts: Iterable[str], vocab_size: int) -> Bpe:
        """Merges learned from ``texts`` (the training split's lines, or pieces of them cut
        before a whitespace) until the vocabulary holds ``vocab_size`` units (fewer when no
        pair occurs ``MIN_PAIR_COUNT`` times any more)."""
        lib = _lib()
        tok = lib.Tokenizer(lib.models.BPE())
        tok.pre_tokenizer = lib.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = lib.decoders.ByteLevel()
        trainer = lib.trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=MIN_PAIR_COUNT,
            show_progress=False,
            initial_alphabet=lib.pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def load(cls, path: str | Path) -> Bpe:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise WarehouseError(
                f"the BPE merges {path} are gone: run the experiment again to re-create them"
            ) from None
        return cls(_lib().Tokenizer.from_str(text))

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self._tok.to_str())

    @property
    def size(self) -> int:
        """Units of the learned vocabulary (the 256 bytes and the merges)."""
        return int(self._tok.get_vocab_size())

    def tokens(self, text: str) -> list[str]:
        return list(self._tok.encode(text, add_special_tokens=False).tokens)

    def decode(self, tokens: list[str]) -> str:
        """The text of tokens (bytes that do not form UTF-8, as a model may generate, become
        U+FFFD); ``<unk>`` stays as it is."""
        return str(self._tok.decoder.decode(tokens)) if tokens else ""
