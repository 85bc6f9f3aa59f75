"""PTB word-level LSTMs with lm.neural, for a GPU (or a CPU smoke run).

``medium`` is Zaremba et al. 2014's medium model (2 x 650 LSTM, dropout 0.5, untied; 82.7 test
perplexity published after 39 epochs); ``small`` is their 2 x 200 model without dropout (114.5).
Both train with the recipe of PyTorch's ``word_language_model`` example (SGD lr 20, clip 0.25,
bptt 35, batch 20, learning rate divided by 4 on a validation plateau) within ``--max-minutes``
of wall clock, then evaluate the best-validation weights exactly on the test split and print one
JSON object.

    python benchmarks/gpu_ptb_medium.py [PTB_ZIP] [--max-minutes 8] [--device auto|cuda|cpu]
    python benchmarks/gpu_ptb_medium.py --max-minutes 0.2 --device cpu          # smoke run
    python benchmarks/gpu_ptb_medium.py --model small --device cpu --max-minutes 3

``PTB_ZIP`` defaults to ``$LMPIPE_CORPORA_DIR/ptb.zip``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from lmpipe.lm.metrics import summarize
from lmpipe.lm.neural import TrainConfig, evaluate, train
from lmpipe.lm.vocab import build_vocab, encode_sentences

MODELS = {
    "medium": dict(embed=650, hidden=650, layers=2, dropout=0.5),
    "small": dict(embed=200, hidden=200, layers=2, dropout=0.0),
}


def read_ptb(path: Path) -> tuple[int, str, dict[str, np.ndarray], dict[str, int]]:
    """Vocabulary size, fingerprint, streams and UTF-8 bytes of PTB's three splits."""
    with zipfile.ZipFile(path) as z:
        texts = {s: z.read(f"ptb/ptb.{s}.txt").decode("utf-8") for s in ("train", "valid", "test")}
    sents = {s: [line.split() for line in t.splitlines() if line.strip()] for s, t in texts.items()}
    vocab = build_vocab(sents["train"])
    streams = {s: encode_sentences(vocab, v) for s, v in sents.items()}
    n_bytes = {s: sum(len(" ".join(x).encode("utf-8")) + 1 for x in v) for s, v in sents.items()}
    return len(vocab), vocab.fingerprint(), streams, n_bytes


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("ptb_zip", nargs="?", type=Path)
    ap.add_argument("--model", choices=sorted(MODELS), default="medium")
    ap.add_argument("--max-minutes", type=float, default=8.0)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA")
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--checkpoint-dir", type=Path)
    args = ap.parse_args()

    path = args.ptb_zip
    if path is None:
        if "LMPIPE_CORPORA_DIR" not in os.environ:
            sys.exit("give the path of ptb.zip or set LMPIPE_CORPORA_DIR")
        path = Path(os.environ["LMPIPE_CORPORA_DIR"]) / "ptb.zip"
    vocab_size, fingerprint, streams, n_bytes = read_ptb(path)
    config = TrainConfig(
        arch="lstm",
        **MODELS[args.model],
        tied=args.tied,
        epochs=args.epochs,
        max_minutes=args.max_minutes,
        seq_len=35,
        batch_size=20,
        sampling="sequential",
        optimizer="sgd",
        lr=20.0,
        clip=0.25,
        lr_decay=0.25,
        seed=1111,
        device=args.device,
        amp=args.amp,
    )

    def progress(m: dict) -> None:
        print(
            f"epoch {m['epoch']:3d}  train {m['train_perplexity']:8.2f}  "
            f"valid {m['valid_perplexity']:8.2f}  "
            f"lr {m['learning_rate']:g}  {m['tokens_per_second']:,.0f} tok/s  {m['seconds']:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    model, result = train(
        config,
        streams["train"],
        streams["valid"],
        vocab_size,
        vocab_fingerprint=fingerprint,
        checkpoint_dir=args.checkpoint_dir,
        on_epoch=progress,
    )
    t0 = time.perf_counter()
    test = summarize(evaluate(model, streams["test"], config.eval_window), n_bytes["test"])
    eval_seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "model": args.model,
                "device": torch.cuda.get_device_name()
                if next(model.parameters()).is_cuda
                else "cpu",
                "test_perplexity": test.perplexity,
                "valid_perplexity": result.best_valid_perplexity,
                "test_bits_per_byte": test.bits_per_byte,
                "tokens_per_second": result.tokens_per_second,
                "epochs": result.epochs_run,
                "best_epoch": result.best_epoch,
                "stopped": result.stopped,
                "wall_seconds": result.wall_seconds,
                "test_eval_tokens_per_second": test.tokens / eval_seconds,
                "parameters": result.parameters,
                "config": config.as_dict(),
            }
        )
    )


if __name__ == "__main__":
    main()
