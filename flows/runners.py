"""Task runners chosen at run time: threads by default, a Dask cluster when named."""

from __future__ import annotations

import os

from prefect.task_runners import ThreadPoolTaskRunner

from lmpipe.lm.errors import ConfigError

RUNNERS = ("thread", "dask")
LOCAL_WORKERS = 2


def torch_threads(kind: str, dask_address: str | None = None) -> int | None:
    """Each training's torch threads: all the cores with the thread runner (None), a local
    Dask worker's share of them (no oversubscription), a remote cluster's workers' own default."""
    if kind == "dask" and not dask_address:
        return max(1, (os.cpu_count() or 2) // LOCAL_WORKERS)
    return None


def api_url_for_workers() -> str:
    """The API that this process's flow runs report to, for worker processes to report to too.

    Without ``PREFECT_API_URL`` Prefect starts a temporary server on first use; each Dask worker
    would then start its own on the same database (slow, and "database is locked"). So start
    this process's temporary server now (Prefect's own singleton, which its client then reuses)
    and hand its address to the workers.
    """
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:
        return url
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server.api_url


def make_runner(kind: str = "thread", dask_address: str | None = None, workers: int | None = None):
    """``thread``: a bounded thread pool; ``dask``: a local 2-worker cluster (one thread each,
    so trainings in different processes stay deterministic) or the cluster at ``dask_address``."""
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=workers or max(2, os.cpu_count() or 2))
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise ConfigError(
                "--runner dask needs prefect-dask; install it with: pip install 'lmpipe[dask]'"
            ) from None
        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": workers or LOCAL_WORKERS,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
                "env": {"PREFECT_API_URL": api_url_for_workers()},
            }
        )
    raise ConfigError(f"unknown runner {kind!r}; choose one of: {', '.join(RUNNERS)}")
