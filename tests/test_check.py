"""``lm.check``: a hand-made warehouse, damage applied by hand, each found in one line and
removed by ``repair`` (a run removed whole; content files with the manifest that promised them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmpipe.lm.check import check_warehouse, clean_debris
from lmpipe.lm.corpus import resolve_files
from lmpipe.lm.ingest import IngestSettings, ingest
from lmpipe.lm.warehouse import Warehouse


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def commit(wh: Warehouse, rid: str, n: int = 2) -> None:
    counts = {
        "results": wh.write_run_rows(
            "results", rid, [{"corpus": "c", "perplexity": float(i)} for i in range(n)]
        ),
        "splits": wh.write_run_rows("splits", rid, [{"corpus": "c", "split": "test", "tokens": 5}]),
    }
    wh.commit_run(
        rid, {"experiment": "e", "status": "completed", "row_counts_json": json.dumps(counts)}
    )


@pytest.fixture
def wh(tmp_path: Path) -> Warehouse:
    w = Warehouse.at_home(tmp_path / "home")
    commit(w, "20240101-000000-aaaaaa")
    commit(w, "20240102-000000-bbbbbb")
    return w


def test_a_clean_warehouse(wh):
    rep = check_warehouse(wh)
    assert rep.problems == [] and rep.runs == 2 and rep.files == 6
    assert rep.lines() == ["checked 6 files, 2 committed runs: clean"]


def test_truncated_file_removes_its_run_whole(wh):
    bad = wh.run_path("results", "20240102-000000-bbbbbb")
    bad.write_bytes(bad.read_bytes()[:40])
    rep = check_warehouse(wh)
    assert any(p.startswith(f"damaged {bad} (") for p in rep.problems)
    assert "run `lmpipe check --repair`" in rep.lines()[-1]
    rep = check_warehouse(wh, repair=True)
    assert not (wh.root / "runs" / "run_id=20240102-000000-bbbbbb").exists()
    assert not (wh.root / "splits" / "run_id=20240102-000000-bbbbbb").exists()
    assert check_warehouse(wh).problems == [] and check_warehouse(wh).runs == 1


def test_row_count_that_differs_from_the_record(wh):
    rid = "20240101-000000-aaaaaa"
    wh.write_run_rows("results", rid, [{"corpus": "c"}])  # 1 row where 2 were recorded
    rep = check_warehouse(wh)
    assert rep.problems == [f"run {rid}: results has 1 rows, 2 recorded; the run is incomplete"]
    check_warehouse(wh, repair=True)
    assert check_warehouse(wh).problems == [] and check_warehouse(wh).runs == 1


def test_missing_dataset_of_a_committed_run(wh):
    rid = "20240101-000000-aaaaaa"
    wh.run_path("splits", rid).unlink()
    assert check_warehouse(wh).problems == [
        f"run {rid}: splits is missing (1 rows recorded); the run is incomplete"
    ]


def test_temporary_file_of_a_dead_writer_and_of_a_live_one(wh):
    dead = wh.root / "results" / f".tmp-results.parquet.{dead_pid()}.x1y2"
    dead.write_bytes(b"half")
    live = wh.root / "results" / f".tmp-results.parquet.{os.getpid()}.x1y2"
    live.write_bytes(b"half")
    models_tmp = wh.root.parent / "models" / "ngram" / "k" / f".tmp-result.json.{dead_pid()}.ab"
    models_tmp.parent.mkdir(parents=True)
    models_tmp.write_text("{")
    rep = check_warehouse(wh)
    assert sorted(rep.problems) == sorted(
        [
            f"half-written file {dead} (its writer is gone)",
            f"half-written file {models_tmp} (its writer is gone)",
        ]
    )
    assert sorted(clean_debris(wh)) == sorted([str(dead), str(models_tmp)])
    assert live.exists() and not dead.exists()


def test_out_of_core_model_folder_of_a_killed_process(wh):
    spill = wh.root.parent / "spill"
    dead = spill / f".tmp-mkn.{dead_pid()}.k3j2"
    (dead / "spill").mkdir(parents=True)
    (dead / "model.duckdb").write_bytes(b"x" * 100)
    live = spill / f".tmp-mkn.{os.getpid()}.k3j2"
    live.mkdir()
    assert check_warehouse(wh).problems == [f"working folder {dead} of a process that is gone"]
    assert clean_debris(wh) == [str(dead)]
    assert live.is_dir() and not dead.exists()


def test_uncommitted_run_folder_is_orphaned_unless_its_writer_lives(wh):
    rid = "20240103-000000-cccccc"
    wh.write_run_rows("results", rid, [{"corpus": "c"}])
    (wh.root / ".inflight").mkdir()
    marker = wh.root / ".inflight" / f"{rid}.pid"
    marker.write_text(str(os.getpid()))
    assert check_warehouse(wh).problems == []  # a run in flight: not touched
    marker.write_text(str(dead_pid()))
    rep = check_warehouse(wh)
    assert (
        f"orphaned {wh.root / 'results' / f'run_id={rid}'} (run {rid} never committed)"
        in rep.problems
    )
    removed = clean_debris(wh)
    assert str(wh.root / "results" / f"run_id={rid}") in removed and str(marker) in removed
    assert check_warehouse(wh).problems == []
    assert check_warehouse(wh).runs == 2


def test_unreadable_commit_record_uncommits_the_run(wh):
    rid = "20240101-000000-aaaaaa"
    record = wh.run_path("runs", rid)
    record.write_bytes(b"PAR1garbage")
    rep = check_warehouse(wh, repair=True)
    assert any(p.startswith(f"damaged {record}") for p in rep.problems)
    assert not (wh.root / "results" / f"run_id={rid}").exists()
    assert check_warehouse(wh).problems == []


def test_damaged_tokens_drop_their_manifest(tmp_path):
    wh = Warehouse.at_home(tmp_path / "home")
    text = tmp_path / "t.txt"
    text.write_text("a b c\nb c d\nc d e\n" * 5, encoding="utf-8")
    src = resolve_files("t", all_text=text)
    first = ingest(src, IngestSettings(tokenizer="whitespace"), wh)
    tokens = Path(first.splits["train"].path)
    tokens.write_bytes(tokens.read_bytes()[:30])
    rep = check_warehouse(wh)
    assert any(p.startswith(f"damaged {tokens}") for p in rep.problems)
    assert any(p.startswith("ingest ") and "train tokens" in p for p in rep.problems)
    check_warehouse(wh, repair=True)
    assert not (tokens.parent.parent / "manifest.json").exists()
    again = ingest(
        src, IngestSettings(tokenizer="whitespace"), wh
    )  # recomputed, not the stale manifest
    assert again.splits["train"].tokens == first.splits["train"].tokens
    assert check_warehouse(wh).problems == []


def test_damaged_view_database_is_rebuilt(wh):
    wh.db_path.parent.mkdir(parents=True, exist_ok=True)
    wh.db_path.write_bytes(b"not a duckdb file" * 100)
    rep = check_warehouse(wh, repair=True)
    assert any(p.startswith(f"the view database {wh.db_path} does not open") for p in rep.problems)
    assert check_warehouse(wh).problems == []


def test_clean_debris_reads_no_file(wh):
    bad = wh.run_path("results", "20240102-000000-bbbbbb")
    bad.write_bytes(b"truncated")
    assert clean_debris(wh) == []  # damage is for `lmpipe check`, not for every run's start
    assert bad.exists()


def test_a_file_with_the_wrong_columns_and_the_right_row_count(wh):
    """What a write through SQL could have left: the run's row count matches, its columns
    do not. The run is not to be trusted and goes whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rid = "20240101-000000-aaaaaa"
    path = wh.run_path("results", rid)
    pq.write_table(pa.table({"evil": [42, 43]}), path)  # 2 rows, as recorded
    rep = check_warehouse(wh)
    assert rep.problems == [
        f"wrong columns in {path}: (evil int64), expected (run_id string, experiment string, "
        "corpus string, tokenizer string, family string, model string, method string, "
        "n int32, ...)",
        f"run {rid}: results is damaged; the run is incomplete",
    ]
    check_warehouse(wh, repair=True)
    assert check_warehouse(wh).problems == [] and check_warehouse(wh).runs == 1


def test_an_older_run_with_fewer_columns_is_fine(wh):
    """Columns are only ever added at the end of a schema: older runs' files lack them."""
    import pyarrow.parquet as pq

    from lmpipe.lm.warehouse import RUN_SCHEMAS

    rid = "20240101-000000-aaaaaa"
    path = wh.run_path("splits", rid)
    old = pq.read_table(path).select([f.name for f in RUN_SCHEMAS["splits"]][:-1])
    pq.write_table(old, path)
    assert check_warehouse(wh).problems == []


def test_files_no_run_owns_are_found_and_removed(wh):
    rid = "20240101-000000-aaaaaa"
    stray = [
        wh.root / "results" / f"run_id={rid}" / "evil.parquet",  # beside a run's own file
        wh.root / "evil.parquet",
        wh.root / "results" / "notes.txt",
    ]
    for p in stray:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    wh.write_run_rows("epochs", rid, [])  # a dataset the run's commit record does not count
    stray.append(wh.run_path("epochs", rid))
    rep = check_warehouse(wh)
    assert sorted(rep.problems) == sorted(
        f"{p} belongs to no run, ingest or counting of the warehouse" for p in stray
    )
    check_warehouse(wh, repair=True)
    assert not any(p.exists() for p in stray)
    rep = check_warehouse(wh)
    assert rep.problems == [] and rep.runs == 2


def test_check_of_a_folder_without_a_warehouse_says_so(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", "check", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"lmpipe: error: no warehouse at {tmp_path}/data/warehouse")
    assert r.stderr.count("\n") == 1
