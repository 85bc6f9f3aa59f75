"""A real `prefect server start` on loopback, `lmpipe serve` registering the deployment, a run
triggered with `run_deployment`, and its artifacts read back through the Prefect client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from tests.flows.conftest import slice_experiment

pytestmark = [pytest.mark.flow, pytest.mark.slow]

CHECK = textwrap.dedent(
    """
    import asyncio, json, sys
    from prefect.deployments import run_deployment
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def artifacts():
        async with get_client() as c:
            keys = ArtifactFilter(key=ArtifactFilterKey(any_=sys.argv[2:]))
            got = await c.read_artifacts(artifact_filter=keys)
            return sorted({a.key for a in got}), sorted({a.type for a in got})

    run = run_deployment(sys.argv[1], timeout=240)
    keys, types = asyncio.run(artifacts())
    print(json.dumps({"state": run.state.type.value, "keys": keys, "types": types}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited early: {proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} not healthy after {seconds} s")


# the server's and serve's pipes are closed by the garbage collector, not by the test
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_served_deployment_runs_and_publishes_artifacts(tmp_path, corpora_dir):
    cfg = slice_experiment(
        tmp_path,
        corpora_dir,
        "served",
        400,
        """
        [ngram]
        orders = [1, 2]
        methods = ["mkn"]
        [neural]
        architectures = ["gru"]
        hidden = 8
        epochs = 1
        [schedule]
        cron = "0 3 * * *"
        """,
    )
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    serve = None
    try:
        _wait_healthy(api, server, 120)
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lmpipe.flows.cli",
                "serve",
                "--config",
                str(cfg),
                "--home",
                str(tmp_path / "home"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        check = tmp_path / "check.py"
        check.write_text(CHECK)
        out = None
        for _ in range(60):  # until serve has registered the deployment
            r = subprocess.run(
                [
                    sys.executable,
                    str(check),
                    "scheduled-benchmark/served-nightly",
                    "ppl-table",
                    "ppl-report-served",
                    "ppl-report-file",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if r.returncode == 0:
                out = json.loads(r.stdout.strip().splitlines()[-1])
                break
            assert "ObjectNotFound" in r.stderr or "not found" in r.stderr.lower(), r.stderr[-2000:]
            time.sleep(1)
        assert out is not None, "the deployment never appeared"
        assert out["state"] == "COMPLETED"
        assert out["keys"] == ["ppl-report-file", "ppl-report-served", "ppl-table"]
        assert {"markdown", "table"} <= set(
            out["types"]
        )  # Prefect stores link artifacts as markdown
        assert list((tmp_path / "home" / "reports" / "served").glob("*/report.md"))
    finally:
        for p in (serve, server):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
