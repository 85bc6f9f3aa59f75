"""Where each family wins: two models' per-token scores of the same test stream compared by how
often the token occurs in training, and the positions where one most out-predicts the other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EOS_ID = 2  # lm.vocab: </s>
BUCKETS = ("rare", "medium", "frequent")


@dataclass(frozen=True)
class Bucket:
    """Test positions whose token's training count lies in ``[low, high]``."""

    name: str
    low: int
    high: int
    mask: np.ndarray  # (N,) bool over test positions


def frequency_buckets(ids: np.ndarray, train_counts: np.ndarray) -> list[Bucket]:
    """Rare, medium and frequent tokens: the test positions cut in three by the training count
    of their token, at the count's 1/3 and 2/3 quantiles over the positions (so each bucket
    holds about a third of the test tokens whatever the corpus; ties keep a count in one bucket,
    so buckets can be unequal, and an empty one is left out)."""
    c = np.asarray(train_counts, dtype=np.int64)[np.asarray(ids, dtype=np.int64)]
    if c.size == 0:
        return []
    q1, q2 = (int(v) for v in np.quantile(c, [1 / 3, 2 / 3], method="lower"))
    masks = (c <= q1, (c > q1) & (c <= q2), c > q2)
    out = []
    for name, mask in zip(BUCKETS, masks, strict=True):
        if mask.any():
            out.append(Bucket(name, int(c[mask].min()), int(c[mask].max()), mask))
    return out


@dataclass(frozen=True)
class BucketGain:
    bucket: Bucket
    tokens: int
    mean_gain: float  # mean of ln p_b - ln p_a over the bucket's positions (nats; > 0: b wins)
    b_wins: float  # share of positions where b gives the higher probability


def bucket_gains(
    buckets: list[Bucket], logprob_a: np.ndarray, logprob_b: np.ndarray
) -> list[BucketGain]:
    """How much model b out-predicts model a in each bucket (positions where either gives 0
    are left out of the mean: its difference is infinite)."""
    diff = np.asarray(logprob_b, dtype=np.float64) - np.asarray(logprob_a, dtype=np.float64)
    out = []
    for b in buckets:
        d = diff[b.mask]
        d = d[np.isfinite(d)]
        out.append(
            BucketGain(b, int(b.mask.sum()), float(d.mean()) if d.size else float("nan"),
                       float((d > 0).mean()) if d.size else float("nan"))
        )  # fmt: skip
    return out


def top_positions(logprob_a: np.ndarray, logprob_b: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` test positions where b most out-predicts a (largest ln p_b - ln p_a), the
    largest first; ties by position, so the choice is the same on every rewrite."""
    diff = np.asarray(logprob_b, dtype=np.float64) - np.asarray(logprob_a, dtype=np.float64)
    diff = np.where(np.isfinite(diff), diff, np.nan)
    order = np.lexsort((np.arange(diff.size), -np.nan_to_num(diff, nan=-np.inf)))
    order = order[np.isfinite(diff[order])]
    return order[:k]


def context(ids: np.ndarray, pos: int, width: int) -> tuple[list[int], int]:
    """The ``width`` token ids before ``pos`` within its sentence, and the id at ``pos``."""
    start = max(0, pos - width)
    before = [int(i) for i in ids[start:pos]]
    if EOS_ID in before:  # the previous sentence's end: start after it
        before = before[len(before) - before[::-1].index(EOS_ID) :]
    return before, int(ids[pos])
