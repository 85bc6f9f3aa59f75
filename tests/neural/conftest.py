"""Tiny corpora shared by the neural tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmpipe.lm.vocab import EOS, FIRST_WORD_ID

VOCAB = 12  # 4 reserved ids + 8 words (test_train.py relies on it)


def make_stream(n: int, seed: int) -> np.ndarray:
    """A stream of ``n`` ids with a learnable pattern and an ``</s>`` every 7 tokens."""
    rng = np.random.default_rng(seed)
    words = FIRST_WORD_ID + (np.arange(n) * 3 + rng.integers(0, 2, n)) % (VOCAB - FIRST_WORD_ID)
    words[6::7] = EOS
    words[-1] = EOS
    return words.astype(np.int32)


@pytest.fixture
def streams() -> tuple[np.ndarray, np.ndarray]:
    return make_stream(600, 0), make_stream(120, 1)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)
