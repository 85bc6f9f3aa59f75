"""How ingest, counting (orders 1..5, DuckDB out of core) and MKN estimation grow with corpus size.

    python benchmarks/scale_bench.py                       # 10 M, 30 M, 100 M tokens
    python benchmarks/scale_bench.py --sizes 20000000 --steps ingest,fit --order 5
    python benchmarks/scale_bench.py --memory-limit 3GB --workdir /tmp/scale

For each size a Zipf corpus is generated (``synth_corpus.py``, seeded; deleted afterwards) and
each step runs in its own process, so its peak RSS (``ru_maxrss``) is its own:

* ``ingest``: text -> vocabulary -> token Parquet (``lm.ingest``); the whole corpus is the
  training split, a separate 100 k-token text (another seed) the test split;
* ``count``: ``count_ngrams`` orders 1..order of the training tokens with ``--memory-limit``
  and a spill folder whose size is polled every 0.2 s (peak spill);
* ``fit``: MKN fit of the training tokens and scoring of the test split, in memory (skipped
  above ``--fit-max`` tokens: the model itself outgrows 4 GB near 25 M Zipf tokens);
* ``fit_ooc``: the same out of core (``lm.ngram.mkn_duckdb``) with ``--memory-limit``; the
  spill folder holds its database file too;
* ``lmplz``: KenLM's ``lmplz`` (``bash benchmarks/build_kenlm.sh``) on the same text with
  ``-S`` = ``--memory-limit``, its ARPA output discarded; the peak RSS reported is lmplz's.

Prints a table and writes ``benchmarks/results/scale_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STEPS = ("ingest", "count", "fit", "fit_ooc", "lmplz")
LMPLZ = ROOT / "benchmarks" / ".kenlm" / "bin" / "lmplz"
TEST_TOKENS = 100_000


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ----------------------------------------------------------------------------- steps (child)


def step_ingest(work: Path) -> dict[str, Any]:
    from lmpipe.lm.steps.home import Home
    from lmpipe.lm.steps.ingest import ingest_corpus

    files = {"train": str(work / "corpus.txt"), "test": str(work / "test.txt")}
    ing = ingest_corpus(
        Home(work / "home"), {"name": "synth", **files}, "whitespace", {"min_freq": 1}
    )
    (work / "ingest.json").write_text(ing.to_json(), encoding="utf-8")
    return {"train_tokens": ing.splits["train"].tokens, "vocab": ing.vocab_size}


def step_count(work: Path, order: int, memory_limit: int) -> dict[str, Any]:
    from lmpipe.lm.ingest import IngestResult
    from lmpipe.lm.ngram import count_ngrams

    ing = IngestResult.from_json((work / "ingest.json").read_text(encoding="utf-8"))
    out = count_ngrams(
        ing.splits["train"].path,
        order,
        work / "counts",
        memory_limit=memory_limit,
        spill_dir=work / "spill",
    )
    return {"distinct": [o.distinct for o in out], "counts_bytes": folder_bytes(work / "counts")}


def step_fit(work: Path, order: int) -> dict[str, Any]:
    from lmpipe.lm.ingest import IngestResult, load_stream
    from lmpipe.lm.ngram import fit, kenlm_perplexity

    ing = IngestResult.from_json((work / "ingest.json").read_text(encoding="utf-8"))
    train = load_stream(ing.splits["train"].path)
    model = fit(train, order, "mkn", vocab_size=ing.vocab_size)
    del train
    scores = model.score(load_stream(ing.splits["test"].path))
    return {
        "nodes": sum(model.trie.size(n) for n in range(1, order + 1)),
        "test_perplexity": kenlm_perplexity(scores)[0],
    }


def step_fit_ooc(work: Path, order: int, memory_limit: int) -> dict[str, Any]:
    from lmpipe.lm.ingest import IngestResult
    from lmpipe.lm.ngram import kenlm_perplexity
    from lmpipe.lm.ngram.mkn_duckdb import estimate_mkn_duckdb

    ing = IngestResult.from_json((work / "ingest.json").read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    with estimate_mkn_duckdb(
        ing.splits["train"].path,
        order,
        ing.vocab_size,
        memory_limit=memory_limit,
        spill_dir=work / "spill",
    ) as model:
        fit_s = time.perf_counter() - t0
        db_bytes = folder_bytes(model.path.parent)
        scores = model.score_tokens(ing.splits["test"].path)
        return {
            "nodes": sum(model.sizes()),
            "fit_seconds": fit_s,
            "database_mb": db_bytes / 2**20,
            "test_perplexity": kenlm_perplexity(scores)[0],
        }


def step_lmplz(work: Path, order: int, memory_limit: int) -> dict[str, Any]:
    """KenLM's ``lmplz -o order -S limit`` on the same text, its ARPA output discarded (the fit
    steps write none either); peak RSS is lmplz's own (``RUSAGE_CHILDREN``)."""
    if not LMPLZ.exists():
        raise SystemExit(f"{LMPLZ} is missing: run bash benchmarks/build_kenlm.sh")
    tmp = work / "lmplz-tmp"
    tmp.mkdir(exist_ok=True)
    cmd = [str(LMPLZ), "-o", str(order), "-S", f"{memory_limit // 2**20}M", "-T", str(tmp)]
    with open(work / "corpus.txt", "rb") as text, open("/dev/null", "wb") as sink:
        subprocess.run([*cmd, "--discount_fallback"], stdin=text, stdout=sink, check=True,
                       stderr=subprocess.DEVNULL)  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)
    return {"lmplz_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def child(args: argparse.Namespace) -> None:
    from lmpipe.flows.cpu_dispatch import prefer_avx2_sort

    prefer_avx2_sort(os.environ)  # numpy's kernels as the command line gets them, before numpy
    t0 = time.perf_counter()
    work = args.workdir
    if args.child == "ingest":
        out = step_ingest(work)
    elif args.child in ("count", "fit_ooc", "lmplz"):
        from lmpipe.lm.fileio import parse_size

        step = {"count": step_count, "fit_ooc": step_fit_ooc, "lmplz": step_lmplz}[args.child]
        out = step(work, args.order, parse_size(args.memory_limit))
    else:
        out = step_fit(work, args.order)
    out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = out.pop(
        "lmplz_peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(json.dumps(out))


# ----------------------------------------------------------------------------- driver (parent)


def run_step(step: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one step in a fresh process; poll the spill folder's size while it runs."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        step,
        "--workdir",
        str(work),
        "--order",
        str(args.order),
        "--memory-limit",
        args.memory_limit,
    ]
    peak_spill = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak_spill
        while not done.wait(0.2):
            try:
                peak_spill = max(peak_spill, folder_bytes(work / "spill"))
            except FileNotFoundError:  # a spill file vanished while listed
                pass

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    done.set()
    watcher.join()
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["peak_spill_mb"] = peak_spill / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="10000000,30000000,100000000",
        help="corpus sizes in tokens, comma-separated",
    )
    parser.add_argument("--steps", default="ingest,count,fit,fit_ooc", help=f"of {STEPS}")
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument(
        "--memory-limit", default="3GB", help="DuckDB memory limit of counting and fit_ooc"
    )
    parser.add_argument(
        "--fit-max",
        type=int,
        default=30_000_000,
        help="skip the in-memory MKN fit above this many tokens",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lmpipe-scale"))
    parser.add_argument("--keep", action="store_true", help="keep corpora and outputs")
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from synth_corpus import write_corpus

    steps = [s for s in args.steps.split(",") if s]
    rows: list[dict[str, Any]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        work = args.workdir / f"tokens-{size}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        t0 = time.perf_counter()
        text_bytes = write_corpus(work / "corpus.txt", size)
        write_corpus(work / "test.txt", TEST_TOKENS, seed=1)
        row: dict[str, Any] = {
            "tokens": size,
            "text_mb": text_bytes / 2**20,
            "generate_seconds": time.perf_counter() - t0,
        }
        for step in ("ingest", *[s for s in steps if s != "ingest"]):
            if step == "fit" and size > args.fit_max:
                continue
            row[step] = run_step(step, work, args)
            print(f"{size:>12,} {step:7s} {json.dumps(row[step])}", flush=True)
        rows.append(row)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "scale_bench.json"
    meta = {"order": args.order, "memory_limit": args.memory_limit, "rows": rows}
    out.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    print(f"wrote {out}")


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'tokens':>12} {'step':7} {'seconds':>9} {'peak RSS MB':>12} {'spill MB':>9} "
        f"{'s / M tokens':>12}"
    )
    for row in rows:
        for step in STEPS:
            r = row.get(step)
            if not r or "error" in r:
                if r:
                    print(f"{row['tokens']:>12,} {step:7} error: {r['error']}")
                continue
            per_m = r["seconds"] / (row["tokens"] / 1e6)
            print(
                f"{row['tokens']:>12,} {step:7} {r['seconds']:9.1f} {r['peak_rss_mb']:12.0f} "
                f"{r['peak_spill_mb']:9.0f} {per_m:12.2f}"
            )


if __name__ == "__main__":
    main()
