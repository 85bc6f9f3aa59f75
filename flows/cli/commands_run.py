"""``lmpipe run`` (the experiment flow) and ``lmpipe serve`` (its deployments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lmpipe.flows.cli.common import (
    CorporaDirOpt,
    DebugOpt,
    EngineOpt,
    HomeOpt,
    JsonOpt,
    MemoryLimitOpt,
    SpillDirOpt,
    State,
    app,
    call_flow,
    emit_json,
    home_of,
    parse_set,
    prefect_env,
    start_prefect,
)
from lmpipe.flows.interrupts import exit_on_interrupt
from lmpipe.lm.errors import ConfigError

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Experiment TOML file.", dir_okay=False)
]
ProfileOpt = Annotated[str, typer.Option("--profile", help="quick (minutes) or full (hours).")]
RunnerOpt = Annotated[str, typer.Option("--runner", help="Task runner: thread or dask.")]


def experiment(
    config: Path | None,
    profile: str,
    sets: list[str] | None,
    corpus: list[str] | None = None,
    memory_limit: str | None = None,
    engine: str | None = None,
) -> Any:
    """The experiment's configuration: defaults < profile < TOML file < ``--set`` < the
    dedicated options (``--corpus``, ``--memory-limit``, ``--engine``)."""
    from lmpipe.lm.config import build_config

    overrides = parse_set(sets or [])
    if corpus:
        overrides["corpora"] = [{"name": c} for c in corpus]
    ngram = {k: v for k, v in (("memory_limit", memory_limit), ("engine", engine)) if v}
    if ngram:
        overrides.setdefault("ngram", {}).update(ngram)
    return build_config(config, profile, overrides)


@app.command()
def run(
    config: ConfigOpt = None,
    profile: ProfileOpt = "quick",
    corpus: Annotated[
        list[str] | None,
        typer.Option("--corpus", help="Corpus name (repeatable); replaces the config's list."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value, e.g. neural.hidden=256 (repeatable)."),
    ] = None,
    runner: RunnerOpt = "thread",
    dask_address: Annotated[
        str | None,
        typer.Option("--dask-address", help="Existing Dask scheduler, e.g. tcp://host:8786."),
    ] = None,
    memory_limit: MemoryLimitOpt = None,
    engine: EngineOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress display: only the last line.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print Prefect's whole run log too.")
    ] = False,
    home: HomeOpt = Path("."),
    corpora_dir: CorporaDirOpt = None,
    spill_dir: SpillDirOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run the perplexity benchmark flow over the experiment's corpora, n values and
    architectures, ending in a report."""
    cfg = experiment(config, profile, set_, corpus, memory_limit, engine)
    h = home_of(home, debug, True, corpora_dir, spill_dir)
    start_prefect(h, verbose)  # before Prefect's import (runners): the server boots meanwhile
    from lmpipe.flows.runners import RUNNERS
    from lmpipe.lm.steps.preflight import check_experiment

    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}; choose one of: {', '.join(RUNNERS)}")
    exit_on_interrupt()
    check_experiment(cfg, h)
    from lmpipe.flows.console import ConsoleProgress
    from lmpipe.tasks.progress import Progress, reporting

    shown = Progress() if quiet or json_out else ConsoleProgress()
    with reporting(shown):
        out = call_flow(
            h, "lmpipe.flows.benchmark", "run_benchmark",
            cfg=cfg, home=h, runner=runner, dask_address=dask_address,
            verbose=verbose or State.debug,
        )  # fmt: skip
    if json_out:
        emit_json(out)
    else:
        typer.echo(f"run {out['run_id']} done; report: {out['report']}")


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Experiment TOML (its [schedule] gives the cron).", dir_okay=False
        ),
    ] = None,
    profile: ProfileOpt = "quick",
    cron: Annotated[
        str | None, typer.Option("--cron", help="Override the schedule, e.g. '0 3 * * *'.")
    ] = None,
    runner: RunnerOpt = "thread",
    home: HomeOpt = Path("."),
    corpora_dir: CorporaDirOpt = None,
    spill_dir: SpillDirOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Register the deployments with their schedules and serve them (needs PREFECT_API_URL
    for the UI)."""
    cfg = experiment(config, profile, [f"schedule.cron={cron!r}"] if cron else None)
    h = home_of(home, debug, True, corpora_dir, spill_dir)
    prefect_env(h)
    from lmpipe.flows.deployments import serve_all

    serve_all(cfg, h.root, runner)
