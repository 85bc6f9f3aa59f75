"""An exponential moving average of a model's weights, the weights that are validated and kept.

Averaging the iterates of a stochastic optimiser (Polyak & Juditsky 1992) lands nearer the
minimum than the last iterate, which keeps moving with the noise of its minibatches; Adam's
paper (Kingma & Ba 2015, section 7.2) uses the exponential form, AWD-LSTM (Merity et al. 2018)
the uniform one. After update t the average is

    avg <- avg + (1 - d_t) * (w - avg),   d_t = min(decay, (1 + t) / (10 + t))

where the ramp of d_t (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``) keeps the
first updates from being averaged with the random initialisation for a long time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


class WeightAverage:
    """The running average of ``params`` (a model's trainable tensors, in a fixed order)."""

    def __init__(self, params: list[torch.Tensor], decay: float) -> None:
        self.params = params
        self.decay = decay
        self.updates = 0
        self.average = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights in (after each optimiser step)."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - d)

    @contextmanager
    @torch.no_grad()
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own after it."""
        own = [p.detach().clone() for p in self.params]
        torch._foreach_copy_(self.params, self.average)
        try:
            yield
        finally:
            torch._foreach_copy_(self.params, own)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "average": [a.cpu() for a in self.average]}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = state["updates"]
        torch._foreach_copy_(self.average, [a.to(self.average[0].device) for a in state["average"]])
