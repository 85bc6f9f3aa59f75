"""Linear interpolation of language models scored on the same token stream.

``p(w | h) = sum_j lambda_j p_j(w | h)``, with weights that maximise the likelihood of a held-out
stream, found by expectation-maximisation as SRILM's ``compute-best-mix`` does (Jelinek & Mercer
1980): given the current weights, the posterior of component ``j`` at position ``t`` is
``r_jt = lambda_j p_j(t) / sum_k lambda_k p_k(t)``, and the new weight is the mean of ``r_jt``
over ``t``. The held-out log-likelihood is concave in the weights and every EM step raises it,
so the iteration converges to the global optimum. Everything runs in log space: a component
may give a token probability 0 (``-inf``), and the mixture stays finite while any other
component gives it mass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MixFit:
    weights: np.ndarray  # (K,), sum 1
    iterations: int
    heldout_logprob: float  # total natural-log likelihood of the held-out stream


def _stack(logprobs: Sequence[np.ndarray]) -> np.ndarray:
    if len(logprobs) < 2:
        raise ValueError("a mixture needs at least two models")
    sizes = {np.size(lp) for lp in logprobs}
    if len(sizes) != 1:
        raise ValueError(
            f"models scored streams of different lengths ({sorted(sizes)} tokens): a mixture "
            "needs the same tokens, so the same corpus, tokenizer and vocabulary"
        )
    return np.vstack([np.asarray(lp, dtype=np.float64) for lp in logprobs])  # (K, N)


def mix_logprob(logprobs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Per-token natural-log probability of the mixture: log sum_j lambda_j p_j."""
    lp = _stack(logprobs)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (lp.shape[0],) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"mixture weights must be {lp.shape[0]} non-negative numbers summing to 1")
    with np.errstate(divide="ignore"):
        logw = np.log(w)[:, None]
    out: np.ndarray = np.logaddexp.reduce(logw + lp, axis=0)
    return out


def fit_weights(logprobs: Sequence[np.ndarray], tol: float = 1e-7, max_iter: int = 2000) -> MixFit:
    """EM weights on a held-out stream (one array of natural-log probabilities per model).

    Stops when no weight moves by more than ``tol``. Positions that every model gives
    probability 0 say nothing about the weights and are left out of the fit."""
    lp = _stack(logprobs)
    lp = lp[:, np.isfinite(lp).any(axis=0)]
    k, n = lp.shape
    w = np.full(k, 1.0 / k)
    if n == 0:
        return MixFit(w, 0, float("-inf"))
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported below
        with np.errstate(divide="ignore"):
            joint = np.log(w)[:, None] + lp  # (K, N): log lambda_j p_j(t)
        total = np.logaddexp.reduce(joint, axis=0)  # (N,)
        new = np.exp(joint - total).mean(axis=1)
        new /= new.sum()
        moved = float(np.abs(new - w).max())
        w = new
        if moved < tol:
            break
    with np.errstate(divide="ignore"):
        heldout = float(np.logaddexp.reduce(np.log(w)[:, None] + lp, axis=0).sum())
    return MixFit(w, iterations, heldout)
