"""Where a training runs: ``auto`` picks CUDA when available, else the CPU with one torch thread
per core this process may use (or the share of the cores it is given), and glibc's allocator
told to keep the memory it is given back (:func:`lmpipe.lm.process_memory.keep_freed_memory`)."""

from __future__ import annotations

import os

import torch

from lmpipe.lm.errors import ConfigError
from lmpipe.lm.process_memory import keep_freed_memory


def resolve_device(name: str = "auto", threads: int | None = None) -> torch.device:
    """The device ``name`` names; on the CPU torch then uses ``threads`` threads (default: one
    per core this process may use; a Dask worker gets its share of the cores)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda, but torch sees no CUDA device on this machine; use --device cpu or auto"
        )
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {name!r}")
    device = torch.device(name)
    if device.type == "cpu":
        torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
        keep_freed_memory()
    return device


def bf16_autocast_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively on ``device``: CUDA with bf16, or a CPU whose oneDNN
    has bf16 kernels (AVX512-BF16 or AMX; elsewhere bf16 is emulated, slower than fp32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
