"""Deployments: the experiment flow (and the single-model flows) served on a schedule.

``lmpipe serve`` registers them with the Prefect API that ``PREFECT_API_URL`` names and keeps
serving: scheduled and UI-triggered runs execute in this process. Without a long-lived server,
Prefect would start a temporary one that the UI cannot see, so serve insists on the URL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, serve
from prefect.schedules import Cron

from lmpipe.flows.runners import make_runner
from lmpipe.lm.config import ExperimentConfig
from lmpipe.lm.errors import ConfigError


def _scheduled_name() -> str:
    from lmpipe.flows.benchmark import run_name

    return run_name(" (scheduled)")


@flow(name="scheduled-benchmark", flow_run_name=_scheduled_name)
def scheduled_benchmark(
    config: dict[str, Any], home: str, runner: str = "thread"
) -> dict[str, Any]:
    """The experiment as a deployment parameter set; the task runner is chosen per run, so the
    work runs in a subflow that gets it (a flow's runner is fixed before its parameters)."""
    from lmpipe.flows.benchmark import perplexity_benchmark

    return perplexity_benchmark.with_options(task_runner=make_runner(runner))(
        config=config, home=home
    )


def deployments(cfg: ExperimentConfig, home: Path, runner: str = "thread") -> list[Any]:
    """The scheduled experiment, and each step flow as an unscheduled deployment that the UI or
    ``prefect deployment run`` can trigger with its own parameters."""
    from lmpipe.flows.benchmark import run_tags
    from lmpipe.flows.steps import counts_flow, ingest_flow, ngram_flow, report_flow, train_flow

    params = {"config": cfg.model_dump(mode="json"), "home": str(home), "runner": runner}
    steps = [
        f.to_deployment(
            name=f"{cfg.name}-{f.name}", parameters={"home": str(home)}, tags=["lmpipe", "step"]
        )
        for f in (ingest_flow, counts_flow, ngram_flow, train_flow, report_flow)
    ]
    return [
        *steps,
        scheduled_benchmark.to_deployment(
            name=f"{cfg.name}-nightly",
            schedules=[Cron(cfg.schedule.cron, timezone=cfg.schedule.timezone)],
            parameters=params,
            concurrency_limit=1,
            tags=[*run_tags(cfg), "nightly"],
            description=(
                f"lmpipe experiment {cfg.name!r} on schedule {cfg.schedule.cron} "
                f"({cfg.schedule.timezone})"
            ),
        ),
    ]


def serve_all(cfg: ExperimentConfig, home: Path, runner: str = "thread") -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "lmpipe serve needs a Prefect server: run `prefect server start --host 127.0.0.1 "
            "--port 4200 --analytics-off` and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    serve(*deployments(cfg, home, runner), pause_on_shutdown=False, limit=1)
