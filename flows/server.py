"""Prefect's temporary API server for one command, started early instead of on first use.

Without ``PREFECT_API_URL`` Prefect starts a temporary server (uvicorn running
``prefect.server.api.server:create_app``) on the flow's first API call: the client first imports
the server's modules (1.8 s measured on 2 cores), then waits for the server process to answer
(3.3 s), all before the flow begins. Started here right after ``import prefect``, the server
boots while the command imports the rest, and the client never imports the server's code: a
cached re-run of the default experiment went from 15.0 s to 12 s or so. The same command line as
Prefect's own (``SubprocessASGIServer``), so the server is the same; the flow reaches it through
``PREFECT_API_URL``, which Dask workers inherit too.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT_S = 60.0


class TemporaryServer:
    """A Prefect API server subprocess on a free loopback port, stopped at exit."""

    def __init__(self) -> None:
        import prefect
        from prefect.settings import get_current_settings

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
        }
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn",
                "--app-dir", str(Path(prefect.__file__).parent.parent),
                "--factory", "prefect.server.api.server:create_app",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "error", "--lifespan", "on",
            ],
            env=env,
            preexec_fn=_dies_with(os.getpid()),
        )  # fmt: skip
        atexit.register(self.stop)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(
                    f"Prefect's temporary server exited while starting (port {self.port}); "
                    "run with --debug, or start `prefect server start` and set PREFECT_API_URL"
                )
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            time.sleep(0.05)
        raise RuntimeError(
            f"Prefect's temporary server did not answer within {timeout:.0f} s; start "
            "`prefect server start` and set PREFECT_API_URL"
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


PR_SET_PDEATHSIG = 1


def _dies_with(parent: int):
    """For ``preexec_fn``: on Linux the server gets SIGTERM when the command's process dies,
    even by SIGKILL (when ``atexit`` cannot stop it), instead of lingering as an orphan."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None

    def child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return child


class _Configured:
    """The API named by the user's settings: nothing to start or wait for."""

    api_url: str | None = None

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        return None


@contextlib.contextmanager
def prefect_api() -> Iterator[TemporaryServer | _Configured]:
    """Within: the flows of this process report to ``PREFECT_API_URL`` if one is configured,
    else to a temporary server started on entry and stopped on exit. Call ``wait_ready()`` on
    what it yields just before the first flow (the imports in between overlap the start)."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if PREFECT_API_URL.value() or not get_current_settings().server.ephemeral.enabled:
        yield _Configured()  # a server of the user's, or Prefect's own error without one
        return
    server = TemporaryServer()
    try:
        os.environ["PREFECT_API_URL"] = server.api_url  # for worker processes (Dask)
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        _drain_prefect_workers()  # logs and events still queued go to the server before it stops
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def _drain_prefect_workers(timeout: float = 10.0) -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):  # best effort: the results are already written
            worker.drain_all(timeout=timeout)
