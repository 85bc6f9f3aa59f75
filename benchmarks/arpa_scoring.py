"""Scoring a held-out text with a stored model: lmpipe against the ``kenlm`` module, same model,
same text, same process.

The model is PTB's 5-gram modified Kneser-Ney, estimated by lmpipe and written as ARPA; KenLM's
``build_binary`` turns it into its probing binary (the form ``kenlm.Model`` loads fastest), lmpipe
``write_binary`` into its own (:mod:`lmpipe.lm.ngram.binary`). The text is PTB's test file as
published, one sentence per line. For each form, best of ``--repeat`` (the two binary forms
taking turns, so that a drift in the machine's speed meets both): load the model, then score
every line (``kenlm.Model.score`` per line, which is how the module is used; lmpipe encodes the
lines and scores them in one call); the page cache is warm for both. Both totals must agree
(perplexity to 1e-9 relative), or the script exits 1.

Needs ``bash benchmarks/build_kenlm.sh`` for ``build_binary`` and the ``kenlm`` module
(``pip install kenlm``).

    python benchmarks/arpa_scoring.py [--kenlm-bin DIR] [--repeat 5]

Writes benchmarks/results/arpa_scoring.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lmpipe.flows.cpu_dispatch import prefer_avx2_sort  # noqa: E402

prefer_avx2_sort(os.environ)  # numpy's kernels as the command line gets them, before numpy

from lmpipe.lm import ngram  # noqa: E402
from lmpipe.lm.ingest import load_stream, load_vocab  # noqa: E402
from lmpipe.lm.ngram.arpa import load_arpa  # noqa: E402
from lmpipe.lm.ngram.binary import load_binary, write_binary  # noqa: E402
from lmpipe.lm.ngram.scoring import kenlm_perplexity  # noqa: E402
from lmpipe.lm.steps.home import Home  # noqa: E402
from lmpipe.lm.steps.ingest import ingest_corpus  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DEFAULT_BIN = REPO / "benchmarks" / ".kenlm" / "bin"
CORPORA = Path(os.environ.get("LMPIPE_CORPORA_DIR", REPO.parent / "shared" / "corpora"))


def best(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    """(best wall seconds, the value fn returned) over ``repeat`` calls."""
    times, value = [], 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kenlm-bin", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import kenlm

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        home = Home(work / "home", corpora_dir=CORPORA)
        ing = ingest_corpus(home, {"name": "ptb"}, "whitespace", {})
        vocab = load_vocab(ing.vocab_path)
        model = ngram.fit(load_stream(ing.splits["train"].path), 5, "mkn", vocab_size=len(vocab))
        arpa = work / "ptb5.arpa"
        ngram.write_arpa(model, arpa, list(vocab.tokens))
        with zipfile.ZipFile(CORPORA / "ptb.zip") as z:
            name = next(n for n in z.namelist() if n.endswith("ptb.test.txt"))
            lines = [ln.strip() for ln in io.TextIOWrapper(z.open(name), encoding="utf-8")]
        lines = [ln for ln in lines if ln]
        kbin = work / "ptb5.kenlm"
        subprocess.run(
            [str(args.kenlm_bin / "build_binary"), "probing", str(arpa), str(kbin)],
            check=True, capture_output=True,
        )  # fmt: skip
        ours = work / "ptb5.bin"
        t0 = time.perf_counter()
        write_binary(load_arpa(arpa), ours)
        convert_s = time.perf_counter() - t0
        tokens = sum(len(ln.split()) + 1 for ln in lines)

        def kenlm_run(path: Path) -> Callable[[], float]:
            def run() -> float:
                m = kenlm.Model(str(path))
                return 10 ** (-sum(m.score(ln) for ln in lines) / tokens)

            return run

        def lmpipe_run(load: Callable[[Path], Any], path: Path) -> Callable[[], float]:
            def run() -> float:
                m = load(path)
                return kenlm_perplexity(m.score(lines))[0]

            return run

        # the binary pair alternates, so that a drift in the machine's speed meets both
        pair = {"kenlm_binary": kenlm_run(kbin), "lmpipe_binary": lmpipe_run(load_binary, ours)}
        figures = {k: (float("inf"), 0.0) for k in pair}
        for _ in range(args.repeat):
            for k, fn in pair.items():
                t, value = best(fn, 1)
                figures[k] = (min(t, figures[k][0]), value)
        figures |= {
            "kenlm_arpa": best(kenlm_run(arpa), max(1, args.repeat // 2)),
            "lmpipe_arpa": best(lmpipe_run(load_arpa, arpa), max(1, args.repeat // 2)),
        }
        sizes = {
            "arpa_bytes": arpa.stat().st_size,
            "kenlm_binary_bytes": kbin.stat().st_size,
            "lmpipe_binary_bytes": ours.stat().st_size,
        }
    ppl = {k: v[1] for k, v in figures.items()}
    agree = all(abs(p / ppl["kenlm_binary"] - 1) < 1e-9 for p in ppl.values())
    out = {
        "model": "PTB 5-gram mkn",
        "test_tokens": tokens,
        "seconds": {k: round(v[0], 4) for k, v in figures.items()},
        "perplexity": ppl,
        "agree": agree,
        "speedup_binary": round(figures["kenlm_binary"][0] / figures["lmpipe_binary"][0], 2),
        "speedup_arpa": round(figures["kenlm_arpa"][0] / figures["lmpipe_arpa"][0], 2),
        "arpa_to_lmpipe_binary_seconds": round(convert_s, 3),
        **sizes,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "arpa_scoring.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
