"""``lmpipe sql``: the documented views, the four output formats, the README's examples, and the
read-only guarantees, on the hand-built warehouse of ``tests/test_report.py`` (no Prefect)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_report import CUR, PREV, build_warehouse

from lmpipe.lm.errors import WarehouseError
from lmpipe.lm.query import FORMATS, format_rows, run_query
from lmpipe.lm.warehouse import RUN_SCHEMAS, VIEW_DOCS, Warehouse

README = Path(__file__).resolve().parents[1] / "README.md"
DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP WITH TIME ZONE",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("sql") / "home"
    build_warehouse(h)
    return h


def lmpipe_sql(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", "sql", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def columns(wh: Warehouse) -> dict[str, list[tuple[str, str]]]:
    _, rows = run_query(
        wh,
        "select table_name, column_name, data_type from information_schema.columns "
        "order by table_name, ordinal_position",
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return out


def readme_sql_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Query the results with SQL")
    return text[start : text.index("\n## ", start + 1)]


def readme_views() -> dict[str, list[str]]:
    """The README's table of views: view name -> documented column names."""
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", readme_sql_section(), re.M)
    return {view: re.findall(r"`(\w+)`", cols) for view, cols in rows}


def readme_queries() -> list[str]:
    """Every ``lmpipe sql`` command of the README's SQL section, as the shell would pass it."""
    queries = []
    for block in re.findall(r"```bash\n(.*?)```", readme_sql_section(), re.S):
        for command in re.split(r"^lmpipe ", block, flags=re.M)[1:]:
            argv = shlex.split(command, comments=True)
            assert argv[0] == "sql", command
            queries.append(argv[-1])
    return queries


# --------------------------------------------------------------------------- views


def test_views_have_the_documented_columns_and_types(home, tmp_path):
    empty_root = tmp_path / "empty" / "data" / "warehouse"
    empty_root.mkdir(parents=True)
    full, empty = columns(Warehouse.at_home(home)), columns(Warehouse(empty_root))
    assert set(full) == set(VIEW_DOCS)
    for dataset, schema in RUN_SCHEMAS.items():
        expected = [(f.name, DUCK_TYPES[f.type]) for f in schema]
        assert full[dataset] == expected and empty[dataset] == expected, dataset
    for view in ("vocab", "tokens", "ngrams"):
        assert full[view] == empty[view], view
    documented = readme_views()
    assert set(documented) == set(VIEW_DOCS)
    for view, cols in documented.items():
        assert set(cols) - {"run_id"} == {c for c, _ in full[view]} - {"run_id"}, view


def test_readme_examples_run_as_written_and_return_rows(home):
    queries = readme_queries()
    assert len(queries) >= 5
    for q in queries:
        cols, rows = run_query(Warehouse.at_home(home), q)
        assert cols and rows, q


# --------------------------------------------------------------------------- formats

QUERY = (
    "select run_id, corpus, model, n, split, perplexity, started_at from results"
    " join runs using (run_id) where corpus = 'jaychou' order by all"
)


def test_every_format_holds_the_parquet_values(home):
    wh = Warehouse.at_home(home)
    cols, rows = run_query(wh, QUERY)
    parquet = sorted(
        (r["run_id"], r["model"], r["n"] if r["n"] is not None else -1, r["split"], r["perplexity"])
        for run in (PREV, CUR)
        for r in pq.read_table(wh.run_path("results", run)).to_pylist()
        if r["corpus"] == "jaychou"
    )
    by_json = json.loads(format_rows(cols, rows, "json"))
    assert (
        sorted(
            (
                r["run_id"],
                r["model"],
                r["n"] if r["n"] is not None else -1,
                r["split"],
                float(r["perplexity"]),
            )
            for r in by_json
        )
        == parquet
    )
    assert by_json[0]["started_at"].startswith("2026-01-0")
    by_csv = list(csv.DictReader(io.StringIO(format_rows(cols, rows, "csv"))))
    assert (
        sorted(
            (r["run_id"], r["model"], int(r["n"] or -1), r["split"], float(r["perplexity"]))
            for r in by_csv
        )
        == parquet
    )  # csv keeps every digit
    markdown = format_rows(cols, rows, "markdown").splitlines()
    assert markdown[0] == "| " + " | ".join(cols) + " |" and len(markdown) == len(rows) + 2
    table = format_rows(cols, rows, "table").splitlines()
    assert table[0].split() == cols and table[-1] == f"({len(rows)} rows)"
    with pytest.raises(WarehouseError, match="choose one of: table, csv, json, markdown"):
        format_rows(cols, rows, "xml")
    assert FORMATS == ("table", "csv", "json", "markdown")


def test_infinite_and_missing_values_print_in_every_format(home):
    cols, rows = run_query(
        Warehouse.at_home(home),
        "select perplexity, n from results where "
        "perplexity = 'inf'::double and family = 'ngram' limit 1",
    )
    assert json.loads(format_rows(cols, rows, "json")) == [{"perplexity": "inf", "n": 3}]
    assert format_rows(cols, rows, "csv") == "perplexity,n\ninf,3\n"
    _, rows = run_query(
        Warehouse.at_home(home), "select n, 1.5 as d from results where family = 'neural' limit 1"
    )
    assert json.loads(format_rows(["n", "d"], rows, "json")) == [{"n": None, "d": 1.5}]


def test_cli_prints_the_chosen_format(home):
    r = lmpipe_sql(
        home,
        "--format",
        "json",
        "select corpus, count(*) as n from results group by all order by all",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        {"corpus": "jaychou", "n": 60},
        {"corpus": "timemachine", "n": 90},
    ]
    r = lmpipe_sql(home, "--format", "xml", "select 1")
    assert r.returncode != 0 and "choose one of: table, csv, json, markdown" in r.stderr


# --------------------------------------------------------------------------- read-only


def _fingerprint(home: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((home / "data").rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "query, message",
    [
        ("delete from results", "read-only: DELETE statements are refused"),
        ("drop view results", "read-only: DROP statements are refused"),
        ("copy results to 'out.csv'", "read-only: COPY statements are refused"),
        ("attach 'other.duckdb'", "read-only: ATTACH statements are refused"),
        ("select * from read_csv('/etc/passwd')", "Permission Error"),
        ("selec * from results", 'syntax error at or near "selec"'),
    ],
)
def test_cli_refuses_and_changes_nothing(home, query, message):
    before = _fingerprint(home)
    r = lmpipe_sql(home, query)
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.startswith("lmpipe: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr
    assert _fingerprint(home) == before


@pytest.mark.parametrize(
    "query",
    [
        "insert into results (run_id) values ('x')",
        "update results set perplexity = 0",
        "create table t as select 1",
        "create or replace view results as select 1",
        "set enable_external_access = true",
        "install httpfs",
        "load httpfs",
        "export database 'dump'",
        "select 1; drop view results",
        "checkpoint",
        "select * from glob('/*')",
        "select * from read_parquet('/etc/*.parquet')",
        "pragma enable_profiling",
        "explain analyze delete from results",
        "",
    ],
)
def test_nothing_but_one_read_statement_runs(home, query):
    with pytest.raises(WarehouseError):
        run_query(Warehouse.at_home(home), query)
    _, rows = run_query(Warehouse.at_home(home), "select count(*) from results")
    # 2 runs x 2 corpora and a run of 1, each (4 methods x 3 orders + 2 neural + 1 mixture)
    # x 2 splits
    assert rows == [(2 * 2 * (4 * 3 + 2 + 1) * 2 + (4 * 3 + 2 + 1) * 2,)]


ESCAPES = [
    "explain analyze copy (select 42 as evil) to '{result}' (format parquet)",
    "copy (select 42 as evil) to '{result}' (format parquet)",
    "explain analyze copy results to '{wh}/results/new.parquet' (format parquet)",
    "explain analyze copy (select 1) to '{outside}/out.csv'",
    "copy (select 1) to '{outside}/out.csv'",
    "explain analyze export database '{wh}/dump'",
    "explain analyze create table evil as select 1",
    "explain analyze delete from results",
    "import database '{wh}'",
    "attach '{wh}/evil.duckdb' as evil",
    "explain analyze attach '{outside}/evil.duckdb'",
    "install httpfs",
    "load httpfs",
    "set threads = 1",
    "reset threads",
    "pragma threads = 1",
    "set enable_external_access = true",
    "select 1; copy (select 1) to '{outside}/out.csv'",
    "select * from read_parquet('{outside}/*.parquet')",
    "select * from read_text('/etc/hostname')",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_known_escapes_fail_in_one_line_and_leave_every_file_as_it_was(home, tmp_path, template):
    wh = Warehouse.at_home(home)
    outside = tmp_path / "outside"
    outside.mkdir()
    pq.write_table(pa.table({"x": [1]}), outside / "t.parquet")
    query = template.format(result=wh.run_path("results", CUR), wh=wh.root, outside=outside)
    before, outside_before = _fingerprint(home), sorted(outside.iterdir())
    r = lmpipe_sql(home, query)
    assert r.returncode == 2 and r.stdout == "", (query, r.stdout)
    assert r.stderr.startswith("lmpipe: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert _fingerprint(home) == before, query
    assert sorted(outside.iterdir()) == outside_before, query


def test_a_query_past_its_time_limit_is_stopped(home):
    t0 = time.monotonic()
    r = lmpipe_sql(
        home, "--timeout", "1", "select count(*) from range(1000000000000) a, range(1000) b"
    )
    assert r.returncode == 2 and "time limit" in r.stderr and r.stderr.count("\n") == 1
    assert time.monotonic() - t0 < 20


def test_ctrl_c_interrupts_a_long_query(home):
    p = subprocess.Popen(
        [sys.executable, "-m", "lmpipe.flows.cli", "sql", "--home", str(home),
         "select count(*) from range(1000000000000) a, range(1000) b"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # wait until DuckDB computes: the child has spent CPU beyond its imports (~3 s on 2 cores),
    # however loaded the machine is
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and p.poll() is None:
        fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / ticks > 6.0:  # utime + stime
            break
        time.sleep(0.2)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=60)
    finally:
        p.kill()
        p.communicate()
    assert p.returncode == 130 and err.strip() == "lmpipe: interrupted", err
    assert time.monotonic() - t0 < 10


def test_large_results_stream_and_reading_formats_are_capped(home):
    q = "select range as i from range(25000)"
    r = lmpipe_sql(home, "--format", "csv", q)
    assert r.returncode == 0 and r.stdout.splitlines()[1:4] == ["0", "1", "2"]
    assert len(r.stdout.splitlines()) == 25001 and r.stderr == ""
    assert len(json.loads(lmpipe_sql(home, "--format", "json", q).stdout)) == 25000
    r = lmpipe_sql(home, q)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "(1000 rows)"
    assert "showing the first 1000 rows; there are more" in r.stderr
    r = lmpipe_sql(home, "--limit", "5", "--format", "json", q)
    assert [x["i"] for x in json.loads(r.stdout)] == [0, 1, 2, 3, 4] and "--limit" in r.stderr
    r = lmpipe_sql(home, "--format", "json", "select 1 as x where false")
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_read_statements_of_every_kind_run(home):
    wh = Warehouse.at_home(home)
    for q in (
        "describe results",
        "show tables",
        "summarize runs",
        "explain select * from results",
        "pragma show_tables",
        "select * from (pivot (select model, split, perplexity from results "
        "where family = 'neural') on split using first(perplexity))",
    ):
        _, rows = run_query(wh, q)
        assert rows, q


# --------------------------------------------------------------------------- the database file


def test_rebuild_and_a_moved_home(home, tmp_path):
    wh = Warehouse.at_home(home)
    wh.db_path.unlink()
    r = lmpipe_sql(home, "--rebuild")
    assert r.returncode == 0 and r.stdout.strip() == str(wh.db_path) and wh.db_path.exists()
    # a copied home's database still names the old folder: it is rebuilt for the new one
    moved = tmp_path / "moved"
    shutil.copytree(home, moved)
    _, rows = run_query(Warehouse.at_home(moved), "select count(*) from runs")
    assert rows == [(3,)]
    with pytest.raises(WarehouseError, match="no warehouse at"):
        run_query(Warehouse.at_home(tmp_path / "nowhere"), "select 1")


def test_recording_a_run_keeps_the_database_file_while_its_views_stay_the_same(home, tmp_path):
    """A new run's files show through the views' globs: rebuild_database(if_changed=True),
    what recording a run calls, leaves the file alone; a change of the views (a dataset that
    had files has none), a file not built here or ``lmpipe sql --rebuild`` build it again."""
    import duckdb

    from lmpipe.lm.warehouse import rebuild_database

    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    wh = Warehouse.at_home(copy)

    def identity() -> tuple[int, int]:
        st = wh.db_path.stat()
        return st.st_ino, st.st_mtime_ns

    def runs_in_file() -> int:
        with duckdb.connect(str(wh.db_path), read_only=True) as con:
            return con.execute("select count(*) from runs").fetchone()[0]

    rebuild_database(wh)  # the copy's own file (the copied one names the old folder)
    built = identity()
    wh.commit_run("r-extra", {"experiment": "x", "status": "completed"})
    assert rebuild_database(wh, if_changed=True) == wh.db_path
    assert identity() == built and runs_in_file() == 4  # the new run shows, same file
    shutil.rmtree(wh.root / "token_scores")  # a view that had files now has none
    rebuild_database(wh, if_changed=True)
    assert identity() != built
    built = identity()
    shutil.copy(wh.db_path, tmp_path / "db")
    os.replace(tmp_path / "db", wh.db_path)  # the same bytes, but not the file built here
    rebuild_database(wh, if_changed=True)
    assert identity() != built and runs_in_file() == 4
    built = identity()
    assert lmpipe_sql(copy, "--rebuild").returncode == 0 and identity() != built
