"""Smoke run of every lm.neural architecture on a device: a short training on The Time Machine
characters (with and without AMP on CUDA), exact evaluation, generation, checkpoint + resume.

    python benchmarks/neural_smoke.py [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from lmpipe.lm.metrics import summarize
from lmpipe.lm.neural import ARCHS, TrainConfig, evaluate, generate, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neural_data import timemachine_chars  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = ap.parse_args()
    s = timemachine_chars()
    fp = s.vocab.fingerprint()
    rows = []
    for arch in ARCHS:
        for amp in (False, True) if args.device != "cpu" else (False,):
            layers = 1 if arch.endswith("scratch") else 2
            cfg = TrainConfig(
                arch=arch,
                embed=64,
                hidden=128,
                layers=layers,
                dropout=0.1,
                epochs=2,
                seq_len=64,
                batch_size=64,
                lr=3e-3,
                device=args.device,
                amp=amp,
            )
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                train(
                    replace(cfg, epochs=1),
                    s.train,
                    s.valid,
                    len(s.vocab),
                    vocab_fingerprint=fp,
                    checkpoint_dir=tmp,
                )
                model, r = train(
                    cfg,
                    s.train,
                    s.valid,
                    len(s.vocab),
                    vocab_fingerprint=fp,
                    checkpoint_dir=tmp,
                    resume=True,
                )
                seconds = time.perf_counter() - t0
            valid = summarize(evaluate(model, s.valid), s.valid_bytes)
            text = "".join(
                s.vocab.token(i)
                for i in generate(model, s.vocab.ids("the time"), 40, temperature=0.8, seed=1)
            )
            rows.append(
                {
                    "arch": arch,
                    "amp": amp,
                    "valid_perplexity": valid.perplexity,
                    "tokens_per_second": r.tokens_per_second,
                    "resumed_from": r.resumed_from_epoch,
                    "seconds": seconds,
                    "sample": text,
                }
            )
            print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
