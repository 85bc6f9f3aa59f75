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


@task(name="clean-warehouse")
def clean(home: dict[str, Any]) -> list[str]:
    """Remove what killed runs left behind (their temporary files and uncommitted rows)."""
    return clean_debris(Home.from_dict(home).warehouse)


@task(name="record-run", task_run_name="record run {run_id}")
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


@task(name="report", task_run_name="report {run_id}")
def publish_report(home: dict[str, Any], run_id: str) -> str:
    """Write the report file, then publish it as Markdown artifacts (an overview and one per
    corpus, figures embedded: ``lmpipe.lm.report.artifacts``), a table of every model and a
    link to the file."""
    from lmpipe.lm.report.artifacts import report_artifacts

    h = Home.from_dict(home)
    data = report.load_run(h.warehouse, run_id)
    path = report.write_report_of(h.warehouse, h.reports_dir, data)
    for a in report_artifacts(path, str(data.run["experiment"]), run_id):
        create_markdown_artifact(a.markdown, key=a.key, description=a.description)
    create_table_artifact(
        table_rows(data.results), key="ppl-table", description=f"models of run {run_id}"
    )
    create_link_artifact(
        path.resolve().as_uri(),
        link_text=str(path),
        key="ppl-report-file",
        description="the report on disk",
    )
    return str(path)


def _value(x: Any, digits: int | None = None) -> Any:
    """A warehouse number for a table cell: None for a missing one, rounded when asked."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return int(x) if digits is None else round(float(x), digits)


def table_rows(results: Any) -> list[dict[str, Any]]:
    """One row per model (valid and test side by side), the columns a person scans first,
    rounded for reading; best test perplexity first within each corpus."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _, r in results.iterrows():
        row = rows.setdefault(
            (r["corpus"], r["tokenizer"], r["model_key"]),
            {
                "corpus": r["corpus"],
                "tokenizer": r["tokenizer"],
                "family": r["family"],
                "model": r["model"],
                "n": _value(r["n"]),
                "valid ppl": None,
                "test ppl": None,
                "test bits/byte": None,
                "parameters": _value(r["parameters"]),
                "train s": _value(r["train_seconds"], 1),
            },
        )
        row[f"{r['split']} ppl"] = _value(r["perplexity"], 3)
        if r["split"] == "test":
            row["test bits/byte"] = _value(r["bits_per_byte"], 4)
    return sorted(
        rows.values(),
        key=lambda x: (x["corpus"], x["tokenizer"], x["test ppl"] is None, x["test ppl"] or 0.0),
    )
