"""Zipf statistics of a token stream: frequency against rank, and the top n-grams per order.

Counts are the padded n-grams of :mod:`lm.ngram.counting` (the lead renders them). Zipf's law
predicts frequency ~ rank^-s with s close to 1 for words; :func:`zipf_exponent` is the
least-squares slope on the log-log curve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lmpipe.lm.ngram.counting import count_full_ngrams


def rank_frequency(stream: np.ndarray, orders: Sequence[int] = (1, 2, 3)) -> pd.DataFrame:
    """Columns ``n``, ``rank`` (1 = most frequent), ``frequency``: every distinct n-gram of
    each order, most frequent first."""
    parts = []
    for n in orders:
        _, counts = count_full_ngrams(stream, n)
        freq = np.sort(counts)[::-1]
        parts.append(pd.DataFrame({"n": n, "rank": np.arange(1, freq.size + 1), "frequency": freq}))
    return pd.concat(parts, ignore_index=True)


def top_ngrams(
    stream: np.ndarray, n: int, k: int = 10, tokens: Sequence[str] | None = None
) -> pd.DataFrame:
    """The ``k`` most frequent order-n n-grams: ``rank``, ``ngram`` (ids, oldest first),
    ``text`` (space-joined strings when ``tokens`` are given) and ``count``. Ties are broken by
    the n-gram ids, so the table is deterministic."""
    grams, counts = count_full_ngrams(stream, n)
    order = np.lexsort((*grams.T[::-1], -counts))[:k]
    out = pd.DataFrame(
        {
            "rank": np.arange(1, order.size + 1),
            "ngram": [tuple(int(t) for t in g) for g in grams[order]],
            "count": counts[order],
        }
    )
    if tokens is not None:
        out.insert(2, "text", [" ".join(tokens[t] for t in g) for g in out["ngram"]])
    return out


def zipf_exponent(frequency: np.ndarray) -> float:
    """s of frequency ~ rank^-s, fitted by least squares on log frequency vs log rank."""
    freq = np.asarray(frequency, dtype=np.float64)
    if freq.size < 2:
        raise ValueError("need at least two ranks to fit a slope")
    rank = np.arange(1, freq.size + 1)
    slope = np.polyfit(np.log(rank), np.log(freq), 1)[0]
    return float(-slope)
