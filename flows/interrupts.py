"""Ending a command at once on Ctrl-C or SIGTERM, Prefect's flows included.

``lmpipe run`` (and the other commands that compute) install :func:`exit_on_interrupt`: the
signal prints "lmpipe: interrupted" and ends the process with 128 + the signal's number.
Python's own unwinding took 13-30 s and more, because the task runner's worker threads (a
training in progress) are joined before the process may exit. Nothing is half-written either
way: every file is moved into place whole, a run counts once committed, and the next command
removes what an interrupted one left under temporary names (``clean_debris``).

Python runs a signal handler only between bytecodes of the main thread, so a handler alone
waits for a long DuckDB query or torch kernel to return (a query over ``range(10^12)`` never
did). The signal is therefore also written to a wakeup pipe (``signal.set_wakeup_fd``, done by
Python's C-level handler the moment the signal arrives) that a watcher thread reads: it ends
the process while the main thread is still inside the C call.

Inside a flow, Prefect swaps its own SIGTERM handler in (it raises ``TerminationSignal`` so that
a runner's cancellation is recorded), so the flows of this package are wrapped by
:func:`exits_on_termination`, which ends the process the same way, but only in a process whose
command line asked for it: a run that ``lmpipe serve``'s runner started and cancels keeps
Prefect's handling.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_HARD_EXIT = False  # set by exit_on_interrupt: this process's command line asked for it


_STOPPING = threading.Lock()  # taken by the first _stop of the process


def _stop(signum: int, _frame: object = None) -> None:
    # the handler (main thread) and the watcher may both get here for one signal: the first
    # one says it and ends the process, the other waits for that (one line, as promised)
    if not _STOPPING.acquire(blocking=False):
        threading.Event().wait()
    os.write(2, b"lmpipe: interrupted\n")
    os._exit(128 + signum)


def exit_on_interrupt() -> None:
    """Ctrl-C and SIGTERM end this process at once (call from the main thread)."""
    global _HARD_EXIT
    _HARD_EXIT = True
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    _watch_wakeup_pipe()


def _watch_wakeup_pipe() -> None:
    """A daemon thread that ends the process on the first SIGINT or SIGTERM written to the
    wakeup pipe (see the module's docstring); once per process."""
    global _WATCHING
    if _WATCHING:
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the C handler must never block
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    _WATCHING = True

    def watch() -> None:
        while True:
            for signum in os.read(read_fd, 64):
                if signum in (signal.SIGINT, signal.SIGTERM):
                    _stop(signum)

    threading.Thread(target=watch, name="lmpipe-interrupt", daemon=True).start()


_WATCHING = False


def exits_on_termination(fn: Callable[P, R]) -> Callable[P, R]:
    """A flow function whose process ends at once on SIGTERM (see the module's docstring)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        from prefect.exceptions import TerminationSignal

        try:
            return fn(*args, **kwargs)
        except TerminationSignal as e:
            if _HARD_EXIT:
                _stop(e.signal)
            raise

    return run
