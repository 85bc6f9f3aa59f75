"""`lmpipe run` killed with SIGKILL at several points, then run again: no partial file under a
final name, `lmpipe check` clean, results equal to an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmpipe.lm.fileio import TMP_PREFIX
from lmpipe.lm.warehouse import Warehouse
from tests.conftest import prefect_servers
from tests.flows.conftest import slice_experiment

pytestmark = [pytest.mark.flow, pytest.mark.slow]

# fractions of the first uninterrupted run's wall time (which also creates Prefect's database, so
# later runs are quicker, and each re-run re-uses what the killed one finished): Prefect start and
# ingest, n-gram models, training, recording
KILL_AT = (0.2, 0.35, 0.5, 0.65)


def _run(cfg: Path, home: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lmpipe.flows.cli",
            "run",
            "--config",
            str(cfg),
            "--home",
            str(home),
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _results(home: Path, run_id: str) -> list[tuple]:
    t = pq.read_table(Warehouse.at_home(home).run_path("results", run_id)).to_pandas()
    t = t.sort_values(["corpus", "model", "n", "split"])
    return [
        tuple(r)
        for r in t[["corpus", "model", "n", "split", "perplexity"]].fillna(-1).values.tolist()
    ]


# the SIGKILLed children's pipes are closed by the garbage collector, not by the test
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_killed_runs_leave_nothing_half_written_and_the_next_run_is_whole(tmp_path, corpora_dir):
    cfg = slice_experiment(
        tmp_path,
        corpora_dir,
        "killed",
        1500,
        """
        [ngram]
        orders = [1, 2, 3]
        methods = ["mkn", "kn"]
        [neural]
        architectures = ["gru"]
        hidden = 32
        epochs = 3
        """,
    )
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    t0 = time.monotonic()
    ref = _run(cfg, tmp_path / "reference", env)
    out, _ = ref.communicate(timeout=600)
    wall = time.monotonic() - t0
    assert ref.returncode == 0
    reference = _results(tmp_path / "reference", json.loads(out.strip().splitlines()[-1])["run_id"])

    home = tmp_path / "home"
    killed = 0
    for fraction in KILL_AT:
        p = _run(cfg, home, env)
        time.sleep(fraction * wall)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            killed += 1
        p.wait()
        # complete files only under final names: every Parquet file reads
        for f in home.rglob("*.parquet"):
            if not f.name.startswith(TMP_PREFIX):
                pq.read_table(f)
    assert killed >= 2
    # the killed runs' temporary servers get SIGTERM from the kernel and shut down too
    deadline = time.monotonic() + 20
    while prefect_servers(env["PREFECT_HOME"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert prefect_servers(env["PREFECT_HOME"]) == set()
    p = _run(cfg, home, env)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0
    assert _results(home, json.loads(out.strip().splitlines()[-1])["run_id"]) == reference
    check = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", "check", "--home", str(home)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "clean" in check.stdout, check.stdout + check.stderr
