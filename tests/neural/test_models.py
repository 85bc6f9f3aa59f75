"""Scratch models: gradients (gradcheck), the maths of d2l's one-hot transcription, and nn.RNN
equivalence; library models: shapes, masking, tying, dropout, parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from lmpipe.lm.neural import TrainConfig, build_model, count_parameters
from lmpipe.lm.neural.models_scratch import GRUScratch, LSTMScratch, RNNScratch
from lmpipe.lm.neural.models_torch import TorchRNNLM
from lmpipe.lm.vocab import BOS, FIRST_WORD_ID, PAD

V, H, B, T = 7, 3, 2, 4


def d2l_rnn(X, state, p):
    (h,) = state
    outputs = []
    for x in X:  # x: (batch, vocab) one-hot
        h = torch.tanh(x @ p["W_xh"] + h @ p["W_hh"] + p["b_h"])
        outputs.append(h @ p["W_hq"] + p["b_q"])
    return torch.stack(outputs, 1), (h,)


def d2l_gru(X, state, p):
    (h,) = state
    outputs = []
    for x in X:
        z = torch.sigmoid(x @ p["W_xz"] + h @ p["W_hz"] + p["b_z"])
        r = torch.sigmoid(x @ p["W_xr"] + h @ p["W_hr"] + p["b_r"])
        h_tilde = torch.tanh(x @ p["W_xh"] + (r * h) @ p["W_hh"] + p["b_h"])
        h = z * h + (1 - z) * h_tilde
        outputs.append(h @ p["W_hq"] + p["b_q"])
    return torch.stack(outputs, 1), (h,)


def d2l_lstm(X, state, p):
    h, c = state
    outputs = []
    for x in X:
        i = torch.sigmoid(x @ p["W_xi"] + h @ p["W_hi"] + p["b_i"])
        f = torch.sigmoid(x @ p["W_xf"] + h @ p["W_hf"] + p["b_f"])
        o = torch.sigmoid(x @ p["W_xo"] + h @ p["W_ho"] + p["b_o"])
        c_tilde = torch.tanh(x @ p["W_xc"] + h @ p["W_hc"] + p["b_c"])
        c = f * c + i * c_tilde
        h = o * torch.tanh(c)
        outputs.append(h @ p["W_hq"] + p["b_q"])
    return torch.stack(outputs, 1), (h, c)


SCRATCH = [(RNNScratch, d2l_rnn), (GRUScratch, d2l_gru), (LSTMScratch, d2l_lstm)]


def scratch_model(cls, seed: int = 0):
    torch.manual_seed(seed)
    model = cls(V, H).double()
    with torch.no_grad():  # d2l's N(0, 0.01) makes every gradient tiny: use larger weights
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize(("cls", "reference"), SCRATCH)
def test_scratch_matches_d2l_transcription(cls, reference) -> None:
    model = scratch_model(cls)
    ids = torch.randint(0, V, (B, T))
    state = tuple(torch.randn(B, H, dtype=torch.float64) for _ in range(cls.n_states))
    logits, new = model(ids, state)
    params = dict(model.named_parameters())
    ref, ref_state = reference(F.one_hot(ids.T, V).double(), state, params)
    torch.testing.assert_close(logits, ref + model.logit_mask)
    for a, b in zip(new, ref_state, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("cls", "reference"), SCRATCH)
def test_scratch_gradcheck(cls, reference) -> None:
    model = scratch_model(cls)
    names = [n for n, _ in model.named_parameters()]
    ids = torch.randint(0, V, (B, T))
    state0 = tuple(
        torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in range(cls.n_states)
    )

    def f(*tensors):
        params = dict(zip(names, tensors[: len(names)], strict=True))
        logits, state = functional_call(model, params, (ids, tuple(tensors[len(names) :])))
        return logits[..., FIRST_WORD_ID:], *state  # masked ids are -inf: no finite difference

    inputs = tuple(p.detach().clone().requires_grad_() for p in model.parameters()) + state0
    assert torch.autograd.gradcheck(f, inputs)


def test_scratch_rnn_equals_nn_rnn() -> None:
    torch.manual_seed(0)
    model = RNNScratch(V, H)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    ref = torch.nn.RNN(V, H, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(model.W_xh.T)
        ref.weight_hh_l0.copy_(model.W_hh.T)
        ref.bias_ih_l0.copy_(model.b_h)
        ref.bias_hh_l0.zero_()
    ids = torch.randint(0, V, (B, T))
    h0 = torch.randn(B, H)
    out, h_n = ref(F.one_hot(ids, V).float(), h0.unsqueeze(0))
    logits, (h,) = model(ids, (h0,))
    torch.testing.assert_close(logits, out @ model.W_hq + model.b_q + model.logit_mask)
    torch.testing.assert_close(h, h_n[0])


@pytest.mark.parametrize(
    "arch", ["rnn-scratch", "gru-scratch", "lstm-scratch", "rnn", "rnn-relu", "gru", "lstm"]
)
def test_every_arch_masks_never_predicted_ids(arch: str) -> None:
    model = build_model(
        TrainConfig(arch=arch, embed=4, hidden=5, layers=1 if "scratch" in arch else 2, tied=False),
        9,
    )
    logits, state = model(torch.randint(0, 9, (3, 6)))
    assert logits.shape == (3, 6, 9)
    probs = logits.softmax(-1)
    assert (probs[..., [BOS, PAD]] == 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 6))
    logits2, _ = model(torch.randint(0, 9, (3, 2)), state)  # a state carries over
    assert logits2.shape == (3, 2, 9)


def test_parameter_counts() -> None:
    v, e, h = 50, 8, 16
    assert count_parameters(RNNScratch(v, h)) == v * h + h * h + h + h * v + v
    assert count_parameters(GRUScratch(v, h)) == 3 * (v * h + h * h + h) + h * v + v
    assert count_parameters(LSTMScratch(v, h)) == 4 * (v * h + h * h + h) + h * v + v
    lstm = TorchRNNLM(v, "lstm", e, h, layers=2)
    rnn_params = 4 * (e * h + h * h + 2 * h) + 4 * (h * h + h * h + 2 * h)
    assert count_parameters(lstm) == v * e + rnn_params + h * v + v
    tied = TorchRNNLM(v, "gru", h, h, tied=True)
    assert tied.decoder.weight is tied.embedding.weight
    assert count_parameters(tied) == v * h + 3 * (2 * h * h + 2 * h) + v


def test_dropout_acts_with_one_layer() -> None:
    torch.manual_seed(0)
    model = TorchRNNLM(20, "gru", 8, 8, layers=1, dropout=0.5)
    ids = torch.randint(0, 20, (2, 5))
    a, _ = model(ids)
    b, _ = model(ids)
    assert not torch.equal(a, b)
    model.eval()
    torch.testing.assert_close(model(ids)[0], model(ids)[0])


def test_relu_rnn_uses_relu() -> None:
    assert all(layer.nonlinearity == "relu" for layer in TorchRNNLM(10, "rnn-relu", 4, 4, 2).rnn)
    assert TorchRNNLM(10, "rnn", 4, 4).rnn[0].nonlinearity == "tanh"
