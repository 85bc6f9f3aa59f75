"""Ctrl-C or SIGTERM in the middle of `lmpipe run` (a training under way in the task runner's
thread) ends the command within a couple of seconds with one line, "lmpipe: interrupted", and
the warehouse stays whole; the next run finishes the experiment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import prefect_servers
from tests.flows.conftest import slice_experiment

pytestmark = [pytest.mark.flow, pytest.mark.slow]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_ends_at_once_and_leaves_the_warehouse_whole(tmp_path, corpora_dir, sig):
    cfg = slice_experiment(
        tmp_path, corpora_dir, "interrupted", 600,
        """
        [ngram]
        orders = [1, 2]
        methods = ["mkn"]
        [neural]
        architectures = ["gru"]
        hidden = 16
        embed = 16
        epochs = 1000
        patience = 0
        """,
    )  # fmt: skip
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "DO_NOT_TRACK": "1"}
    home = tmp_path / "home"
    argv = [sys.executable, "-m", "lmpipe.flows.cli", "run", "--config", str(cfg), "--home",
            str(home)]  # fmt: skip
    p = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # a shell's background job ignores SIGINT; a terminal's foreground one does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    models = home / "data" / "models" / "neural"
    deadline = time.monotonic() + 240
    while not (models.is_dir() and any(models.rglob("*.pt*"))) and time.monotonic() < deadline:
        assert p.poll() is None, p.communicate()
        time.sleep(0.2)  # until the training has written its first checkpoint
    t0 = time.monotonic()
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 5
    assert p.returncode == 128 + sig
    assert err.strip().splitlines()[-1] == "lmpipe: interrupted"
    assert "Traceback" not in err
    deadline = time.monotonic() + 20
    while prefect_servers(env["PREFECT_HOME"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert prefect_servers(env["PREFECT_HOME"]) == set()
    check = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", "check", "--home", str(home)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0 and "clean" in check.stdout, check.stdout + check.stderr
