"""How the neural defaults were chosen: candidate recipes trained on the default corpora,
selected on the validation split alone (test is printed only for the recipe chosen).

    python benchmarks/neural_defaults.py --corpus timemachine --arch gru --grid dropout=0.2,0.4 \
        --grid hidden=256,512 --set epochs=12 [--min-freq 2] [--test]

Each candidate is ``lmpipe.lm.neural.config.TrainConfig.for_arch(arch, defaults + grid point)``
trained by ``lmpipe.lm.neural.train`` on lmpipe's own token streams (the experiment's ingest),
one at a time (two trainings at once on 2 cores slow each other many times over). Prints one
line per candidate (validation perplexity, epochs, seconds) and writes JSON under
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lmpipe.flows.cli.common import parse_set
from lmpipe.lm.config import CorpusConfig
from lmpipe.lm.ingest import load_stream, load_vocab
from lmpipe.lm.metrics import summarize
from lmpipe.lm.neural import TrainConfig, evaluate, train
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.ingest import ingest_corpus

RESULTS = Path(__file__).resolve().parent / "results"


def grid(specs: list[str]) -> list[dict[str, Any]]:
    """``name=a,b`` specs -> every combination, values parsed as TOML."""
    axes = []
    for spec in specs:
        name, values = spec.split("=", 1)
        axes.append([(name, parse_set([f"v={v}"])["v"]) for v in values.split(",")])
    return [dict(point) for point in itertools.product(*axes)] or [{}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpus", default="timemachine")
    ap.add_argument("--tokenizer", default="char")
    ap.add_argument("--arch", default="gru")
    ap.add_argument("--min-freq", type=int, default=None, help="default: the corpus's own")
    ap.add_argument("--grid", action="append", default=[], help="NAME=V1,V2 (repeatable)")
    ap.add_argument("--set", action="append", default=[], help="NAME=V fixed for all")
    ap.add_argument("--test", action="store_true", help="also score the best candidate on test")
    ap.add_argument("--home", type=Path, default=None)
    args = ap.parse_args()

    home = Home(args.home or Path(tempfile.mkdtemp(prefix="lmpipe-defaults-")))
    vocab_given = {} if args.min_freq is None else {"min_freq": args.min_freq}
    ing = ingest_corpus(home, {"name": args.corpus}, args.tokenizer, vocab_given)
    # the corpus's own settings (data/corpora.toml), as the default experiment trains it
    corpus_own = CorpusConfig(name=args.corpus).neural_defaults()
    vocab = load_vocab(ing.vocab_path)
    streams = {s: load_stream(ing.splits[s].path) for s in ("train", "valid", "test")}
    fixed = {k: v for item in args.set for k, v in parse_set([item]).items()}
    rows = []
    for point in grid(args.grid):
        cfg = TrainConfig.for_arch(args.arch, {**fixed, **point, "device": "cpu"}, corpus_own)
        t0 = time.perf_counter()
        model, outcome = train(
            cfg, streams["train"], streams["valid"], len(vocab), vocab_fingerprint="bench"
        )
        row = {
            "point": point,
            "valid_perplexity": outcome.best_valid_perplexity,
            "best_epoch": outcome.best_epoch,
            "epochs": outcome.epochs_run,
            "seconds": time.perf_counter() - t0,
            "tokens_per_second": outcome.tokens_per_second,
            "parameters": outcome.parameters,
            "_model": model,
        }
        rows.append(row)
        print(
            f"{json.dumps(point):60s} valid {row['valid_perplexity']:9.3f}  best epoch "
            f"{row['best_epoch']:2d}/{row['epochs']:2d}  {row['seconds']:6.1f} s",
            flush=True,
        )
    best = min(rows, key=lambda r: r["valid_perplexity"])
    print(f"best on validation: {json.dumps(best['point'])} {best['valid_perplexity']:.3f}")
    if args.test:
        m = summarize(evaluate(best["_model"], streams["test"]), ing.splits["test"].bytes)
        best["test_perplexity"] = m.perplexity
        best["test_perplexity_excluding_oov"] = m.perplexity_excluding_oov
        print(
            f"  its test perplexity {m.perplexity:.3f} "
            f"(excluding OOV {m.perplexity_excluding_oov:.3f})"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"neural_defaults-{args.corpus}-{args.arch}-{int(time.time())}.json"
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    out.write_text(json.dumps({"args": vars(args) | {"home": str(home.root)}, "rows": clean},
                              indent=1, default=str))  # fmt: skip
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
