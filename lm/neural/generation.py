"""Continue a prefix with a trained model: greedy, temperature or top-k sampling, reproducible
for a seed (the sampling generator is private, global RNGs are untouched)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lmpipe.lm.neural.models import LanguageModel
from lmpipe.lm.vocab import EOS


@torch.no_grad()
def generate(
    model: LanguageModel,
    prefix: Sequence[int],
    length: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    stop_at_eos: bool = False,
) -> list[int]:
    """``length`` new ids after ``prefix`` (the conditioning starts with ``</s>`` as ``<s>``, as
    in evaluation). ``greedy`` takes the most likely id; otherwise ids are drawn from
    softmax(logits / temperature), restricted to the ``top_k`` most likely when given.
    ``stop_at_eos`` ends the continuation after the first ``</s>``."""
    if length < 0:
        raise ValueError(f"length must be >= 0; got {length}")
    if not greedy and temperature <= 0:
        raise ValueError(f"temperature must be positive (or use greedy); got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1; got {top_k}")
    bad = [i for i in prefix if not 0 <= i < model.vocab_size]
    if bad:
        raise ValueError(f"prefix ids out of range [0, {model.vocab_size}): {bad[:5]}")
    device = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    ids = torch.tensor([[EOS, *prefix]], dtype=torch.int64, device=device)  # (1, 1 + len(prefix))
    logits, state = model(ids)
    out: list[int] = []
    while len(out) < length:
        last = logits[0, -1].float().cpu()  # (vocab,)
        if greedy:
            nxt = int(last.argmax())
        else:
            last = last / temperature
            if top_k is not None and top_k < last.numel():
                kth = torch.topk(last, top_k).values[-1]
                last = last.masked_fill(last < kth, float("-inf"))
            nxt = int(torch.multinomial(torch.softmax(last, dim=-1), 1, generator=gen))
        out.append(nxt)
        if stop_at_eos and nxt == EOS:
            break
        logits, state = model(torch.tensor([[nxt]], device=device), state)
    model.train(was_training)
    return out
