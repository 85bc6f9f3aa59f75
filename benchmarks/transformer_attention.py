"""Causal self-attention: ``F.scaled_dot_product_attention`` (what the Transformer uses) against
the plain formula softmax(QK^T / sqrt(d) + causal mask) V, forward and backward, on this
machine (CPU; CUDA too when there is one, with bf16 autocast). Prints the time of each and the
ratio plain / sdpa (above 1: sdpa is faster).

    python benchmarks/transformer_attention.py [--batch 16] [--context 128] [--dim 128] [--heads 4]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F


def plain(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    t = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (batch, heads, t, t)
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1) @ v


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def timed(fn, q, k, v, repeats: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(3):  # warm-up
        fn(q, k, v).sum().backward()
    if q.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(q, k, v).sum().backward()
    if q.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        shape = (args.batch, args.heads, args.context, args.dim // args.heads)
        q, k, v = (torch.randn(shape, device=device, requires_grad=True) for _ in range(3))
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            a = plain(q, k, v)
            b = sdpa(q, k, v)
            assert torch.allclose(a.float(), b.float(), atol=2e-2), "the two formulas differ"
            t_plain = timed(plain, q, k, v, args.repeats)
            t_sdpa = timed(sdpa, q, k, v, args.repeats)
        print(
            f"{device}: plain {1e3 * t_plain:.2f} ms, sdpa {1e3 * t_sdpa:.2f} ms per forward and "
            f"backward of {shape}; plain / sdpa = {t_plain / t_sdpa:.2f}"
        )


if __name__ == "__main__":
    main()
