"""Tiny corpora shared by the n-gram tests, and the path of the real corpora for slow tests."""

from pathlib import Path

import numpy as np
import pytest

from lmpipe.lm.vocab import Vocab, build_vocab, encode_sentences

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"

KENLM_TOY = ["the cat sat", "the dog sat down", "a cat"]
SMALL = ["the cat sat", "the dog sat down", "a cat", "the cat ran", "a dog sat on the cat"]


def encode(lines: list[str], vocab: Vocab | None = None) -> tuple[Vocab, np.ndarray]:
    sents = [line.split() for line in lines]
    vocab = vocab or build_vocab(sents)
    return vocab, encode_sentences(vocab, sents)


@pytest.fixture
def toy() -> tuple[Vocab, np.ndarray]:
    return encode(KENLM_TOY)


@pytest.fixture
def small() -> tuple[Vocab, np.ndarray]:
    return encode(SMALL)
