"""The training loss of the output layer in one step: ``cross_entropy(h W^T + b, y)``, mean over
rows, computed by one autograd function that never keeps the logits' own gradient.

Unfused, autograd materialises four (rows, vocab) tensors per update: the logits, their
log-softmax, a zero-filled gradient for the NLL's scatter, and the log-softmax's backward
result. Here the logits' buffer is turned into log-probabilities in place (the loss gathers its
targets from it), then into ``softmax - onehot`` in place, which is the gradient of the summed
loss with respect to the logits; backward is then only the two products of the linear layer
and a column sum. On PTB's 10k-word output layer (700 rows a minibatch) the layer's forward and
backward, timed alone on 2 cores, went from 51 to 39 ms, with the same maths: gradients agree
with autograd's to float rounding (tests/neural/test_output_loss.py). docs/neural-defaults.md
("Training speed on a CPU") has the whole update's figures.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        y: torch.Tensor,
        buf: torch.Tensor,
        bf16: bool,
    ) -> torch.Tensor:
        # h (rows, dim), weight (vocab, dim), bias (vocab,), y (rows,) -> mean NLL ();
        # buf (rows, vocab) float32: the workspace, overwritten; bf16: the three matrix
        # products take bfloat16 operands (float32 accumulation), the softmax stays float32
        rows = h.shape[0]
        if bf16:
            h, weight = h.bfloat16(), weight.bfloat16()
            buf.copy_(h @ weight.t()).add_(bias)  # logits
        else:
            torch.addmm(bias, h, weight.t(), out=buf)  # logits
        # in place: each row's max and log-sum-exp are read before the row is written
        torch._log_softmax(buf, 1, False, out=buf)
        loss = buf.gather(1, y[:, None]).sum().neg_().div_(rows)
        # d(sum of NLL)/d(logits) = softmax - onehot(y)
        buf.exp_()
        buf[torch.arange(rows, device=buf.device), y] -= 1.0
        ctx.save_for_backward(h, weight, buf)
        return loss

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None, None, None]:
        h, weight, p = ctx.saved_tensors
        scale = grad / p.shape[0]  # the mean's 1/rows times the incoming gradient
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        db = p.sum(0).mul_(scale) if need_b else None  # (vocab,)
        if h.dtype == torch.bfloat16:
            pb = p.bfloat16()
            dh = (pb @ weight).float().mul_(scale) if need_h else None
            dw = (pb.t() @ h).float().mul_(scale) if need_w else None
            return dh, dw, db, None, None, None
        dh = (p @ weight).mul_(scale) if need_h else None  # (rows, dim)
        # the scale goes on the small factor: (rows, dim) instead of (vocab, dim)
        dw = p.t() @ (h * scale) if need_w else None  # (vocab, dim)
        return dh, dw, db, None, None, None


class LinearCrossEntropy:
    """``loss(h, weight, bias, y)``: the mean cross-entropy of the logits ``h @ weight.T + bias``
    (h (rows, dim), weight (vocab, dim), bias (vocab,), -inf entries allowed) against targets
    ``y`` (rows,), for one training's updates.

    Fused on CPU in float32, in a (rows, vocab) buffer kept from one update to the next: fresh
    memory of that size costs its page faults at every update (28 MB a PTB minibatch, 11 ms on
    this project's 2-core machines, as much as one of the layer's matrix products). Reusing it
    is safe: writing it bumps its version, so a graph still holding it refuses its backward
    instead of using overwritten values. ``bf16``: the layer's three matrix products in
    bfloat16 (``--amp`` on a CPU with native bf16: 2.5-3x faster each with AMX; one PTB epoch
    ends within 0.3 % of float32's validation perplexity, seeds differ by 1.7-2.9 %,
    benchmarks/neural_bench.py --parts amp). Elsewhere, and under reduced precision,
    ``F.cross_entropy`` of ``F.linear``: the in-place log-softmax is relied on only for the CPU
    kernel.
    """

    def __init__(self, bf16: bool = False) -> None:
        self._buf: torch.Tensor | None = None
        self.bf16 = bf16

    def __call__(
        self, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        if not (h.device.type == "cpu" and h.dtype == weight.dtype == bias.dtype == torch.float32):
            logits = F.linear(h, weight, bias)  # at least float32 for the softmax
            return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y)
        shape = (h.shape[0], weight.shape[0])
        if self._buf is None or self._buf.shape != shape:
            self._buf = torch.empty(shape, dtype=h.dtype)
        out: torch.Tensor = _LinearCrossEntropy.apply(h, weight, bias, y, self._buf, self.bf16)
        return out
