"""d2l's two minibatch schemes, windows written out for d2l's own example
(corpus 0..34, batch 2, 5 steps)."""

from __future__ import annotations

import numpy as np

from lmpipe.lm.neural.batching import batches, num_batches, random_windows, sequential_windows

CORPUS = np.arange(35)


def rows(start: int) -> list[int]:
    return list(range(start, start + 5))


def as_lists(windows) -> list[tuple[list[list[int]], list[list[int]]]]:
    return [(np.asarray(x).tolist(), np.asarray(y).tolist()) for x, y in windows]


def test_random_windows_match_d2l() -> None:
    # offset 2 -> corpus[2:], 6 subsequences starting at 2, 7, 12, 17, 22, 27; shuffled order:
    got = as_lists(random_windows(CORPUS, 2, 5, offset=2, order=np.array([3, 0, 5, 1, 4, 2])))
    assert got == [
        ([rows(17), rows(2)], [rows(18), rows(3)]),
        ([rows(27), rows(7)], [rows(28), rows(8)]),
        ([rows(22), rows(12)], [rows(23), rows(13)]),
    ]


def test_sequential_windows_match_d2l() -> None:
    # offset 3 -> 30 tokens 3..32 as two rows 3..17 and 18..32, read 5 columns at a time
    got = as_lists(sequential_windows(CORPUS, 2, 5, offset=3))
    assert got == [
        ([rows(3), rows(18)], [rows(4), rows(19)]),
        ([rows(8), rows(23)], [rows(9), rows(24)]),
        ([rows(13), rows(28)], [rows(14), rows(29)]),
    ]


def test_batches_draw_like_d2l_from_the_generator() -> None:
    draws = np.random.default_rng(7)
    offset = int(draws.integers(0, 5))  # random.randint(0, num_steps - 1)
    order = draws.permutation((35 - offset - 1) // 5)
    expected = as_lists(random_windows(CORPUS, 2, 5, offset, order))
    got = as_lists(batches(CORPUS, 2, 5, "random", np.random.default_rng(7)))
    assert got == expected

    draws = np.random.default_rng(8)
    expected = as_lists(
        sequential_windows(CORPUS, 2, 5, int(draws.integers(0, 6)))
    )  # randint(0, num_steps)
    assert as_lists(batches(CORPUS, 2, 5, "sequential", np.random.default_rng(8))) == expected


def test_batches_are_int64_tensors_and_counted() -> None:
    for sampling in ("random", "sequential"):
        got = list(batches(CORPUS.astype(np.int32), 2, 5, sampling, np.random.default_rng(0)))
        assert len(got) >= num_batches(35, 2, 5)
        x, y = got[0]
        assert x.dtype == y.dtype == __import__("torch").int64 and tuple(x.shape) == (2, 5)
        assert (x[:, 1:] == y[:, :-1]).all()
