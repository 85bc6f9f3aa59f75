"""Exact evaluation of a recurrent language model on a token stream (docs/design.md §3).

The stream is read once, in order, by a single state carried across windows (batch 1): the
first input is ``</s>`` standing in for ``<s>``, and every token of the stream (``</s>``
included) is predicted exactly once from its full history. Windows only bound memory; the
result does not depend on their length (up to float rounding).
"""

from __future__ import annotations

import numpy as np
import torch

from lmpipe.lm.metrics import TokenScores
from lmpipe.lm.neural.models import LanguageModel
from lmpipe.lm.vocab import EOS, UNK


@torch.no_grad()
def evaluate(model: LanguageModel, stream: np.ndarray, window: int = 256) -> TokenScores:
    """Per-token ``ln p`` (float64) of ``stream`` under ``model``, on the model's device."""
    if window < 1:
        raise ValueError(f"window must be at least 1; got {window}")
    stream = np.asarray(stream)
    device = next(model.parameters()).device
    n = len(stream)
    inputs = torch.from_numpy(np.concatenate(([EOS], stream[:-1])).astype(np.int64)).to(device)
    targets = torch.from_numpy(stream.astype(np.int64)).to(device)
    logprob = torch.empty(n, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    state = None
    for start in range(0, n, window):
        x = inputs[start : start + window].unsqueeze(0)  # (1, steps)
        logits, state = model(x, state)  # (1, steps, vocab)
        lp = torch.log_softmax(logits[0].double(), dim=-1)  # (steps, vocab)
        logprob[start : start + window] = lp.gather(1, targets[start : start + window, None])[:, 0]
    model.train(was_training)
    return TokenScores(logprob=logprob.cpu().numpy(), oov=stream == UNK)


def perplexity(scores: TokenScores) -> float:
    """exp of the mean negative log-probability (``inf`` if any token has probability 0)."""
    lp = scores.logprob
    with np.errstate(over="ignore"):  # a ruined model's perplexity is inf, not a warning
        return float(np.exp(-lp.mean())) if lp.size else float("nan")
