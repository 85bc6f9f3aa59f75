"""Token streams of the reference corpora for the neural benchmarks, split as docs/design.md §2
says (stand-alone until the project's corpus reader lands: no dependency but ``lm.vocab``).

Corpora are read from ``LMPIPE_CORPORA_DIR`` or, failing that, ``../shared/corpora`` beside the
repository.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmpipe.lm.vocab import Vocab, build_vocab, encode_sentences

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Streams:
    vocab: Vocab
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    valid_bytes: int
    test_bytes: int


def corpora_dir() -> Path:
    return Path(os.environ.get("LMPIPE_CORPORA_DIR", REPO.parent / "shared" / "corpora"))


def _streams(
    train: list[list[str]], valid: list[list[str]], test: list[list[str]], sep: str
) -> Streams:
    vocab = build_vocab(train)

    def n_bytes(sents: list[list[str]]) -> int:  # the split's text: its lines, newline-terminated
        return sum(len(sep.join(s).encode("utf-8")) + 1 for s in sents)

    return Streams(
        vocab,
        encode_sentences(vocab, train),
        encode_sentences(vocab, valid),
        encode_sentences(vocab, test),
        n_bytes(valid),
        n_bytes(test),
    )


def timemachine_chars(path: Path | None = None) -> Streams:
    """Every character a token, lines stripped, empty lines dropped, contiguous 80/10/10."""
    text = (path or corpora_dir() / "timemachine.txt").read_text(encoding="utf-8")
    lines = [list(s) for line in text.splitlines() if (s := line.strip())]
    n = len(lines)
    a, b = int(0.8 * n), int(0.9 * n)
    return _streams(lines[:a], lines[a:b], lines[b:], "")


def ptb_words(path: Path | None = None) -> Streams:
    """PTB's own split, whitespace tokens, the literal ``<unk>`` as the unknown word."""
    with zipfile.ZipFile(path or corpora_dir() / "ptb.zip") as z:

        def read(split: str) -> list[list[str]]:
            text = z.read(f"ptb/ptb.{split}.txt").decode("utf-8")
            return [s.split() for line in text.splitlines() if line.strip() and (s := line)]

        return _streams(read("train"), read("valid"), read("test"), " ")
