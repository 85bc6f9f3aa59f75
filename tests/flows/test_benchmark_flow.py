"""End to end on a small slice: the experiment flow from text to warehouse rows and report."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmpipe.lm.config import build_config
from lmpipe.lm.steps.home import Home
from lmpipe.lm.warehouse import Warehouse

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def slice_corpora(tmp_path_factory, corpora_dir_module):
    d = tmp_path_factory.mktemp("slices")
    tm = (corpora_dir_module / "timemachine.txt").read_text(encoding="utf-8").splitlines()
    (d / "tm.txt").write_text("\n".join(tm[:700]) + "\n", encoding="utf-8")
    with zipfile.ZipFile(corpora_dir_module / "jaychou_lyrics.txt.zip") as z:
        jc = z.read("jaychou_lyrics.txt").decode("utf-8").splitlines()
    (d / "jc.txt").write_text("\n".join(jc[:600]) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def corpora_dir_module():
    import os

    from tests.conftest import SHARED_CORPORA

    d = Path(os.environ.get("LMPIPE_CORPORA_DIR", SHARED_CORPORA))
    if not (d / "timemachine.txt").exists():
        pytest.skip("reference corpora not available")
    return d


@pytest.fixture(scope="module")
def finished_run(prefect_harness, slice_corpora, tmp_path_factory):
    from lmpipe.flows.benchmark import run_benchmark

    home = tmp_path_factory.mktemp("home")
    out = run_benchmark(build_config(overrides=_slice_overrides(slice_corpora)), Home(home))
    return home, out


def _slice_overrides(d: Path) -> dict:
    return {
        "name": "slice",
        "corpora": [
            {"name": "tm-slice", "path": str(d / "tm.txt"), "prefixes": ["time traveller"]},
            {"name": "jc-slice", "path": str(d / "jc.txt"), "prefixes": ["分开"]},
        ],
        "tokenizers": ["char"],
        "ngram": {"orders": [1, 2], "methods": ["add-k", "mkn"]},
        "neural": {
            "architectures": ["gru"],
            "hidden": 8,
            "epochs": 1,
            "seq_len": 16,
            "batch_size": 8,
        },
        "generation": {"length": 10},
    }


def test_run_writes_results_for_every_model_split_and_corpus(finished_run):
    home, out = finished_run
    wh = Warehouse.at_home(home)
    res = pq.read_table(wh.run_path("results", out["run_id"])).to_pandas()
    # 2 corpora x (2 methods x 2 orders + 1 neural + 1 mixture of the best n-gram and it)
    # x 2 splits
    assert len(res) == 2 * (2 * 2 + 1 + 1) * 2
    assert res["perplexity"].map(lambda x: x < float("inf")).all()
    for corpus in ("tm-slice", "jc-slice"):
        t = res[(res.corpus == corpus) & (res.split == "test") & (res.method == "mkn")].sort_values(
            "n"
        )
        assert t["perplexity"].iloc[1] < t["perplexity"].iloc[0]  # bigram beats unigram


def test_report_names_both_corpora_with_tables_and_figures(finished_run):
    home, out = finished_run
    report = Path(out["report"])
    text = report.read_text(encoding="utf-8")
    assert "## tm-slice (char tokens)" in text and "## jc-slice (char tokens)" in text
    assert "### N-gram models (perplexity)" in text and "### Neural models" in text
    for png in report.parent.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(report.parent.glob("*.png"))) >= 4
    assert (report.parent.parent / "latest.md").exists()


def test_report_rewrite_is_byte_identical(finished_run):
    home, out = finished_run
    before = Path(out["report"]).read_bytes()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmpipe.flows.cli",
            "report",
            "--home",
            str(home),
            "--run",
            out["run_id"],
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == before


def test_sql_prints_the_results_rows(finished_run):
    home, out = finished_run
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmpipe.flows.cli",
            "sql",
            "--home",
            str(home),
            "--format",
            "json",
            "select corpus, model, n, split, perplexity from results order by all",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 24 and {row["corpus"] for row in rows} == {"tm-slice", "jc-slice"}


def test_second_run_reuses_every_heavy_task_and_a_changed_size_reruns_only_that_training(
    finished_run, slice_corpora
):
    from lmpipe.flows.benchmark import run_benchmark

    home, first = finished_run
    assert any(v != "Cached" for v in first["task_states"].values())
    cfg = build_config(overrides=json.loads(json.dumps(_slice_overrides(slice_corpora))))
    again = run_benchmark(cfg, Home(home))
    assert again["executed"] == [], again["task_states"]
    assert again["run_id"] != first["run_id"]
    wh = Warehouse.at_home(home)
    a = (
        pq.read_table(wh.run_path("results", first["run_id"]))
        .to_pandas()
        .sort_values(["corpus", "model", "n", "split"])
    )
    b = (
        pq.read_table(wh.run_path("results", again["run_id"]))
        .to_pandas()
        .sort_values(["corpus", "model", "n", "split"])
    )
    assert a["perplexity"].tolist() == b["perplexity"].tolist()
    # one architecture's hidden size changed: only its trainings run again
    over = _slice_overrides(slice_corpora)
    over["neural"]["architectures"] = ["gru", "rnn"]
    over["neural"]["overrides"] = {"rnn": {"hidden": 6}}
    third = run_benchmark(build_config(overrides=over), Home(home))
    # (and the mixtures it is part of: with the best n-gram model, and with it and the gru)
    assert third["executed"] == sorted(
        f"{what} {corpus}/char"
        for corpus in ("jc-slice", "tm-slice")
        for what in ("rnn train", "mix mkn2+rnn", "mix mkn2+gru+rnn")
    ), third["task_states"]


@pytest.mark.slow
def test_dask_runner_gives_the_thread_runners_results(finished_run, slice_corpora, tmp_path):
    from lmpipe.flows.benchmark import run_benchmark

    home, first = finished_run
    out = run_benchmark(
        build_config(overrides=_slice_overrides(slice_corpora)),
        Home(tmp_path / "dask-home"),
        runner="dask",
    )
    key = ["corpus", "model", "n", "split"]
    a = pq.read_table(Warehouse.at_home(home).run_path("results", first["run_id"])).to_pandas()
    b = pq.read_table(
        Warehouse.at_home(tmp_path / "dask-home").run_path("results", out["run_id"])
    ).to_pandas()
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert a[key].fillna(-1).values.tolist() == b[key].fillna(-1).values.tolist()
    assert (
        a["perplexity"].tolist() == b["perplexity"].tolist()
    )  # exactly, neural included (CPU, seeded)
    # the workers reported their task runs to this process's API, not to servers of their own
    trainings = _task_runs(out["flow_run_id"], "train")
    cfg = build_config(overrides=_slice_overrides(slice_corpora))
    assert len(trainings) == len(cfg.corpora) * len(cfg.neural.architectures)
    assert {t.state.type.value for t in trainings} == {"COMPLETED"}


def _task_runs(flow_run_id: str, task_name: str) -> list:
    import asyncio
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> list:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
            )
        return [r for r in runs if r.name.startswith(f"{task_name} ")]

    return asyncio.run(read())


def test_the_reports_train_command_reproduces_its_row(finished_run):
    """The report prints, for each neural row, the ``lmpipe train`` command with exactly its
    settings: run as printed, it trains the same model to the same figures (found again by
    content: the same model key)."""
    import re
    import shlex

    home, out = finished_run
    text = Path(out["report"]).read_text(encoding="utf-8")
    commands = re.findall(r"^lmpipe train .*$", text, re.M)
    assert len(commands) == 2, text  # one neural model on each corpus
    command = next(c for c in commands if "tm.txt" in c)
    argv = shlex.split(command)
    assert "--text" in argv and argv[argv.index("--arch") + 1] == "gru"
    r = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", *argv[1:], "--home", str(home), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    res = pq.read_table(Warehouse.at_home(home).run_path("results", out["run_id"])).to_pandas()
    row = res[(res.corpus == "tm-slice") & (res.model == "gru") & (res.split == "test")].iloc[0]
    assert again["cached"] is True, command  # the same settings: the run's own training
    assert again["perplexity"] == row["perplexity"]


@pytest.mark.slow  # 26 s: a whole tuning; the default suite keeps under its time budget
def test_tuning_halves_the_candidates_on_validation_and_trains_the_winner(
    prefect_harness, slice_corpora, tmp_path
):
    from lmpipe.flows.benchmark import run_benchmark

    over = _slice_overrides(slice_corpora)
    over["corpora"] = over["corpora"][:1]
    over["ngram"] = {"orders": [1], "methods": ["mkn"]}
    over["neural"]["epochs"] = 3
    over["neural"]["tune"] = {"search": {"hidden": [4, 6, 8], "lr": [0.003, 0.01]}, "rungs": [1, 2]}
    out = run_benchmark(build_config(overrides=over), Home(tmp_path / "h"))
    res = pq.read_table(
        Warehouse.at_home(tmp_path / "h").run_path("results", out["run_id"])
    ).to_pandas()
    cand = res[res.role == "candidate"]
    assert set(cand.split) == {"valid"}  # test is never touched by the search
    first, second = cand[cand.epochs == 1], cand[cand.epochs == 2]
    assert len(first) == 6 and len(second) == 3  # eta 2: the best half goes on
    best3 = set(first.nsmallest(3, "perplexity")["model_key"])
    survivors = {json.loads(s)["hidden"] * 100 + json.loads(s)["lr"] for s in second.settings_json}
    assert survivors == {
        json.loads(s)["hidden"] * 100 + json.loads(s)["lr"]
        for s in first[first.model_key.isin(best3)].settings_json
    }
    final = res[(res.role == "final") & (res.family == "neural")]
    assert set(final.split) == {"valid", "test"} and (final.epochs <= 3).all()
    winner = json.loads(second.nsmallest(1, "perplexity").iloc[0]["settings_json"])
    chosen = json.loads(final.iloc[0]["settings_json"])
    assert (chosen["hidden"], chosen["lr"]) == (winner["hidden"], winner["lr"])
    report = Path(out["report"]).read_text(encoding="utf-8")
    assert "### Tuning" in report and "chosen" in report


def test_every_task_run_carries_the_runs_tags_and_no_others(finished_run):
    """One tag set for all task runs (the run's own: experiment, corpora, tokenizers, runner).
    Prefect acquires tag concurrency slots for each task run with tags, through one lease
    service per distinct set; a new set stalled its first task run about 2 s (docs/prefect.md),
    every phase of a cached re-run paying it once."""
    import asyncio
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    _, out = finished_run

    async def read() -> tuple:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(out["flow_run_id"]))
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
            )
        return run, tasks

    run, tasks = asyncio.run(read())
    assert len(tasks) > 10
    assert {frozenset(t.tags) for t in tasks} == {frozenset(run.tags)}


def test_the_ui_shows_a_named_tagged_run_and_its_report_with_figures_embedded(finished_run):
    """What the Prefect UI shows of a run: its name (experiment and date), its tags, and the
    report artifacts (one per corpus) with every figure embedded, none a relative file link."""
    import asyncio
    import re
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    home, out = finished_run

    async def read() -> tuple:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(out["flow_run_id"]))
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(out["flow_run_id"])])
                )
            )
        return run, arts

    run, arts = asyncio.run(read())
    assert re.fullmatch(r"slice \d{4}-\d{2}-\d{2} \d{2}:\d{2}", run.name), run.name
    assert {"lmpipe", "experiment:slice", "corpus:tm-slice", "corpus:jc-slice"} <= set(run.tags)
    reports = {a.key: a.data for a in arts if a.type == "markdown" and a.key != "ppl-report-file"}
    assert set(reports) == {"ppl-report-slice", "ppl-report-slice-tm-slice-char",
                            "ppl-report-slice-jc-slice-char"}  # fmt: skip
    images = [
        m.group(1) for d in reports.values() for m in re.finditer(r"!\[[^\]]*\]\(([^)]+)\)", d)
    ]
    figures = list(Path(out["report"]).parent.glob("*.png"))
    assert len(images) == len(figures) > 0
    assert all(i.startswith("data:image/png;base64,") for i in images)
