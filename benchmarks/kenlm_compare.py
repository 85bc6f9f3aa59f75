"""lmpipe's modified Kneser-Ney against KenLM's own ``lmplz`` and ``query``, on the same tokens.

Each corpus is ingested by lmpipe (docs/design.md §2: split, tokenizer, vocabulary); its token
streams are written back as text in KenLM's input form, one sentence per line, tokens separated
by spaces. Tokens KenLM cannot read as words are renamed consistently: whitespace characters of
the ``char`` tokenizer (a space is a token there) become ``<ws-HEX>``, and a literal ``<unk>`` of
the training text (PTB's) becomes ``<unk-word>``, so both tools see the same vocabulary; an
out-of-vocabulary token of validation/test is left as ``<unk>`` for ``query`` to treat as unknown.
Then ``lmplz -o N --discount_fallback`` and ``query -v summary`` run for each order, and
lmpipe's perplexities (including and excluding OOVs) and the ARPA files' n-gram counts are
compared digit for digit; both tools' wall times are recorded (the ``lmpipe`` figure is fit
plus scoring, in this process). ``--prune 0,1,1`` gives both lmplz's count pruning (lmpipe's
``--prune-count``).

KenLM's binaries are not on PyPI; ``bash benchmarks/build_kenlm.sh`` builds them from the kenlm
source distribution on PyPI (needs cmake, g++ and Debian's boost and zlib development packages).

    python benchmarks/kenlm_compare.py [--kenlm-bin DIR] [--corpora timemachine,jaychou,ptb]
                                       [--orders 2,3,4,5,6] [--prune 0,1,1]

Writes benchmarks/results/kenlm_compare.json; exits 1 if any figure differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lmpipe.flows.cpu_dispatch import prefer_avx2_sort  # noqa: E402

prefer_avx2_sort(os.environ)  # numpy's kernels as the command line gets them, before numpy

import numpy as np  # noqa: E402

from lmpipe.lm import ngram  # noqa: E402
from lmpipe.lm.ingest import load_stream, load_vocab  # noqa: E402
from lmpipe.lm.metrics import summarize  # noqa: E402
from lmpipe.lm.steps.home import Home  # noqa: E402
from lmpipe.lm.steps.ingest import ingest_corpus  # noqa: E402
from lmpipe.lm.vocab import EOS, UNK  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DEFAULT_BIN = REPO / "benchmarks" / ".kenlm" / "bin"
TOKENIZER = {"timemachine": "char", "jaychou": "char", "ptb": "whitespace"}


def kenlm_word(token: str) -> str:
    """A token as a KenLM word: whitespace characters (tokens of the char tokenizer) renamed."""
    if token and all(c.isspace() or c == "\0" for c in token):
        return "".join(f"<ws-{ord(c):x}>" for c in token)
    return token


def write_split(stream: np.ndarray, words: list[str], path: Path) -> int:
    """One line per sentence of ``stream`` (ids, each sentence ending with ``</s>``)."""
    ends = np.flatnonzero(stream == EOS)
    with path.open("w", encoding="utf-8") as f:
        start = 0
        for end in ends:
            f.write(" ".join(words[i] for i in stream[start:end]) + "\n")
            start = end + 1
    return len(ends)


def query(bin_dir: Path, arpa: Path, text: Path) -> dict[str, float]:
    out = subprocess.run(
        [str(bin_dir / "query"), "-v", "summary", str(arpa)],
        stdin=text.open("rb"),
        capture_output=True,
        check=True,
    ).stdout.decode()
    got = dict(re.findall(r"^(Perplexity including OOVs|Perplexity excluding OOVs|OOVs):\s*(\S+)",
                          out, re.M))  # fmt: skip
    return {
        "perplexity": float(got["Perplexity including OOVs"]),
        "perplexity_excluding_oov": float(got["Perplexity excluding OOVs"]),
        "oov": int(got["OOVs"]),
    }


def arpa_sizes(path: Path) -> list[int]:
    """The ``ngram N=count`` lines of an ARPA file's header."""
    sizes = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("ngram "):
                sizes.append(int(line.split("=")[1]))
            elif line.startswith("\\1-grams"):
                break
    return sizes


def compare(
    corpus: str, orders: list[int], bin_dir: Path, work: Path, prune: list[int] | None = None
) -> list[dict]:
    # every training token in the vocabulary, as lmplz keeps them (the reference figures)
    corpora_dir = os.environ.get("LMPIPE_CORPORA_DIR")  # read at the edge, as the CLI does
    home = Home(work / "home", Path(corpora_dir) if corpora_dir else None)
    ing = ingest_corpus(home, {"name": corpus}, TOKENIZER[corpus], {"min_freq": 1})
    vocab = load_vocab(ing.vocab_path)
    streams = {s: load_stream(ing.splits[s].path) for s in ing.splits}
    unk_is_word = bool((streams["train"] == UNK).any())  # PTB: a literal <unk> in training
    words = [kenlm_word(t) for t in vocab.tokens]
    if unk_is_word:
        words[UNK] = "<unk-word>"
    files = {}
    for split, stream in streams.items():
        files[split] = work / f"{corpus}.{split}.txt"
        write_split(stream, words, files[split])
    rows = []
    for order in orders:
        arpa = work / f"{corpus}.{order}.arpa"
        t0 = time.perf_counter()
        subprocess.run(
            [str(bin_dir / "lmplz"), "-o", str(order), "--discount_fallback", "-S", "1G",
             "-T", str(work), *(["--prune", *map(str, prune[:order])] if prune else [])],
            stdin=files["train"].open("rb"), stdout=arpa.open("wb"), stderr=subprocess.DEVNULL,
            check=True,
        )  # fmt: skip
        lmplz_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the fallback discounts, as --discount_fallback
            model = ngram.fit(
                streams["train"], order, "mkn", vocab_size=len(vocab),
                prune_counts=prune[:order] if prune else None,
            )  # fmt: skip
        ours = {s: summarize(model.score(streams[s]), 1) for s in ("valid", "test") if s in streams}
        ours_s = time.perf_counter() - t0
        ngram.write_arpa(model, work / "ours.arpa", words)
        ours_sizes = arpa_sizes(work / "ours.arpa")
        for split, m in ours.items():
            ref = query(bin_dir, arpa, files[split])
            row = {
                "corpus": corpus,
                "split": split,
                "order": order,
                "lmpipe": m.perplexity,
                "kenlm": ref["perplexity"],
                "lmpipe_excluding_oov": m.perplexity_excluding_oov,
                "kenlm_excluding_oov": ref["perplexity_excluding_oov"],
                "oov": ref["oov"],
                "prune": prune[:order] if prune else None,
                "ngrams_lmpipe": ours_sizes,
                "ngrams_kenlm": arpa_sizes(arpa),
                "lmplz_seconds": lmplz_s,
                "lmpipe_fit_score_seconds": ours_s,
            }
            # PTB's literal <unk> is a word to KenLM (renamed) and, by lmpipe's design, also the
            # unknown token, whose positions lmpipe's excluding-OOV figure leaves out: that
            # figure has no KenLM counterpart there, the including-OOV one is the same quantity
            row["excluding_comparable"] = not unk_is_word
            # with a literal <unk> in training, lmplz's file has its own <unk> and the word
            sizes_equal = ours_sizes == row["ngrams_kenlm"] or (
                unk_is_word
                and ours_sizes[1:] == row["ngrams_kenlm"][1:]
                and row["ngrams_kenlm"][0] == ours_sizes[0] + 1
            )
            row["equal"] = (
                sizes_equal
                and row["lmpipe"] == row["kenlm"]
                and (unk_is_word or row["lmpipe_excluding_oov"] == row["kenlm_excluding_oov"])
            )
            rows.append(row)
            print(
                f"{corpus:12s} {split:5s} n={order}  lmpipe {m.perplexity!r:>20} "
                f"kenlm {ref['perplexity']!r:>20}  excl. OOV {m.perplexity_excluding_oov!r:>20} "
                f"/ {ref['perplexity_excluding_oov']!r:>20}  {'equal' if row['equal'] else 'DIFF'}"
                f"{'' if row['excluding_comparable'] else ' (including OOVs only)'}",
                flush=True,
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--kenlm-bin", type=Path, default=Path(os.environ.get("KENLM_BIN", DEFAULT_BIN))
    )
    ap.add_argument("--corpora", default="timemachine,jaychou,ptb")
    ap.add_argument("--orders", default="2,3,4,5,6")
    ap.add_argument(
        "--prune", default="", help="lmplz --prune thresholds for both, e.g. 0,1,1 (none)"
    )
    args = ap.parse_args()
    prune = [int(c) for c in args.prune.split(",")] if args.prune else None
    if not (args.kenlm_bin / "lmplz").exists():
        raise SystemExit(
            f"no lmplz in {args.kenlm_bin}: run `bash benchmarks/build_kenlm.sh` "
            "or give --kenlm-bin"
        )
    orders = [int(o) for o in args.orders.split(",")]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for corpus in args.corpora.split(","):
            rows += compare(corpus, orders, args.kenlm_bin, Path(tmp), prune)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "kenlm_compare.json"
    out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    differ = [r for r in rows if not r["equal"]]
    print(f"{len(rows) - len(differ)} of {len(rows)} figures equal to KenLM's; wrote {out}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
