"""Recording a run in the warehouse: its rows in every per-run dataset, then its commit record.

The commit record (``runs``) is written last and carries the row count of each dataset, so
that readers only ever see complete runs and ``lmpipe check`` can verify them.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from lmpipe.lm.fileio import atomic_write_text
from lmpipe.lm.ingest import IngestResult
from lmpipe.lm.version import code_version
from lmpipe.lm.warehouse import Warehouse, rebuild_database

RUN_DATASETS = ("corpora", "splits", "results", "epochs", "samples")


class Labelled(Protocol):
    """What names a result's rows: an ``IngestResult``, or a text scored with an outside model
    (:class:`lmpipe.lm.steps.score_arpa.ScoredText`)."""

    @property
    def corpus(self) -> str: ...

    @property
    def tokenizer(self) -> str: ...


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def result_rows(experiment: str, ing: Labelled, result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per evaluated split of one model result (docs/design.md §3 figures)."""
    rows = []
    for split, m in result["metrics"].items():
        rows.append(
            {
                "experiment": experiment,
                "corpus": ing.corpus,
                "tokenizer": ing.tokenizer,
                "family": result["family"],
                "model": result["model"],
                "method": result["method"],
                "n": result.get("n"),
                "split": split,
                "tokens": m["tokens"],
                "oov": m["oov"],
                "oov_rate": m["oov_rate"],
                "zero_prob": m["zero_prob"],
                "nats": m["nats"],
                "perplexity": m["perplexity"],
                "perplexity_excluding_oov": m["perplexity_excluding_oov"],
                "bits_per_token": m["bits_per_token"],
                "bits_per_byte": m["bits_per_byte"],
                "bytes": m["bytes"],
                "parameters": result.get("parameters"),
                "train_seconds": result.get("train_seconds"),
                "eval_seconds": result.get("eval_seconds"),
                "tokens_per_second": result.get("tokens_per_second"),
                "epochs": result.get("epochs_run"),
                "device": result.get("device", "cpu"),
                "model_key": result.get("model_key"),
                "settings_json": json.dumps(result.get("params", {}), sort_keys=True),
                "role": result.get("role", "final"),
            }
        )
    return rows


def record_run(
    wh: Warehouse,
    run_id: str,
    experiment: str,
    kind: str,
    config: dict[str, Any],
    started_at: datetime,
    ingests: Iterable[IngestResult],
    results: Iterable[tuple[Labelled, dict[str, Any]]],
) -> dict[str, int]:
    """Write every per-run dataset for ``run_id``, then commit it and refresh the views."""
    ingests = list(ingests)
    results = list(results)
    rows: dict[str, list[dict[str, Any]]] = {d: [] for d in RUN_DATASETS}
    for ing in ingests:
        rows["corpora"].append(
            {
                "corpus": ing.corpus,
                "tokenizer": ing.tokenizer,
                "data_key": ing.key,
                "origin": ing.origin,
                "sha256": ing.sha256,
                "normalize": str(ing.settings.get("normalize", "none")),
                "min_freq": int(str(ing.settings.get("min_freq", 1))),
                "vocab_size": ing.vocab_size,
                "replaced_bytes": ing.replaced,
            }
        )
        for split, st in ing.splits.items():
            rows["splits"].append(
                {
                    "corpus": ing.corpus,
                    "tokenizer": ing.tokenizer,
                    "split": split,
                    "lines": st.lines,
                    "tokens": st.tokens,
                    "types": st.types,
                    "oov": st.oov,
                    "oov_rate": st.oov_rate,
                    "bytes": st.bytes,
                }
            )
    for ing, result in results:
        rows["results"].extend(result_rows(experiment, ing, result))
        base = {
            "corpus": ing.corpus,
            "tokenizer": ing.tokenizer,
            "model": result["model"],
            "model_key": result.get("model_key"),
        }
        for e in result.get("epochs", []):
            rows["epochs"].append(
                {
                    **base,
                    "epoch": e["epoch"],
                    "train_perplexity": e.get("train_perplexity"),
                    "valid_perplexity": e.get("valid_perplexity"),
                    "learning_rate": e.get("learning_rate"),
                    "grad_norm": e.get("grad_norm"),
                    "tokens_per_second": e.get("tokens_per_second"),
                    "seconds": e.get("seconds"),
                }
            )
        for s in result.get("samples", []):
            rows["samples"].append({**base, **s})
    marker = wh.root / ".inflight" / f"{run_id}.pid"
    atomic_write_text(marker, str(os.getpid()))
    counts = {d: wh.write_run_rows(d, run_id, r) for d, r in rows.items()}
    finished = datetime.now(UTC)
    wh.commit_run(
        run_id,
        {
            "experiment": experiment,
            "kind": kind,
            "started_at": started_at,
            "finished_at": finished,
            "wall_seconds": (finished - started_at).total_seconds(),
            "status": "completed",
            "config_json": json.dumps(config, sort_keys=True),
            "code_version": code_version(),
            "environment_json": environment_json(),
            "row_counts_json": json.dumps(counts, sort_keys=True),
        },
    )
    marker.unlink(missing_ok=True)
    rebuild_database(wh, if_changed=True)
    return counts


def environment_json() -> str:
    """Versions and machine facts for the reproducibility block. Package versions come from
    their metadata, so recording a run never pays for importing torch."""
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    for pkg in ("torch", "numpy", "pandas", "pyarrow", "duckdb", "prefect"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    torch = sys.modules.get("torch")
    info["cuda"] = bool(torch is not None and torch.cuda.is_available())
    return json.dumps(info, sort_keys=True)
