"""Tasks that record a run in the warehouse and publish its report (file + UI artifacts)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from lmpipe.lm import report
from lmpipe.lm.check import clean_debris
from lmpipe.lm.ingest import IngestResult
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.record import record_run


@task(name="clean-warehouse", tags=["warehouse"])
def clean(home: dict[str, Any]) -> list[str]:
    """Remove what killed runs left behind (their temporary files and uncommitted rows)."""
    return clean_debris(Home.from_dict(home).warehouse)


@task(name="record-run", task_run_name="record run {run_id}", tags=["warehouse"])
def record(
    home: dict[str, Any],
    run_id: str,
    experiment: str,
    config: dict[str, Any],
    started: datetime,
    ingests: list[dict[str, Any]],
    results: list[tuple[dict[str, Any], dict[str, Any]]],
    kind: str = "benchmark",
) -> dict[str, int]:
    by_key = {i["key"] + i["tokenizer"]: IngestResult.from_dict(i) for i in ingests}
    return record_run(
        Home.from_dict(home).warehouse,
        run_id,
        experiment,
        kind,
        config,
        started,
        by_key.values(),
        [(by_key[i["key"] + i["tokenizer"]], r) for i, r in results],
    )


@task(name="report", task_run_name="report {run_id}", tags=["report"])
def publish_report(home: dict[str, Any], run_id: str) -> str:
    h = Home.from_dict(home)
    path = report.write_report(h.warehouse, h.reports_dir, run_id)
    data = report.load_run(h.warehouse, run_id)
    text, _ = report.render(data, fig_prefix=str(path.parent) + "/")
    key = "ppl-report-" + "".join(
        ch if ch.isalnum() else "-" for ch in str(data.run["experiment"]).lower()
    )
    create_markdown_artifact(text, key=key[:100], description=f"report of run {run_id}: {path}")
    rows = []
    for _, r in data.results.iterrows():
        rows.append(
            {
                "corpus": r["corpus"],
                "tokenizer": r["tokenizer"],
                "family": r["family"],
                "model": r["model"],
                "n": None
                if r["n"] is None or (isinstance(r["n"], float) and math.isnan(r["n"]))
                else int(r["n"]),
                "split": r["split"],
                "perplexity": float(r["perplexity"]),
                "bits_per_byte": float(r["bits_per_byte"]),
            }
        )
    create_table_artifact(rows, key="ppl-table", description=f"perplexity results of run {run_id}")
    create_link_artifact(
        path.resolve().as_uri(),
        link_text=str(path),
        key="ppl-report-file",
        description="the report on disk",
    )
    return str(path)
