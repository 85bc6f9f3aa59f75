"""The fused output-layer loss against autograd's ``cross_entropy(linear(...))``, the models'
two halves against their ``forward``, and the allocator setting a CPU training makes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from lmpipe.lm.neural import TrainConfig, build_model
from lmpipe.lm.neural.output_loss import LinearCrossEntropy
from lmpipe.lm.neural.training import _flat

ARCHS = ["rnn-scratch", "gru-scratch", "lstm-scratch", "rnn", "gru", "lstm", "transformer"]


def _head(rows: int = 13, dim: int = 5, vocab: int = 11, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(rows, dim, generator=g, requires_grad=True)
    w = torch.randn(vocab, dim, generator=g, requires_grad=True)
    b = torch.randn(vocab, generator=g, requires_grad=True)
    mask = torch.zeros(vocab)
    mask[[0, 3]] = float("-inf")  # never-predicted ids, as the models' masked bias has them
    y = torch.randint(4, vocab, (rows,), generator=g)
    return h, w, b, mask, y


def test_loss_and_gradients_equal_autograd() -> None:
    h, w, b, mask, y = _head()
    want = F.cross_entropy(F.linear(h, w, b + mask), y)
    want_grads = torch.autograd.grad(want, (h, w, b))
    got = LinearCrossEntropy()(h, w, b + mask, y)
    got_grads = torch.autograd.grad(got, (h, w, b))
    torch.testing.assert_close(got, want)
    for g, e in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, e)
    assert got_grads[2][[0, 3]].eq(0).all()  # masked logits take no gradient


def test_scaled_upstream_gradient_and_transposed_weight() -> None:
    """A loss multiplied before backward, and a weight given as a transposed view (the
    from-scratch models' W_hq.t())."""
    h, w, b, mask, y = _head(seed=1)
    w_hq = w.detach().t().contiguous().requires_grad_()  # (dim, vocab)
    want = 3.0 * F.cross_entropy(F.linear(h, w_hq.t(), b), y)
    got = 3.0 * LinearCrossEntropy()(h, w_hq.t(), b, y)
    torch.testing.assert_close(got, want)
    for g, e in zip(
        torch.autograd.grad(got, (h, w_hq, b)), torch.autograd.grad(want, (h, w_hq, b)), strict=True
    ):
        torch.testing.assert_close(g, e)


def test_bf16_products_stay_close_to_fp32() -> None:
    """bf16 operands (8-bit mantissas) with float32 accumulation and softmax: the loss and the
    gradients within bf16's rounding of fp32's, and not equal to them."""
    h, w, b, mask, y = _head(rows=64, dim=32, vocab=50)
    want = F.cross_entropy(F.linear(h, w, b + mask), y)
    want_grads = torch.autograd.grad(want, (h, w, b))
    got = LinearCrossEntropy(bf16=True)(h, w, b + mask, y)
    got_grads = torch.autograd.grad(got, (h, w, b))
    assert got.dtype == torch.float32 and got != want
    torch.testing.assert_close(got, want, rtol=1e-2, atol=0)
    for g, e in zip(got_grads, want_grads, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, e, rtol=0, atol=3e-2 * e.abs().max().item())


def test_reused_buffer_refuses_a_stale_backward() -> None:
    """The workspace is shared between calls: a graph whose buffer was overwritten by a later
    call must fail its backward, not compute with the later call's values."""
    h, w, b, _, y = _head()
    loss_fn = LinearCrossEntropy()
    first = loss_fn(h, w, b, y)
    second = loss_fn(h * 2, w, b, y)
    second.backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.backward()


def test_other_dtypes_take_the_unfused_path() -> None:
    h, w, b, mask, y = (t.double() if t.is_floating_point() else t for t in _head())
    got = LinearCrossEntropy()(h, w, b + mask, y)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, F.cross_entropy(F.linear(h, w, b + mask), y))


@pytest.mark.parametrize("arch", ARCHS)
def test_features_and_output_layer_make_forward(arch: str) -> None:
    """What training computes (features, output layer, fused loss over the rows as ``_flat``
    orders them) equals the loss of the model's own logits, and so do the gradients."""
    given = {"embed": 6, "hidden": 6, "heads": 2, "context": 8, "dropout": 0.0, "tied": False}
    if "scratch" in arch:
        given = {"hidden": 6, "dropout": 0.0}
    elif arch == "transformer":
        given |= {"tied": True, "layers": 2}
    else:
        given |= {"layers": 2}
    cfg = TrainConfig.for_arch(arch, given)
    torch.manual_seed(0)
    model = build_model(cfg, 10)
    ids, y = torch.randint(2, 10, (3, 5)), torch.randint(2, 10, (3, 5))
    logits, state = model(ids)
    want = F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1))
    want_grads = torch.autograd.grad(want, list(model.parameters()))
    h, state2 = model.features(ids)
    rows, targets = _flat(h, y)
    got = LinearCrossEntropy()(rows, *model.output_layer(), targets)
    got_grads = torch.autograd.grad(got, list(model.parameters()))
    torch.testing.assert_close(got, want)
    for g, e in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, e)
    for a, b in zip(state, state2, strict=True):
        torch.testing.assert_close(a, b)


def _heap_after_free(tune: bool) -> tuple[int, int]:
    """In a fresh process (the setting is process-wide): the bytes glibc had mmapped while a
    20 MB tensor lived, and the free bytes its heap keeps once the tensor is gone
    (``mallinfo2``'s hblkhd and fordblks)."""
    code = textwrap.dedent(
        f"""
        import ctypes, torch
        from lmpipe.lm.neural.device import resolve_device
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena ordblks smblks hblks hblkhd "
                        "usmblks fsmblks uordblks fordblks keepcost").split()]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
        if {tune}:
            resolve_device("cpu", 1)
        before = libc.mallinfo2().hblkhd
        x = torch.ones(5 << 20)
        mapped = libc.mallinfo2().hblkhd - before
        del x
        print(mapped, libc.mallinfo2().fordblks)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mapped, kept = map(int, out.stdout.split())
    return mapped, kept


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_cpu_training_keeps_freed_memory() -> None:
    """A CPU training serves a 20 MB tensor from the heap and keeps the memory once it is
    freed, for the next update's tensors; glibc's defaults map it afresh and unmap it."""
    mapped, kept = _heap_after_free(True)
    assert mapped == 0 and kept >= 20 << 20, (mapped, kept)
    mapped, kept = _heap_after_free(False)
    assert mapped >= 20 << 20 and kept < 20 << 20, (mapped, kept)
