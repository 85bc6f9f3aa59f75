"""Orchestration overhead: the default experiment through the Prefect flow against the same work
called directly through ``lm`` (no Prefect), both from scratch in fresh homes, in one process.

    python benchmarks/orchestration_overhead.py [--profile quick] [--set neural.epochs=2 ...]

Prints the two wall times and their ratio (aim: under 1.10) and writes
benchmarks/results/orchestration_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from lm.config import build_config
from lm.pipeline import Home, count_ngrams, evaluate_ngram, ingest_corpus, train_neural
from lm.record import new_run_id, record_run
from lm.report import write_report


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
            for method in cfg.ngram.methods:
                params = {"k": cfg.ngram.k} if method == "add-k" else (
                    {"discount_fallback": cfg.ngram.discount_fallback} if method == "mkn" else {})
                for n in cfg.ngram.orders:
                    results.append((ing, evaluate_ngram(h, ing, method, n, params)))
            for arch in cfg.neural.architectures:
                results.append((ing, train_neural(h, ing, cfg.neural.for_arch(arch), cfg.generation.model_dump())))
    run_id = new_run_id()
    record_run(h.warehouse, run_id, cfg.name, "benchmark", cfg.model_dump(mode="json"), started, ingests, results)
    write_report(h.warehouse, h.reports_dir, run_id)
    return time.perf_counter() - t0


def via_flow(cfg, home: Path) -> float:
    from flows.benchmark import run_benchmark

    t0 = time.perf_counter()
    run_benchmark(cfg, home)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = ap.parse_args()
    from flows.cli import _parse_set

    cfg = build_config(None, args.profile, _parse_set(args.set))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        t_direct = direct(cfg, Path(a))
        t_flow = via_flow(cfg, Path(b))
    out = {"direct_seconds": t_direct, "flow_seconds": t_flow, "ratio": t_flow / t_direct,
           "profile": args.profile, "overrides": args.set}
    print(f"direct through lm/: {t_direct:.1f} s; through the Prefect flow: {t_flow:.1f} s; "
          f"ratio {t_flow / t_direct:.3f} (aim < 1.10)")
    dest = Path(__file__).parent / "results" / "orchestration_overhead.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
