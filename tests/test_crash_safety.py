"""A run killed with SIGKILL at any moment leaves no partial file under a final name; the next
run cleans up after it, completes, and its results equal those of an uninterrupted run.
Two runs on one home at the same time both succeed with all their rows.

``lmpipe ngram`` is killed at several moments of its life (imports, ingest writing token files,
estimation, recording the run), each time on the same home, without repairing in between.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from lmpipe.lm.fileio import TMP_PREFIX

ROOT = Path(__file__).resolve().parents[1]
# kill points as fractions of an uninterrupted run's wall time: imports, ingest, estimation,
# recording, committing
KILL_AT = (0.15, 0.3, 0.45, 0.6, 0.7, 0.8, 0.9)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """A few MB of word text, so that ingest and estimation take a noticeable part of a run."""
    d = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    words = ["".join(rng.choices("abcdefghijklmnop", k=rng.randint(2, 7))) for _ in range(3000)]
    train, test = d / "train.txt", d / "test.txt"
    with open(train, "w", encoding="utf-8") as f:
        for _ in range(40000):
            f.write(" ".join(rng.choices(words, k=rng.randint(3, 20))) + "\n")
    test.write_text(
        "\n".join(" ".join(rng.choices(words, k=8)) for _ in range(200)) + "\n", encoding="utf-8"
    )
    return train, test


def argv(train: Path, test: Path, home: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lmpipe.flows.cli",
        "ngram",
        "--train",
        str(train),
        "--test",
        str(test),
        "--order",
        "3",
        "--smoothing",
        "kn",
        "--json",
        "--home",
        str(home),
    ]


def run_to_end(train: Path, test: Path, home: Path) -> dict:
    r = subprocess.run(
        argv(train, test, home), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def stable(out: dict) -> dict:
    return {k: v for k, v in out.items() if k not in ("run_id", "train_seconds", "cached")}


def assert_no_partial_file(home: Path) -> None:
    """Every file under a final name is complete: Parquet reads, JSON parses, DuckDB opens."""
    for p in (home / "data").rglob("*"):
        if not p.is_file() or p.name.startswith(TMP_PREFIX):
            continue
        if p.suffix == ".parquet":
            pq.read_table(p)
        elif p.suffix == ".json":
            json.loads(p.read_text(encoding="utf-8"))
        elif p.suffix == ".duckdb":
            duckdb.connect(str(p), read_only=True).close()


def check(home: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", "check", "--json", "--home", str(home)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(r.stdout)


def warehouse_rows(home: Path, run_id: str) -> dict[str, int]:
    """Rows of the run's own datasets, and of the token and vocabulary files it used."""
    wh = home / "data" / "warehouse"
    (key,) = (
        pq.read_table(wh / "corpora" / f"run_id={run_id}" / "corpora.parquet")
        .column("data_key")
        .to_pylist()
    )
    rows = {
        ds: pq.read_table(wh / ds / f"run_id={run_id}" / f"{ds}.parquet").num_rows
        for ds in ("runs", "corpora", "splits", "results")
    }
    for ds in ("tokens", "vocab"):
        rows[ds] = sum(
            pq.read_table(p).num_rows
            for p in wh.glob(f"{ds}/corpus=*/tokenizer=*/key={key}/**/*.parquet")
        )
    return rows


def test_sigkill_at_any_moment_then_rerun(tmp_path, corpus):
    train, test = corpus
    t0 = time.monotonic()
    reference = run_to_end(train, test, tmp_path / "reference")
    wall = time.monotonic() - t0

    home = tmp_path / "home"
    killed = 0
    for fraction in KILL_AT:
        t = fraction * wall
        proc = subprocess.Popen(
            argv(train, test, home), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(t)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
        assert_no_partial_file(home)
    # Each killed attempt leaves its finished steps cached on this home, so later attempts are
    # shorter than the cold reference and the late kill points may come after they finished (on
    # a fast machine, all from the fourth on): at least the early ones must have died mid-way.
    assert killed >= 2

    again = run_to_end(train, test, home)
    assert stable(again) == stable(reference)
    report = check(home)
    assert report["clean"], report["problems"]
    # the run is whole and equal to the uninterrupted one (the lm/ code version, part of every
    # cache key, may change between two runs while lm/ is being edited: compare by run)
    assert warehouse_rows(home, again["run_id"]) == warehouse_rows(
        tmp_path / "reference", reference["run_id"]
    )
    # the killed runs left nothing a query would see: only completed runs are committed
    wh = home / "data" / "warehouse"
    committed = sorted(p.parent.name for p in wh.glob("runs/run_id=*/runs.parquet"))
    assert sorted(p.parent.name for p in wh.glob("results/run_id=*/results.parquet")) == committed
    assert not list((home / "data").rglob(f"{TMP_PREFIX}*"))


def test_two_runs_at_once_on_one_home(tmp_path, corpus):
    train, test = corpus
    home = tmp_path / "home"
    procs = [
        subprocess.Popen(
            argv(train, test, home),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    results = [json.loads(o) for o, _ in outs]
    assert results[0]["run_id"] != results[1]["run_id"]
    assert stable(results[0]) == stable(results[1])
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmpipe.flows.cli",
            "sql",
            "select run_id, count(*) as n from results group by run_id order by run_id",
            "--format",
            "json",
            "--home",
            str(home),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        {"run_id": x["run_id"], "n": 1} for x in sorted(results, key=lambda x: x["run_id"])
    ]
    assert check(home)["clean"]
