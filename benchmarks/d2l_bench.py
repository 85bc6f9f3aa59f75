"""lmpipe against the d2l library itself, at d2l's own Time Machine configurations, in one script.

d2l 1.0.3 (``pip install d2l==1.0.3 --no-deps ipython matplotlib matplotlib-inline pillow
scipy requests``; torchvision is not needed by these models and is stubbed when absent):

* ``RNNScratch`` 32 hidden, ``RNNLMScratch`` lr 1, ``Trainer(max_epochs=100,
  gradient_clip_val=1)``, ``TimeMachine(batch_size=1024, num_steps=32)``;
* concise ``GRU`` 32 hidden, ``RNNLM`` lr 4, 50 epochs, same data.

and lmpipe through its command line (a fresh process each, as a user runs it) at the same
configurations: d2l's normalisation (``--normalize d2l``: letters and spaces, 28 symbols with
``<unk>``), char tokens, random sampling, batch 1024, 32 steps, SGD, clip 1; ``rnn-scratch`` for
``RNNScratch`` and both ``gru-scratch`` and ``gru`` (embedding 28) for the concise GRU.

What the two report differs, and both are printed: d2l's validation figure is the mean over
validation batches of exp(mean loss of the batch) on its own windows (5,000 overlapping 32-character
windows taken right after its 10,000 training windows, state reset per window); lmpipe's is
the stream perplexity of docs/design.md §3 on its held-out split. d2l's epoch is 10 batches of
overlapping windows (~320 k characters); lmpipe's is one pass over its training split (~140 k
characters), so characters per second are printed too. d2l's live plot is switched off (it only
slows d2l).

    python benchmarks/d2l_bench.py [--repeat 1] [--skip-d2l]

Writes benchmarks/results/d2l_bench-*.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neural_data import REPO, corpora_dir  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"

# (name, d2l model, lmpipe arch, hidden, epochs, lr, extra lmpipe args)
CONFIGS = [
    ("RNNScratch", "rnn", ["rnn-scratch"], 32, 100, 1.0),
    ("GRU", "gru", ["gru-scratch", "gru"], 32, 50, 4.0),
]


def import_d2l():
    try:
        import torchvision  # noqa: F401
    except Exception:  # the CUDA torchvision wheel cannot load against a CPU torch
        tv = types.ModuleType("torchvision")
        tv.transforms = types.ModuleType("torchvision.transforms")
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.transforms"] = tv.transforms
    from d2l import torch as d2l

    return d2l


def d2l_run(
    kind: str, hidden: int, epochs: int, lr: float, root: Path, validate: bool = True
) -> dict:
    d2l = import_d2l()
    torch.manual_seed(0)
    cwd = os.getcwd()
    os.chdir(root / "work")  # d2l reads ../data/timemachine.txt (its sha1 checked, no download)
    try:
        data = d2l.TimeMachine(batch_size=1024, num_steps=32)
    finally:
        os.chdir(cwd)
    vocab_size = len(data.vocab)
    if kind == "rnn":
        model = d2l.RNNLMScratch(
            d2l.RNNScratch(num_inputs=vocab_size, num_hiddens=hidden), vocab_size=vocab_size, lr=lr
        )
    else:
        model = d2l.RNNLM(
            d2l.GRU(num_inputs=vocab_size, num_hiddens=hidden, num_layers=1),
            vocab_size=vocab_size,
            lr=lr,
        )
    model.board.display = False
    if not validate:  # training throughput alone: d2l's per-epoch validation switched off
        model.validation_step = lambda batch: None
    trainer = d2l.Trainer(max_epochs=epochs, gradient_clip_val=1, num_gpus=0)
    t0 = time.perf_counter()
    trainer.fit(model, data)
    seconds = time.perf_counter() - t0
    # d2l's validation figure: the board averages exp(batch loss) over the validation batches
    model.eval()
    with torch.no_grad():
        ppl = [math.exp(model.loss(model(*b[:-1]), b[-1]).item()) for b in data.val_dataloader()]
    chars = epochs * data.num_train * 32
    return {
        "train_seconds": seconds,
        "characters_per_second": chars / seconds,
        "valid_perplexity_d2l_windows": statistics.fmean(ppl),
        "vocab_size": vocab_size,
        "updates": epochs * math.ceil(data.num_train / 1024),
    }


def lmpipe_run(arch: str, hidden: int, epochs: int, lr: float, home: Path) -> dict:
    args = [
        sys.executable, "-m", "lmpipe.flows.cli", "train", "--home", str(home), "--corpus",
        "timemachine", "--tokenizer", "char", "--normalize", "d2l", "--arch", arch,
        "--hidden", str(hidden), "--embed", "28", "--epochs", str(epochs), "--optimizer", "sgd",
        "--lr", str(lr), "--clip", "1", "--batch-size", "1024", "--seq-len", "32",
        "--sampling", "random", "--device", "cpu", "--seed", "0", "--force", "--json",
    ]  # fmt: skip
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"lmpipe train failed: {r.stderr.strip() or r.stdout.strip()}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return {
        "process_seconds": wall,
        "train_seconds": out["train_seconds"],
        "train_tokens_per_second": out["tokens_per_second"],
        "valid_perplexity": out["valid_perplexity"],
        "test_perplexity": out["test_perplexity"],
        "parameters": out["parameters"],
        "best_epoch": out["best_epoch"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs of each side; medians reported")
    ap.add_argument("--skip-d2l", action="store_true", help="lmpipe only (no d2l installed)")
    args = ap.parse_args()
    results: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "d2l"
        (root / "work").mkdir(parents=True)
        (root / "data").mkdir()
        shutil.copy(corpora_dir() / "timemachine.txt", root / "data" / "timemachine.txt")
        env_home = Path(tmp) / "home"
        os.environ.setdefault("LMPIPE_CORPORA_DIR", str(corpora_dir()))
        for name, kind, archs, hidden, epochs, lr in CONFIGS:
            row: dict = {"hidden": hidden, "epochs": epochs, "lr": lr}
            if not args.skip_d2l:
                runs = [d2l_run(kind, hidden, epochs, lr, root) for _ in range(args.repeat)]
                row["d2l"] = min(runs, key=lambda r: r["train_seconds"]) | {
                    "train_seconds_all": [r["train_seconds"] for r in runs]
                }
                alone = d2l_run(kind, hidden, epochs, lr, root, validate=False)
                row["d2l"]["train_only_characters_per_second"] = alone["characters_per_second"]
            for arch in archs:
                runs = [lmpipe_run(arch, hidden, epochs, lr, env_home) for _ in range(args.repeat)]
                row[arch] = min(runs, key=lambda r: r["process_seconds"]) | {
                    "process_seconds_all": [r["process_seconds"] for r in runs]
                }
            results["runs"][name] = row
            line = f"{name} {hidden} hidden, {epochs} epochs, lr {lr:g}:"
            if "d2l" in row:
                d = row["d2l"]
                line += (
                    f"\n  d2l {d['train_seconds']:.1f} s training "
                    f"({d['characters_per_second'] / 1e6:.2f} M chars/s), "
                    f"validation {d['valid_perplexity_d2l_windows']:.2f} on d2l's windows; "
                    f"{d['train_only_characters_per_second'] / 1e6:.2f} M chars/s without its "
                    "validation"
                )
            for arch in archs:
                m = row[arch]
                line += (
                    f"\n  lmpipe {arch}: {m['process_seconds']:.1f} s whole command "
                    f"({m['train_seconds']:.1f} s training), valid {m['valid_perplexity']:.2f} / "
                    f"test {m['test_perplexity']:.2f} on the design's split, best epoch "
                    f"{m['best_epoch']}; training loop "
                    f"{m['train_tokens_per_second'] / 1e6:.2f} M tokens/s"
                )
                if "d2l" in row:
                    ratio = (
                        m["train_tokens_per_second"]
                        / row["d2l"]["train_only_characters_per_second"]
                    )
                    m["throughput_ratio_vs_d2l"] = ratio
                    line += f" (x{ratio:.2f} d2l's)"
            print(line, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"d2l_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
