"""Minibatches of a token stream, exactly d2l's two ways (2nd ed., ``seq_data_iter_random`` and
``seq_data_iter_sequential``), with the randomness drawn from a seeded numpy ``Generator``.

Each pure ``*_windows`` function takes its random choices as arguments (so tests can write the
expected windows out); ``*_batches`` draws them from the generator the way d2l draws them from
``random`` and yields torch tensors ``X, Y`` of shape (batch_size, num_steps), ``Y`` = ``X``
shifted by one token.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

Windows = Iterator[tuple[np.ndarray, np.ndarray]]


def random_windows(
    corpus: np.ndarray, batch_size: int, num_steps: int, offset: int, order: np.ndarray
) -> Windows:
    """d2l's random sampling, given its random offset (``0 <= offset < num_steps``) and the
    permutation ``order`` of the ``(len(corpus) - offset - 1) // num_steps`` subsequences."""
    corpus = corpus[offset:]
    num_subseqs = (len(corpus) - 1) // num_steps
    if len(order) != num_subseqs:
        raise ValueError(f"order must permute {num_subseqs} subsequences; got {len(order)}")
    starts = np.asarray(order, dtype=np.int64) * num_steps  # d2l's shuffled initial_indices
    steps = np.arange(num_steps)
    for i in range(0, batch_size * (num_subseqs // batch_size), batch_size):
        idx = starts[i : i + batch_size, None] + steps  # (batch, num_steps)
        yield corpus[idx], corpus[idx + 1]


def sequential_windows(corpus: np.ndarray, batch_size: int, num_steps: int, offset: int) -> Windows:
    """d2l's sequential partitioning, given its random offset (``0 <= offset <= num_steps``):
    row ``b`` of consecutive batches continues where it stopped, so a state can be carried."""
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = corpus[offset : offset + num_tokens].reshape(batch_size, -1)
    ys = corpus[offset + 1 : offset + 1 + num_tokens].reshape(batch_size, -1)
    for i in range(0, num_steps * (xs.shape[1] // num_steps), num_steps):
        yield xs[:, i : i + num_steps], ys[:, i : i + num_steps]


def num_batches(corpus_len: int, batch_size: int, num_steps: int) -> int:
    """Batches per epoch (the smallest over the possible random offsets)."""
    return max(0, (corpus_len - num_steps - 1) // num_steps // batch_size)


def batches(
    corpus: np.ndarray,
    batch_size: int,
    num_steps: int,
    sampling: str,
    rng: np.random.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (X, Y) int64 tensors (batch_size, num_steps), randomness drawn from ``rng``:
    random offset as d2l's ``random.randint(0, num_steps - 1)`` (random sampling) or
    ``random.randint(0, num_steps)`` (sequential), then for random sampling a permutation."""
    if sampling == "random":
        offset = int(rng.integers(0, num_steps))
        order = rng.permutation((len(corpus) - offset - 1) // num_steps)
        windows = random_windows(corpus, batch_size, num_steps, offset, order)
    elif sampling == "sequential":
        windows = sequential_windows(
            corpus, batch_size, num_steps, int(rng.integers(0, num_steps + 1))
        )
    else:
        raise ValueError(f"sampling must be 'random' or 'sequential'; got {sampling!r}")
    for x, y in windows:
        yield torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))
