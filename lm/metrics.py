"""Perplexity and friends, defined once for every model family (docs/design.md §3).

Every token of the evaluation stream, ``</s>`` included, is predicted exactly once; ``N`` is
their number. perplexity = exp(-(1/N) * sum ln p). Bits per byte divides the total in bits by
the UTF-8 bytes of the split's text, the only figure that compares char and word models.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

LN10 = math.log(10.0)
LN2 = math.log(2.0)


@dataclass(frozen=True)
class TokenScores:
    """Per-token scores of one evaluation stream.

    ``logprob``: natural log p(token | history), float64, ``-inf`` where the model gives 0.
    ``oov``: True where the token is ``<unk>`` (not in the training vocabulary).
    ``total_log10``/``oov_log10``: optional exact corpus totals in log10, for models that
    reproduce a reference tool's own accumulation (KenLM sums float32 per sentence, then double).
    """

    logprob: np.ndarray
    oov: np.ndarray
    total_log10: float | None = None
    oov_log10: float | None = None


@dataclass(frozen=True)
class EvalResult:
    tokens: int
    oov: int
    oov_rate: float
    zero_prob: int
    nats: float
    perplexity: float
    perplexity_excluding_oov: float
    bits_per_token: float
    bits_per_byte: float
    bytes: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _ppl(total_nats: float, n: int) -> float:
    if n == 0:
        return float("nan")
    if math.isinf(total_nats):
        return float("inf")
    try:
        return math.exp(-total_nats / n)
    except OverflowError:
        return float("inf")


def _ppl10(total_log10: float, n: int) -> float:
    """KenLM's own formula, 10 ** (-total/N): exp(-total*ln10/N) differs in the last digits."""
    if n == 0:
        return float("nan")
    try:
        return 10.0 ** (-total_log10 / n)
    except OverflowError:
        return float("inf")


def summarize(scores: TokenScores, n_bytes: int) -> EvalResult:
    """Aggregate per-token scores into the figures every report and table shows.

    A zero-probability token makes the perplexity ``inf`` (and is counted), never an error.
    """
    lp = np.asarray(scores.logprob, dtype=np.float64)
    oov = np.asarray(scores.oov, dtype=bool)
    if lp.shape != oov.shape:
        raise ValueError("logprob and oov must have the same length")
    n = int(lp.size)
    n_oov = int(oov.sum())
    zero = int(np.isneginf(lp).sum())
    if scores.total_log10 is not None:
        total = scores.total_log10 * LN10
        oov_total = (scores.oov_log10 or 0.0) * LN10
    else:
        total = float(lp.sum()) if n else 0.0
        oov_total = float(lp[oov].sum()) if n_oov else 0.0
    if zero:
        total = -math.inf
    excl = total - oov_total if not math.isinf(total) else float(lp[~oov].sum())
    bits = -total / LN2 if n else float("nan")
    ppl, ppl_excl = _ppl(total, n), _ppl(excl, n - n_oov)
    if scores.total_log10 is not None and not zero:
        ppl = _ppl10(scores.total_log10, n)
        ppl_excl = _ppl10(scores.total_log10 - (scores.oov_log10 or 0.0), n - n_oov)
    return EvalResult(
        tokens=n,
        oov=n_oov,
        oov_rate=n_oov / n if n else 0.0,
        zero_prob=zero,
        nats=-total,
        perplexity=ppl,
        perplexity_excluding_oov=ppl_excl,
        bits_per_token=bits / n if n else float("nan"),
        bits_per_byte=bits / n_bytes if n_bytes else float("nan"),
        bytes=n_bytes,
    )
