"""Where a training runs: ``auto`` picks CUDA when available, else the CPU with one torch thread
per core this process may use (or ``LMPIPE_TORCH_THREADS``)."""

from __future__ import annotations

import os

import torch

from lmpipe.lm.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
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
        # LMPIPE_TORCH_THREADS: a process's share of the cores when several train side by side
        # (a Dask worker per core); default: every core this process may use
        threads = os.environ.get("LMPIPE_TORCH_THREADS")
        torch.set_num_threads(int(threads) if threads else len(os.sched_getaffinity(0)))
    return device
