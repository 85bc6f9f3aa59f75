"""Prefect's temporary API server for one command, started early instead of on first use.

Without ``PREFECT_API_URL`` Prefect starts a temporary server (uvicorn running
``prefect.server.api.server:create_app``) on the flow's first API call: the client first imports
the server's modules (1.8 s measured on 2 cores), then waits for the server process to answer
(3.3 s), all before the flow begins. Started here right after ``import prefect``, the server
boots while the command imports the rest, and the client never imports the server's code: a
cached re-run of the default experiment went from 15.0 s to 12 s or so. The same command line as
Prefect's own (``SubprocessASGIServer``), so the server is the same; the flow reaches it through
``PREFECT_API_URL``, which Dask workers inherit too.

``start_early()`` goes further: before ``import prefect`` (0.9 s), where the environment names no
API, it starts the server that ``prefect_api()`` will most likely want, from the environment
alone (the server reads Prefect's profile and ``prefect.toml`` itself, as it would anyway); if the
settings then name an API after all, that server is stopped unused. A cached re-run of the
default experiment is about 1 s shorter.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
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
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        # Once Prefect is imported its settings may hold more than the environment (temporary
        # settings in tests): they go along; before, the server derives them as the client would.
        settings: dict[str, str] = {}
        if "prefect.settings" in sys.modules:
            from prefect.settings import get_current_settings

            settings = get_current_settings().to_environment_variables(exclude_unset=True)
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **settings,
        }
        spec = importlib.util.find_spec("prefect")  # where it is, without importing it
        assert spec is not None and spec.origin is not None
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn",
                "--app-dir", str(Path(spec.origin).parent.parent),
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
    """The API named by the user's settings: nothing to start; only checked to answer, so that
    a server that is down is one clear line, not Prefect's error from deep in the flow."""

    def __init__(self, api_url: str | None = None) -> None:
        self.api_url = api_url

    def wait_ready(self, timeout: float = 10.0) -> None:
        if not self.api_url:
            return
        try:
            with urllib.request.urlopen(f"{self.api_url.rstrip('/')}/health", timeout=timeout):
                return
        except urllib.error.HTTPError:
            return  # it answers (an error status: authentication, say, is Prefect's to report)
        except (OSError, ValueError) as e:
            from lmpipe.lm.errors import ConfigError

            raise ConfigError(
                f"cannot reach the Prefect API at {self.api_url} (PREFECT_API_URL: {e}); "
                "start that server (`prefect server start`), or unset PREFECT_API_URL to let "
                "lmpipe start a temporary one"
            ) from e


_early: TemporaryServer | None = None


def start_early() -> None:
    """Start the temporary server now, before Prefect is imported, unless the environment
    names an API (``prefect_api()`` takes it over, or stops it if the settings name one)."""
    global _early
    if _early is None and not os.environ.get("PREFECT_API_URL") and "prefect" not in sys.modules:
        _early = TemporaryServer()


@contextlib.contextmanager
def prefect_api() -> Iterator[TemporaryServer | _Configured]:
    """Within: the flows of this process report to ``PREFECT_API_URL`` if one is configured,
    else to a temporary server started on entry (or by ``start_early``) and stopped on exit.
    Call ``wait_ready()`` on what it yields just before the first flow (the imports in between
    overlap the start)."""
    global _early
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    early, _early = _early, None
    if PREFECT_API_URL.value() or not get_current_settings().server.ephemeral.enabled:
        if early is not None:
            early.stop()  # the profile or prefect.toml names an API after all
        # a server of the user's, or Prefect's own error without one
        yield _Configured(PREFECT_API_URL.value())
        return
    server = early or TemporaryServer()
    try:
        os.environ["PREFECT_API_URL"] = server.api_url  # for worker processes (Dask)
        # No flow-run heartbeats: they let a lasting server notice a crashed run, and this one
        # stops with the command; the engine's heartbeat thread sleeps in steps of 1 s and is
        # joined when the flow ends, so it cost up to a second per flow (0.8 s of a re-run).
        updates = {PREFECT_API_URL: server.api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        with temporary_settings(updates=updates):
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
