"""``--prefect`` from the command line with no Prefect server configured: the command starts a
temporary server of its own, reports to it, flushes its logs, stops it and exits promptly, with
the figures of the direct run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import prefect_servers

NGRAM = ["ngram", "--order", "2", "--smoothing", "mkn"]
TRAIN = ["train", "--tokenizer", "word", "--arch", "gru", "--hidden", "4", "--embed", "4"]
TRAIN += ["--epochs", "2", "--seq-len", "2", "--batch-size", "2", "--device", "cpu"]


@pytest.mark.slow  # 38 s for both: two ephemeral Prefect servers
@pytest.mark.parametrize("command", [NGRAM, TRAIN], ids=["ngram", "train"])
def test_a_step_as_a_flow_without_a_server_matches_the_direct_run(tmp_path: Path, command):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("the cat sat\nthe dog sat down\na cat\nthe cat sat down\na dog sat\n")
    test.write_text("the bird sat\na cat sat down\n")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), DO_NOT_TRACK="1")
    files = ["--train", str(train), "--test", str(test)]
    if command is TRAIN:
        files += ["--valid", str(test)]
    args = [*command, *files, "--json"]

    def lmpipe(*extra: str) -> tuple[dict, str, float]:
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "lmpipe.flows.cli",
                *args,
                *extra,
                "--home",
                str(tmp_path / "h"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
        )
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr, time.perf_counter() - t0

    before = prefect_servers()
    flow, stderr, seconds = lmpipe("--prefect")
    direct, _, _ = lmpipe("--force") if command is TRAIN else lmpipe()
    assert flow["perplexity"] == direct["perplexity"]
    assert "Error logging to API" not in stderr and "Traceback" not in stderr
    assert prefect_servers() <= before  # its server is gone
    assert seconds < 90  # a server stopped before the logs were sent made it hang ~70 s more
