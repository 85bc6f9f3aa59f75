"""What every recurrent language model here shares: the forward contract, the state, the mask of
the ids that are never predicted, and the factory from a ``TrainConfig``.

Contract: ``model(ids, state) -> (logits, state)`` with ``ids`` int64 (batch, steps), ``logits``
(batch, steps, vocab) already masked (``<s>`` and ``<pad>`` at ``-inf``, so softmax normalises
over the predictable vocabulary), ``state`` a tuple of tensors (``None`` = fresh zero state).
The same in two halves: ``features(ids, state) -> (h, state)``, the output layer's inputs
(batch, steps, dim), and ``output_layer() -> (weight (vocab, dim), masked bias (vocab,))``;
training computes its loss from them without keeping the logits (``lmpipe.lm.neural.output_loss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.lm.vocab import BOS, PAD

State = tuple[torch.Tensor, ...]
NEVER_PREDICTED: tuple[int, ...] = (BOS, PAD)


class LanguageModel(nn.Module):
    """Base class: subclasses implement ``features``, ``output_layer`` and ``begin_state``
    (and may override ``forward`` with a faster equivalent)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        if vocab_size <= max(NEVER_PREDICTED):
            raise ValueError(f"vocab_size must exceed the reserved ids; got {vocab_size}")
        self.vocab_size = vocab_size
        mask = torch.zeros(vocab_size)
        mask[list(NEVER_PREDICTED)] = float("-inf")
        # (vocab,) added to every logit row; not part of the state dict (it is a constant).
        self.register_buffer("logit_mask", mask, persistent=False)

    def begin_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        raise NotImplementedError

    def features(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """The output layer's inputs (batch, steps, dim), dropout applied, and the new state."""
        raise NotImplementedError

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The output layer: weight (vocab, dim) and bias (vocab,) with the mask folded in."""
        raise NotImplementedError

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        h, state = self.features(ids, state)
        weight, bias = self.output_layer()
        return F.linear(h, weight, bias), state  # (batch, steps, vocab)

    def masked_bias(self, bias: torch.Tensor) -> torch.Tensor:
        """The output bias (vocab,) with the mask folded in: one add over the vocabulary instead
        of one over every logit (the -inf entries get zero gradient, softmax gives them 0)."""
        mask = self.get_buffer("logit_mask")  # (vocab,)
        return bias + mask.to(bias.dtype)


def rows(weight: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``weight[ids]``: (vocab, dim) rows for ids of any shape -> (*ids.shape, dim); the one-hot
    product ``one_hot(ids) @ weight`` as a lookup.

    On CPU through ``index_select``, whose backward is one ``index_add_`` (measured 4x faster
    than ``F.embedding``'s dense backward for 32k ids); elsewhere ``F.embedding``.
    """
    if ids.device.type != "cpu":
        return F.embedding(ids, weight)
    return weight.index_select(0, ids.reshape(-1)).view(*ids.shape, weight.shape[1])


def detach_state(state: State | None) -> State | None:
    """Cut the graph between windows (truncated BPTT) and keep the values."""
    return None if state is None else tuple(s.detach() for s in state)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
