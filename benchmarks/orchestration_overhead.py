"""Orchestration figures of the default experiment, each from scratch in a fresh home:

1. the same work called directly through ``lm/`` (no Prefect),
2. ``lmpipe run`` (the Prefect flow, thread runner) — the overhead ratio is 2 / 1 (aim < 1.10),
3. ``lmpipe run`` again, unchanged, in the same home: it must execute no heavy task (<= 1/10 of 2),
4. optionally ``lmpipe run --runner dask`` (2-worker local cluster): results must equal 2's exactly.

    python benchmarks/orchestration_overhead.py [--profile quick|full] [--skip-direct] [--dask]
        [--set KEY=VALUE ...]

The quick profile is the default experiment, what ``lmpipe run`` runs.

Runs 2-4 are CLI subprocesses, as a user runs them (Prefect's temporary server start included).
Writes benchmarks/results/orchestration_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from lmpipe.lm.config import build_config
from lmpipe.lm.report import write_report
from lmpipe.lm.steps.counts import count_ngrams
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.ingest import ingest_corpus
from lmpipe.lm.steps.neural import train_neural
from lmpipe.lm.steps.ngram import evaluate_ngram
from lmpipe.lm.steps.record import new_run_id, record_run
from lmpipe.lm.warehouse import Warehouse


def direct(cfg, home: Path) -> float:
    t0 = time.perf_counter()
    h = Home(home)
    started = datetime.now(UTC)
    ingests, results = [], []
    for corpus in cfg.corpora:
        for tok in cfg.tokenizers_for(corpus):
            ing = ingest_corpus(h, corpus.model_dump(), tok, cfg.vocab.model_dump())
            ingests.append(ing)
            count_ngrams(h, ing, max(cfg.ngram.orders))
            for method in cfg.ngram.methods:  # the flow's own per-method parameters
                for n in cfg.ngram.orders:
                    params = cfg.ngram.params(method)
                    results.append((ing, evaluate_ngram(h, ing, method, n, params)))
            for arch in cfg.neural.architectures:
                results.append(
                    (
                        ing,
                        train_neural(
                            h,
                            ing,
                            cfg.neural.for_arch(arch, cfg.corpus(corpus.name).neural_defaults()),
                            cfg.generation.model_dump(),
                        ),
                    )
                )
    run_id = new_run_id()
    record_run(
        h.warehouse,
        run_id,
        cfg.name,
        "benchmark",
        cfg.model_dump(mode="json"),
        started,
        ingests,
        results,
    )
    write_report(h.warehouse, h.reports_dir, run_id)
    return time.perf_counter() - t0


def cli_run(home: Path, args: list[str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", "run", "--home", str(home), "--json", *args],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"lmpipe run failed: {r.stderr[-2000:]}")
    return wall, json.loads(r.stdout.strip().splitlines()[-1])


def results_of(home: Path, run_id: str) -> list[tuple]:
    t = pq.read_table(Warehouse.at_home(home).run_path("results", run_id)).to_pandas()
    t = t.sort_values(["corpus", "model", "n", "split"])
    return [
        tuple(x)
        for x in t[["corpus", "model", "n", "split", "perplexity"]].fillna(-1).values.tolist()
    ]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profile", default="quick", help="quick (lmpipe run's default) or full")
    ap.add_argument("--skip-direct", action="store_true", help="only the flow and its re-run")
    ap.add_argument("--dask", action="store_true", help="also run with --runner dask and compare")
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = ap.parse_args()
    from lmpipe.flows.cli.common import parse_set

    cfg = build_config(None, args.profile, parse_set(args.set))
    extra = ["--profile", args.profile] + [f"--set={s}" for s in args.set]
    out: dict = {"profile": args.profile, "overrides": args.set}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        if not args.skip_direct:
            out["direct_seconds"] = direct(cfg, tmp_p / "direct")
        out["flow_seconds"], first = cli_run(tmp_p / "flow", extra)
        out["rerun_seconds"], again = cli_run(tmp_p / "flow", extra)
        out["rerun_executed"] = again["executed"]
        if "direct_seconds" in out:
            out["overhead_ratio"] = out["flow_seconds"] / out["direct_seconds"]
        out["rerun_ratio"] = out["rerun_seconds"] / out["flow_seconds"]
        out["rerun_results_equal"] = results_of(tmp_p / "flow", first["run_id"]) == results_of(
            tmp_p / "flow", again["run_id"]
        )
        if args.dask:
            out["dask_seconds"], d = cli_run(tmp_p / "dask", [*extra, "--runner", "dask"])
            out["dask_results_equal"] = results_of(tmp_p / "flow", first["run_id"]) == results_of(
                tmp_p / "dask", d["run_id"]
            )
    for k, v in out.items():
        print(f"{k:22s} {v:.3f}" if isinstance(v, float) else f"{k:22s} {v}")
    dest = Path(__file__).parent / "results" / "orchestration_overhead.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
