"""Exact evaluation of a language model on a token stream (docs/design.md §3).

The first input is ``</s>`` standing in for ``<s>``, and every token of the stream (``</s>``
included) is predicted exactly once. A recurrent model reads the stream once, in order, with a
single state carried across windows (batch 1): each token is predicted from its full history;
windows only bound memory, the result does not depend on their length (up to float rounding).

A model with a bounded ``context`` (the transformer) sees at most that many inputs: the stream
is scored with sliding windows of ``context`` inputs, each scoring its last ``stride`` positions
(the first window all of its own), so every token is predicted from at least
``context - stride + 1`` inputs, or all of its history when that is shorter. ``stride = 1``
gives every token its full context; a larger stride is faster.
"""

from __future__ import annotations

import numpy as np
import torch

from lmpipe.lm.metrics import TokenScores
from lmpipe.lm.neural.models import LanguageModel
from lmpipe.lm.vocab import EOS, UNK

WINDOWS_PER_BATCH = 16  # sliding windows scored in one forward pass


@torch.no_grad()
def evaluate(
    model: LanguageModel, stream: np.ndarray, window: int = 256, stride: int | None = None
) -> TokenScores:
    """Per-token ``ln p`` (float64) of ``stream`` under ``model``, on the model's device.
    ``window``: tokens per forward pass of a recurrent model; ``stride``: positions scored per
    sliding window of a bounded-context model (default half its context)."""
    if window < 1:
        raise ValueError(f"window must be at least 1; got {window}")
    context = getattr(model, "context", None)
    if context is not None:
        return _evaluate_sliding(model, np.asarray(stream), int(context), stride or context // 2)
    stream = np.asarray(stream)
    inputs, targets, logprob = _shifted(model, stream)
    was_training = model.training
    model.eval()
    state = None
    for start in range(0, len(stream), window):
        x = inputs[start : start + window].unsqueeze(0)  # (1, steps)
        logits, state = model(x, state)  # (1, steps, vocab)
        logprob[start : start + window] = _picked(logits[0], targets[start : start + window])
    model.train(was_training)
    return TokenScores(logprob=logprob.cpu().numpy(), oov=stream == UNK)


def _shifted(
    model: LanguageModel, stream: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """On the model's device: the inputs (``</s>`` then the stream but its last token), the
    targets (the stream) and an empty float64 vector for their log-probabilities, each (N,)."""
    device = next(model.parameters()).device
    inputs = torch.from_numpy(np.concatenate(([EOS], stream[:-1])).astype(np.int64)).to(device)
    targets = torch.from_numpy(stream.astype(np.int64)).to(device)
    return inputs, targets, torch.empty(len(stream), dtype=torch.float64, device=device)


def _picked(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """ln p of each target: logits (steps, vocab), targets (steps,) -> (steps,) float64."""
    return torch.log_softmax(logits.double(), dim=-1).gather(1, targets[:, None])[:, 0]


def _evaluate_sliding(
    model: LanguageModel, stream: np.ndarray, context: int, stride: int
) -> TokenScores:
    if not 1 <= stride <= context:
        raise ValueError(f"stride must be in [1, context={context}]; got {stride}")
    n = len(stream)
    inputs, targets, logprob = _shifted(model, stream)
    was_training = model.training
    model.eval()
    first = min(context, n)  # the first window scores every position it holds
    if first:
        logits, _ = model(inputs[None, :first])  # (1, first, vocab)
        logprob[:first] = _picked(logits[0], targets[:first])
    # then spans [b, e) of ``stride`` positions, each read by the window inputs[e - context, e)
    ends = list(range(first + stride, n + stride, stride))
    for i in range(0, len(ends), WINDOWS_PER_BATCH):
        group = [min(e, n) for e in ends[i : i + WINDOWS_PER_BATCH]]
        x = torch.stack([inputs[e - context : e] for e in group])  # (windows, context)
        logits, _ = model(x)  # (windows, context, vocab)
        for row, e in enumerate(group):
            b = ends[i + row] - stride  # the span's start (its end e clipped to the stream)
            logprob[b:e] = _picked(logits[row, b - e :], targets[b:e])  # last e - b positions
    model.train(was_training)
    return TokenScores(logprob=logprob.cpu().numpy(), oov=stream == UNK)


def perplexity(scores: TokenScores) -> float:
    """exp of the mean negative log-probability (``inf`` if any token has probability 0)."""
    lp = scores.logprob
    with np.errstate(over="ignore"):  # a ruined model's perplexity is inf, not a warning
        return float(np.exp(-lp.mean())) if lp.size else float("nan")
