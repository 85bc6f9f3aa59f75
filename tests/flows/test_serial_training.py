"""Trainings of one process run one at a time on one thread, whichever thread asks."""

from __future__ import annotations

import contextvars
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lmpipe.tasks import serial

LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("label", default="none")


def test_trainings_from_any_thread_run_on_one_thread_one_at_a_time():
    running, overlaps, seen = [0], [], []

    def fake_training(i: int) -> tuple[int, str]:
        running[0] += 1
        overlaps.append(running[0])
        time.sleep(0.02)
        seen.append(threading.get_ident())
        running[0] -= 1
        return i, LABEL.get()

    def ask(i: int) -> tuple[int, str]:
        LABEL.set(f"caller {i}")  # the caller's context goes along (Prefect's run context)
        return serial.run_training(fake_training, i)

    with ThreadPoolExecutor(4) as pool:
        out = list(pool.map(ask, range(8)))
    assert out == [(i, f"caller {i}") for i in range(8)]
    assert max(overlaps) == 1
    assert len(set(seen)) == 1 and seen[0] != threading.get_ident()


def test_a_failing_training_raises_in_the_caller_and_the_next_one_still_runs():
    def boom() -> None:
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        serial.run_training(boom)
    assert serial.run_training(lambda: 42) == 42
