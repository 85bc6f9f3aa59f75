"""Shared fixtures: tiny corpora written by hand, a temporary home, the reference corpora, one
Prefect test harness (temporary database and server) for every flow test of a session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def corpora_dir() -> Path:
    d = Path(os.environ.get("LMPIPE_CORPORA_DIR", SHARED_CORPORA))
    if not (d / "timemachine.txt").exists():
        pytest.skip(f"reference corpora not found in {d}")
    return d


@pytest.fixture
def tiny_text(tmp_path: Path) -> Path:
    """Ten lines: 8 train, 1 valid, 1 test under the 80/10/10 rule."""
    p = tmp_path / "tiny.txt"
    lines = [
        "the cat sat",
        "the dog sat down",
        "a cat",
        "the cat sat down",
        "a dog sat",
        "the dog",
        "a cat sat",
        "the cat",
        "a dog sat down",
        "the bird sat",
    ]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


def prefect_servers(prefect_home: str | None = None) -> set[int]:
    """PIDs of Prefect API servers (uvicorn running Prefect's app) on this machine; with
    ``prefect_home``, only those started with that ``PREFECT_HOME``."""
    found = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if b"prefect.server.api.server:create_app" not in (d / "cmdline").read_bytes():
                continue
            environ = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if prefect_home is None or f"PREFECT_HOME={prefect_home}".encode() in environ:
            found.add(int(d.name))
    return found
