"""What a new user meets first: the installed commands next to a user's own ``tasks.py``,
``flows/`` and ``lm.py``; the embedded default corpora with no network; an offline corpus that
fails in one line within seconds; a task failing inside ``lmpipe run`` as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

LMPIPE = str(Path(sys.executable).with_name("lmpipe"))


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A Prefect user's project: modules named like lmpipe's folders, each failing if imported."""
    d = tmp_path / "project"
    (d / "flows").mkdir(parents=True)
    for name in ("tasks.py", "lm.py", "flows/__init__.py", "data.py"):
        (d / name).write_text(f'raise SystemExit("lmpipe imported the user\'s {name}")\n')
    return d


def offline_env(**extra: str) -> dict[str, str]:
    """No local corpora and no network: every URL goes to a proxy port that refuses."""
    env = {k: v for k, v in os.environ.items() if k != "LMPIPE_CORPORA_DIR"}
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", **extra)
    return env


def test_embedded_corpus_next_to_a_users_own_modules(user_folder, tmp_path):
    r = subprocess.run(
        [LMPIPE, "ngram", "--corpus", "timemachine", "--order", "3", "--json",
         "--home", str(tmp_path / "h")],
        cwd=user_folder, env=offline_env(PYTHONPATH=str(user_folder)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # KenLM's figure for the Time Machine's test split at order 3 (docs/reference-figures.md: 7.22)
    assert out["corpus"] == "timemachine" and round(out["perplexity"], 2) == 7.22
    assert not (tmp_path / "h" / "data" / "cache").exists()  # nothing downloaded


def test_offline_ptb_fails_within_seconds_in_one_line(user_folder, tmp_path):
    t0 = time.monotonic()
    r = subprocess.run(
        [LMPIPE, "run", "--corpus", "ptb", "--home", str(tmp_path / "h")],
        cwd=user_folder, env=offline_env(PYTHONPATH=str(user_folder)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    took = time.monotonic() - t0
    lines = (r.stdout + r.stderr).splitlines()
    assert r.returncode == 2 and len(lines) <= 12 and "Traceback" not in r.stderr, r.stderr
    assert lines[-1].startswith("lmpipe: error: cannot download corpus 'ptb'")
    assert "put ptb.zip" in lines[-1] and "LMPIPE_CORPORA_DIR" in lines[-1]
    assert took < 30, took


def test_a_task_failing_inside_the_flow_is_one_line(tmp_path, corpora_dir):
    """A training that diverges inside ``lmpipe run``: the run's progress, then one error line
    that says what to do; Prefect's tracebacks stay in its log."""
    text = tmp_path / "tm.txt"
    text.write_text("\n".join((corpora_dir / "timemachine.txt").read_text().splitlines()[:200]))
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        name = "diverges"
        tokenizers = ["char"]
        [[corpora]]
        name = "tm-slice"
        path = "{text}"
        [ngram]
        orders = [1]
        methods = ["mkn"]
        [neural]
        architectures = ["rnn"]
        hidden = 8
        embed = 8
        epochs = 2
        optimizer = "sgd"
        lr = 1e9
        clip = 1e9
    """)
    )
    r = subprocess.run(
        [LMPIPE, "run", "--config", str(cfg), "--home", str(tmp_path / "h")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = r.stderr.splitlines()
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(lines) <= 12, r.stderr
    assert lines[-1].startswith("lmpipe: error: training diverged in epoch 1"), lines[-1]
    assert "lower the learning rate" in lines[-1]
