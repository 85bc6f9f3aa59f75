"""``lmpipe report``, ``lmpipe sql`` and ``lmpipe check``: reading (and repairing) the
warehouse. None of them imports Prefect or torch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lmpipe.flows.cli.common import (
    DebugOpt,
    HomeOpt,
    JsonOpt,
    app,
    emit_json,
    home_of,
)
from lmpipe.flows.interrupts import exit_on_interrupt
from lmpipe.lm.errors import ConfigError, WarehouseError


@app.command()
def report(
    run_id: Annotated[
        str | None, typer.Option("--run", help="Run to report (default: the newest).")
    ] = None,
    home: HomeOpt = Path("."),
    debug: DebugOpt = False,
) -> None:
    """(Re)write a run's report from the warehouse alone."""
    from lmpipe.lm import report as rep

    h = home_of(home, debug)
    run_id = run_id or rep.newest_run(h.warehouse)
    path = rep.write_report(h.warehouse, h.reports_dir, run_id)
    typer.echo(str(path))


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One read-only SQL statement over the views.")] = "",
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")] = "table",
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            help="Print at most this many rows [default: 1000 for table and markdown, every "
            "row for csv and json, which stream].",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Stop the query after this many seconds (0 = no limit)."),
    ] = 300.0,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Rebuild data/lmpipe.duckdb, the file of views for DuckDB's own tools, first.",
        ),
    ] = False,
    home: HomeOpt = Path("."),
    debug: DebugOpt = False,
) -> None:
    """Query the warehouse views (read-only): runs, corpora, splits, vocab, tokens, ngram_ids,
    ngrams, results, epochs, samples, benchmarks."""
    from lmpipe.lm.query import FORMATS, stream_query, write_result
    from lmpipe.lm.warehouse import rebuild_database

    h = home_of(home, debug)
    exit_on_interrupt()  # a query runs in DuckDB's C code: see lmpipe.flows.interrupts
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more (got {limit})")
    if timeout < 0:
        raise ConfigError(f"--timeout must be 0 (no limit) or more seconds (got {timeout})")
    if rebuild:
        if not h.warehouse.root.is_dir():
            raise ConfigError(f"no warehouse at {h.warehouse.root}: run `lmpipe run` there first")
        path = rebuild_database(h.warehouse)
        if not query.strip():
            typer.echo(str(path))
            return
    if not query.strip():
        raise ConfigError('give a query, e.g. lmpipe sql "select * from results limit 5"')
    result = stream_query(h.warehouse, query, timeout=timeout or None)
    shown, more = write_result(result, fmt, sys.stdout.write, limit)
    sys.stdout.flush()
    if more:
        typer.echo(
            f"lmpipe: note: showing the first {shown} rows; there are more (--limit N shows N, "
            "--format csv or json streams every row)",
            err=True,
        )


@app.command()
def check(
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove damaged, temporary and orphaned files.")
    ] = False,
    home: HomeOpt = Path("."),
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Verify the warehouse: every dataset readable, row counts as recorded, nothing
    half-written or orphaned."""
    from lmpipe.lm.check import check_warehouse

    h = home_of(home, debug)
    if not h.warehouse.root.is_dir():
        raise WarehouseError(
            f"no warehouse at {h.warehouse.root}: nothing to check; give the --home of a run "
            "(or run `lmpipe run` there first)"
        )
    report_ = check_warehouse(h.warehouse, repair=repair)
    if json_out:
        emit_json(report_.as_dict())
    else:
        for line in report_.lines():
            typer.echo(line)
    if report_.problems and not repair:
        raise typer.Exit(1)


@app.command()
def mix(
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run", help="Run whose models to mix (default: the newest run of an experiment)."
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="A model to mix, as mixtures name them (mkn5, kn3, gru) or its model key; "
            "twice or more [default: the best n-gram model with each neural model, and with "
            "all of them].",
        ),
    ] = None,
    corpus: Annotated[
        str | None, typer.Option("--corpus", help="Only this corpus of the run.")
    ] = None,
    json_out: JsonOpt = False,
    home: HomeOpt = Path("."),
    debug: DebugOpt = False,
) -> None:
    """Interpolate stored models of a run (weights by EM on validation); recorded as a new run."""
    from datetime import UTC, datetime

    from lmpipe.lm import report as rep
    from lmpipe.lm.steps.mixture import mix_run
    from lmpipe.lm.steps.record import new_run_id, record_run

    h = home_of(home, debug)
    exit_on_interrupt()
    started = datetime.now(UTC)
    source = run_id or rep.newest_run(h.warehouse, kinds=("benchmark",))
    if model is not None and len(model) == 1:
        raise ConfigError("--model: give two or more models to mix (or none for the defaults)")
    mixed = mix_run(h, source, model or (), corpus)
    new = new_run_id(started)
    config = {"source_run": source, "models": model or [], "corpus": corpus}
    ingests = list({ing.key + ing.tokenizer: ing for ing, _ in mixed}.values())
    record_run(h.warehouse, new, f"mix-{source}", "mix", config, started, ingests, mixed)
    rows = [
        {
            "corpus": ing.corpus,
            "tokenizer": ing.tokenizer,
            "mixture": r["model"],
            "weights": {p["model"]: round(p["weight"], 6) for p in r["params"]["components"]},
            **{f"{s}_perplexity": r["metrics"][s]["perplexity"] for s in r["metrics"]},
            "model_key": r["model_key"],
        }
        for ing, r in mixed
        if r["family"] == "mixture"
    ]
    if json_out:
        emit_json({"run_id": new, "source_run": source, "mixtures": rows})
        return
    for r in rows:
        weights = ", ".join(f"{k} {v:.3f}" for k, v in r["weights"].items())
        ppl = ", ".join(
            f"{s} ppl {r[f'{s}_perplexity']:.3f}"
            for s in ("valid", "test")
            if f"{s}_perplexity" in r
        )
        typer.echo(f"{r['corpus']}/{r['tokenizer']} {r['mixture']}: {ppl} (weights {weights})")
    typer.echo(f"run {new} recorded (lmpipe sql \"select * from results where run_id = '{new}'\")")
