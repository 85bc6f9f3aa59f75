"""Where a training runs: ``auto`` picks CUDA when available, else the CPU with one torch thread
per core this process may use (or the share of the cores it is given), and glibc's allocator
told to keep the memory it is given back (``keep_freed_memory``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

from lmpipe.lm.errors import ConfigError


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


# mallopt(3) parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's own bound for its sliding threshold on 64-bit
TRIM_THRESHOLD = 256 << 20
_tuned = False


def keep_freed_memory() -> None:
    """Serve allocations under 32 MB from the heap and return its free top to the system only
    past 256 MB (glibc; elsewhere nothing). A CPU training frees and reallocates the same
    tensors at every update (activations, gradients: 64 MB a PTB LSTM minibatch); under glibc's
    defaults much of that comes back as fresh pages, each one a page fault on first touch, which
    cost 7-15 ms of a 75 ms update on this project's 2-core machines (13,000-20,000 faults an
    update, 10 with this). The process keeps up to 256 MB of freed memory for reuse. Idempotent;
    settings are process-wide, as torch's thread count is."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    name = ctypes.util.find_library("c")
    if not name or os.uname().sysname != "Linux":
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def bf16_autocast_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively on ``device``: CUDA with bf16, or a CPU whose oneDNN
    has bf16 kernels (AVX512-BF16 or AMX; elsewhere bf16 is emulated, slower than fp32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
