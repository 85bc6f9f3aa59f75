"""Trainings of one process run one at a time, all on one dedicated thread.

One at a time: torch's dropout and initialisation draw from one process-wide generator, so
trainings in threads of one process take turns to stay exactly reproducible from their seeds.

One thread: torch's CPU kernels run in OpenMP teams, one team per calling thread. Once a
second thread has called into torch, libgomp manages more threads than there are cores and
throttles its spin-waiting, and every parallel region pays a sleep/wake-up: an nn.GRU step
measured 28 ms on the first calling thread and 50 ms on a second one (2 cores). Task runners
hand tasks to whichever pool thread is free, so the trainings are funnelled to this one.

(Kept in its own module and reached through it, so that task functions pickled by value for a
Dask worker do not carry the executor itself.)
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_TRAINING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lmpipe-training")


def run_training(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` on the training thread, after the trainings queued before it,
    inside a copy of the caller's context (Prefect's run context and settings go along)."""
    ctx = contextvars.copy_context()
    return _TRAINING.submit(ctx.run, fn, *args, **kwargs).result()  # type: ignore[arg-type]
