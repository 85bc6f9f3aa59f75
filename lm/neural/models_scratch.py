"""d2l's from-scratch RNN, GRU and LSTM (d2l 2nd ed. sections 8.5, 9.1, 9.2), same parameter
names and initialisation (weights N(0, 0.01^2), biases 0), one layer.

Made fast without changing the maths: d2l's one-hot product ``one_hot(X) @ W_x*`` is the row
lookup ``W_x*[X]`` (``rows``), done for the whole window at once together with the input
bias; only the recurrence ``H @ W_h*`` runs step by step (the gates' recurrent weights
concatenated into one matmul), and the output layer is one matmul over all steps. The RNN's
recurrence also has a hand-written backward pass (``_TanhRecurrence``).
"""

from __future__ import annotations

import torch
from torch import nn

from lmpipe.lm.neural.models import LanguageModel, State, rows

SIGMA = 0.01


def _weight(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * SIGMA)


def _bias(n: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(n))


class _ScratchBase(LanguageModel):
    """Shared output layer (``W_hq``, ``b_q``), output dropout and zero state."""

    n_states = 1

    def __init__(self, vocab_size: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(vocab_size)
        self.hidden = hidden
        self.W_hq = _weight(hidden, vocab_size)
        self.b_q = _bias(vocab_size)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def begin_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        z = torch.zeros(batch_size, self.hidden, device=device, dtype=self.W_hq.dtype)
        return tuple(z.clone() for _ in range(self.n_states))

    def recur(self, ids: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """The recurrence over ids (batch, steps) -> hidden states (steps, batch, hidden), as
        it makes them, and the new state."""
        raise NotImplementedError

    def features(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """(batch, steps, hidden) as a view of the step-major states: no copy into batch-major
        order (the training loss reads the step-major tensor directly, see
        ``lmpipe.lm.neural.training``)."""
        hs, state = self.recur(ids, state)
        return self.drop(hs).transpose(0, 1), state

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.W_hq.t(), self.masked_bias(self.b_q)

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Masked logits as a (batch, steps, vocab) view of a step-major tensor: one addmm."""
        h, state = self.features(ids, state)
        hs = h.transpose(0, 1)  # (steps, batch, hidden), contiguous
        logits = torch.addmm(self.masked_bias(self.b_q), hs.flatten(0, 1), self.W_hq)
        return logits.view(*hs.shape[:2], -1).transpose(0, 1), state


class _TanhRecurrence(torch.autograd.Function):
    """H_t = tanh(X_t + b + H_{t-1} W) for all t, with hand-written backpropagation through time.

    Same maths as autograd through the step loop, but each step is two kernels forward and three
    backward, and dW is one matmul over all steps instead of one per step.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(
        ctx, x: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        # x: (steps, batch, hidden) input projections; b: (hidden,); h0: (batch, hidden);
        # w: (hidden, hidden)
        hs = x + b  # (steps, batch, hidden); step t adds H_{t-1} W in place, then tanh
        h = h0
        for t in range(x.shape[0]):
            h = hs[t].addmm_(h, w).tanh_()
        ctx.save_for_backward(h0, w, hs)
        return hs

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(
        ctx, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        h0, w, hs = ctx.saved_tensors
        # 1 - H^2 in one pass: (steps, batch, hidden)
        dtanh = torch.addcmul(hs.new_ones(()), hs, hs, value=-1)
        da = dtanh * grad  # dL/dA_t, so far only through the outputs H_t themselves
        w_t = w.t()
        dh = da[-1] @ w_t  # dL/dH_{t-1} through the recurrence; one buffer for all steps
        for t in range(hs.shape[0] - 2, -1, -1):
            da[t].addcmul_(dh, dtanh[t])
            torch.mm(da[t], w_t, out=dh)
        # dW = sum_t H_{t-1}^T dA_t: one matmul over steps 1.. and one for step 0 (no concat)
        dw = torch.addmm(h0.t() @ da[0], hs[:-1].flatten(0, 1).t(), da[1:].flatten(0, 1))
        return da, da.sum((0, 1)), dh, dw


class RNNScratch(_ScratchBase):
    """H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h);  O_t = H_t W_hq + b_q."""

    def __init__(self, vocab_size: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(vocab_size, hidden, dropout)
        self.W_xh = _weight(vocab_size, hidden)
        self.W_hh = _weight(hidden, hidden)
        self.b_h = _bias(hidden)

    def recur(self, ids: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        (h,) = state if state is not None else self.begin_state(ids.shape[0], ids.device)
        # (steps, batch, hidden) = one_hot(X) W_xh, the bias added inside
        hs = _TanhRecurrence.apply(rows(self.W_xh, ids.t()), self.b_h, h, self.W_hh)
        return hs, (hs[-1],)


class GRUScratch(_ScratchBase):
    """Z = sig(X W_xz + H W_hz + b_z), R = sig(X W_xr + H W_hr + b_r),
    H~ = tanh(X W_xh + (R * H) W_hh + b_h), H = Z * H + (1 - Z) * H~."""

    def __init__(self, vocab_size: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(vocab_size, hidden, dropout)
        for g in ("z", "r", "h"):
            setattr(self, f"W_x{g}", _weight(vocab_size, hidden))
            setattr(self, f"W_h{g}", _weight(hidden, hidden))
            setattr(self, f"b_{g}", _bias(hidden))

    def recur(self, ids: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        (h,) = state if state is not None else self.begin_state(ids.shape[0], ids.device)
        n = self.hidden
        w_x = torch.cat((self.W_xz, self.W_xr, self.W_xh), dim=1)  # (vocab, 3 hidden)
        b = torch.cat((self.b_z, self.b_r, self.b_h))  # (3 hidden,)
        xw = (rows(w_x, ids.t()) + b).unbind(0)  # steps x (batch, 3 hidden)
        w_zr = torch.cat((self.W_hz, self.W_hr), dim=1)  # (hidden, 2 hidden)
        hs = []
        for x_t in xw:
            zr = torch.sigmoid(torch.addmm(x_t[:, : 2 * n], h, w_zr))  # (batch, 2 hidden)
            z, r = zr[:, :n], zr[:, n:]
            h_tilde = torch.tanh(torch.addmm(x_t[:, 2 * n :], r * h, self.W_hh))
            h = h_tilde + z * (h - h_tilde)  # = Z * H + (1 - Z) * H~
            hs.append(h)
        return torch.stack(hs), (h,)


class LSTMScratch(_ScratchBase):
    """I, F, O = sig(X W_x* + H W_h* + b_*), C~ = tanh(X W_xc + H W_hc + b_c),
    C = F * C + I * C~, H = O * tanh(C)."""

    n_states = 2

    def __init__(self, vocab_size: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(vocab_size, hidden, dropout)
        for g in ("i", "f", "o", "c"):
            setattr(self, f"W_x{g}", _weight(vocab_size, hidden))
            setattr(self, f"W_h{g}", _weight(hidden, hidden))
            setattr(self, f"b_{g}", _bias(hidden))

    def recur(self, ids: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        h, c = state if state is not None else self.begin_state(ids.shape[0], ids.device)
        n = self.hidden
        w_x = torch.cat((self.W_xi, self.W_xf, self.W_xo, self.W_xc), dim=1)  # (vocab, 4 hidden)
        b = torch.cat((self.b_i, self.b_f, self.b_o, self.b_c))  # (4 hidden,)
        w_h = torch.cat((self.W_hi, self.W_hf, self.W_ho, self.W_hc), dim=1)  # (hidden, 4 hidden)
        xw = (rows(w_x, ids.t()) + b).unbind(0)  # steps x (batch, 4 hidden)
        hs = []
        for x_t in xw:
            gates = torch.addmm(x_t, h, w_h)  # (batch, 4 hidden)
            ifo = torch.sigmoid(gates[:, : 3 * n])
            c = ifo[:, n : 2 * n] * c + ifo[:, :n] * torch.tanh(gates[:, 3 * n :])
            h = ifo[:, 2 * n :] * torch.tanh(c)
            hs.append(h)
        return torch.stack(hs), (h, c)
