"""The default of --bpe-vocab-size, by measurement: validation bits per byte of the n-gram
models (MKN, orders 2-5) and of the default GRU, on both default corpora, for a range of BPE
vocabulary sizes; char and word granularity beside them for reference.

    python benchmarks/bpe_vocab_size.py [--sizes 500,1000,2000,4000,8000] [--no-neural]

Selection is on validation only (test is printed, not used). Each command runs alone: two
trainings at once on 2 cores slow each other many times over.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

CORPORA = {"timemachine": ("char", "word"), "jaychou": ("char", "jieba")}


def lmpipe(*args: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", *args, "--json"], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(f"lmpipe {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


SPLITS_SQL = """
select r.split, r.bits_per_byte, r.oov_rate, c.vocab_size
from results r join corpora c using (run_id, corpus, tokenizer)
where r.run_id = ? and r.role = 'final'
"""


def figures(home: str, run_id: str) -> dict[str, dict]:
    """valid/test bits per byte, OOV rate and vocabulary size of a run's one model."""
    r = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", "sql", SPLITS_SQL.replace("?", f"'{run_id}'"),
         "--format", "json", "--home", home],
        capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(r.stderr.strip())
    return {row["split"]: row for row in json.loads(r.stdout)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="500,1000,2000,4000,8000")
    ap.add_argument("--no-neural", action="store_true")
    ap.add_argument("--epochs", default=None, help="GRU epochs (default: the experiment's)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    home = tempfile.mkdtemp(prefix="lmpipe-bpe-")
    print("| corpus | tokenizer | model | valid bpb | test bpb | test OOV | vocab | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for corpus, refs in CORPORA.items():
        for tok in (*refs, *[f"bpe:{s}" for s in sizes]):
            name, _, size = tok.partition(":")
            extra = ["--tokenizer", name] + (["--bpe-vocab-size", size] if size else [])
            runs = [("ngram", ["--order", str(n), "--smoothing", "mkn"]) for n in (2, 3, 4, 5)]
            if not args.no_neural:
                runs.append(
                    (
                        "train",
                        ["--arch", "gru"] + (["--epochs", args.epochs] if args.epochs else []),
                    )
                )
            for cmd, opts in runs:
                t0 = time.perf_counter()
                out = lmpipe(cmd, "--corpus", corpus, *extra, *opts, "--home", home)
                seconds = time.perf_counter() - t0
                model = f"mkn{opts[1]}" if cmd == "ngram" else "gru"
                f = figures(home, out["run_id"])
                print(
                    f"| {corpus} | {tok} | {model} | {f['valid']['bits_per_byte']:.4f} "
                    f"| {f['test']['bits_per_byte']:.4f} | {f['test']['oov_rate']:.2%} "
                    f"| {f['test']['vocab_size']} | {seconds:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
