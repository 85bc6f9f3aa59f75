"""Evaluation reads the stream once in order: each token predicted once, window-independent,
equal to a hand-unrolled computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmpipe.lm.neural import RNNScratch, TorchRNNLM, evaluate, perplexity
from lmpipe.lm.vocab import BOS, EOS, PAD, UNK


def hand_unrolled(model: RNNScratch, stream: np.ndarray) -> np.ndarray:
    p = {k: v.detach().double().numpy() for k, v in model.named_parameters()}
    h = np.zeros(model.hidden)
    prev, out = EOS, []
    for tok in stream:
        h = np.tanh(p["W_xh"][prev] + h @ p["W_hh"] + p["b_h"])
        logits = h @ p["W_hq"] + p["b_q"]
        logits[[BOS, PAD]] = -np.inf
        out.append(logits[tok] - np.log(np.exp(logits - logits.max()).sum()) - logits.max())
        prev = tok
    return np.array(out)


def test_equals_hand_unrolled_and_predicts_each_token_once() -> None:
    torch.manual_seed(0)
    model = RNNScratch(9, 5)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.7)
    stream = np.array([4, 5, 2, 6, 0, 7, 8, 2, 4, 2, 5], dtype=np.int32)
    expected = hand_unrolled(model, stream)
    for window in (1, 3, 256):
        scores = evaluate(model, stream, window=window)
        assert scores.logprob.dtype == np.float64 and scores.logprob.shape == stream.shape
        np.testing.assert_allclose(scores.logprob, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(scores.oov, stream == UNK)
    assert perplexity(scores) == pytest.approx(np.exp(-expected.mean()), rel=1e-5)


def test_library_model_window_independent_and_mode_restored() -> None:
    torch.manual_seed(1)
    model = TorchRNNLM(10, "lstm", 6, 6, layers=2, dropout=0.3)
    stream = np.random.default_rng(0).integers(4, 10, 50).astype(np.int32)
    a = evaluate(model, stream, window=7).logprob
    b = evaluate(model, stream, window=50).logprob
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # dropout is off in evaluation
    assert model.training
