"""N-gram engine against KenLM: speed, memory and exact perplexities (docs/reference-figures.md).

    python benchmarks/ngram_bench.py [--nltk-sentences 20]

Scoring speed: median of 7 calls of ``model.score`` on PTB test, alternating with kenlm's
``full_scores`` over the same sentences; the first call (which builds the lookup tables that the
model then keeps) is reported apart.

Prints a table and writes benchmarks/results/ngram_bench.json. Everything runs in one process so
that the kenlm and NLTK comparisons share the machine's state.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

from lmpipe.flows.cpu_dispatch import prefer_avx2_sort

prefer_avx2_sort(os.environ)  # numpy's kernels as the command line gets them, before numpy

import duckdb  # noqa: E402
import kenlm  # noqa: E402
import numpy as np  # noqa: E402

from lmpipe.lm.ngram import count_full_ngrams, fit, kenlm_perplexity, write_arpa  # noqa: E402
from lmpipe.lm.ngram.counting import query_ngram_counts, stream_table  # noqa: E402
from lmpipe.lm.vocab import build_vocab, encode_sentences  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
RESULTS = ROOT / "benchmarks" / "results"
PTB_KENLM = {
    2: 185.7048931511453,
    3: 148.2814995024931,
    4: 142.71560595161773,
    5: 141.1862070921484,
}
LMPLZ_SECONDS = {2: 0.87, 3: 0.83, 4: 1.32, 5: 1.49}
# KenLM 0.3.0's own lmplz + query on the design's split (benchmarks/kenlm_compare.py); the Time
# Machine figure of docs/kenlm-mkn.md (4.265815500802198) came from a different text preparation
CHAR_KENLM = {
    "timemachine": (4.265310295499591, None),
    "jaychou": (164.37558903254418, 130.56175785248496),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ptb() -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(CORPORA / "ptb.zip") as z:
        return {
            k: [ln.split() for ln in z.read(f"ptb/ptb.{k}.txt").decode().splitlines() if ln.strip()]
            for k in ("train", "valid", "test")
        }


def char_splits(name: str) -> dict[str, list[list[str]]]:
    """docs/design.md §2: stripped non-empty lines, contiguous 80/10/10, every character a token."""
    if name == "jaychou":
        with zipfile.ZipFile(CORPORA / "jaychou_lyrics.txt.zip") as z:
            text = z.read("jaychou_lyrics.txt").decode("utf-8")
    else:
        text = (CORPORA / "timemachine.txt").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    n = len(lines)
    a, b = int(0.8 * n), int(0.9 * n)
    return {"train": [list(x) for x in lines[:a]], "valid": [list(x) for x in lines[a:b]]}


def timed(fn, repeat: int = 3):
    """(best wall seconds over ``repeat`` runs, last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def interleaved_medians(ours, theirs, repeat: int = 7):
    """(median seconds of ``ours``, median seconds of ``theirs``, last result of ``ours``),
    the two alternating so that both see the same machine load."""
    t_ours, t_theirs, out = [], [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = ours()
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs()
        t_theirs.append(time.perf_counter() - t0)
    return float(np.median(t_ours)), float(np.median(t_theirs)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nltk-sentences",
        type=int,
        default=20,
        help="PTB test sentences scored by NLTK's KneserNeyInterpolated(3)",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    res: dict[str, object] = {}
    split = ptb()
    vocab = build_vocab(split["train"])
    train, test = (encode_sentences(vocab, split[k]) for k in ("train", "test"))

    # counting: in-memory hashing vs DuckDB, order 5
    t_np, _ = timed(lambda: count_full_ngrams(train, 5))
    con = duckdb.connect()
    t_db, _ = timed(lambda: query_ngram_counts(con, stream_table(train), 5))
    train10 = np.tile(train, 10)
    t_np10, _ = timed(lambda: count_full_ngrams(train10, 5), 1)
    t_db10, _ = timed(lambda: query_ngram_counts(con, stream_table(train10), 5), 1)
    res["counting_order5_s"] = {
        "numpy": t_np,
        "duckdb": t_db,
        "numpy_x10": t_np10,
        "duckdb_x10": t_db10,
    }

    sentences = [" ".join(s) for s in split["test"]]
    ptb_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for order in (2, 3, 4, 5):
            t_fit, model = timed(lambda o=order: fit(train, o, "mkn", vocab_size=len(vocab)))
            arpa = Path(tmp) / f"ptb{order}.arpa"
            t_arpa, _ = timed(lambda m=model, a=arpa: write_arpa(m, a, vocab.tokens))
            # the first call also builds the model's lookup tables (cached on the model)
            t_first, scores = timed(lambda m=model: m.score(test), 1)
            lm = kenlm.Model(str(arpa))
            t_score, t_kenlm, scores = interleaved_medians(
                lambda m=model: m.score(test),
                lambda lm=lm: [list(lm.full_scores(s)) for s in sentences],
            )
            ppl = kenlm_perplexity(scores)[0]
            ptb_rows.append(
                {
                    "order": order,
                    "perplexity": ppl,
                    "kenlm": PTB_KENLM[order],
                    "exact": ppl == PTB_KENLM[order],
                    "fit_s": t_fit,
                    "arpa_write_s": t_arpa,
                    "lmplz_s": LMPLZ_SECONDS[order],
                    "score_tokens_per_s": test.size / t_score,
                    "score_first_call_tokens_per_s": test.size / t_first,
                    "kenlm_full_scores_tokens_per_s": test.size / t_kenlm,
                }
            )
    res["ptb_mkn"] = ptb_rows
    t10, _ = timed(lambda: fit(train10, 5, "mkn", vocab_size=len(vocab)), 1)
    res["ptb_x10_order5_fit_s"] = {"ours": t10, "lmplz_discount_fallback": 4.3}

    char_rows = []
    for name, (ref_incl, ref_excl) in CHAR_KENLM.items():
        sp = char_splits(name)
        v = build_vocab(sp["train"])
        model = fit(encode_sentences(v, sp["train"]), 5, "mkn", vocab_size=len(v))
        incl, excl = kenlm_perplexity(model.score(encode_sentences(v, sp["valid"])))
        char_rows.append(
            {
                "corpus": name,
                "order": 5,
                "perplexity": incl,
                "kenlm": ref_incl,
                "perplexity_excl_oov": excl,
                "kenlm_excl_oov": ref_excl,
                "exact": incl == ref_incl and ref_excl in (None, excl),
            }
        )
    res["char_mkn_valid"] = char_rows

    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    t0 = time.perf_counter()
    grams, nltk_vocab = padded_everygram_pipeline(3, split["train"])
    nltk_lm = KneserNeyInterpolated(3)
    nltk_lm.fit(grams, nltk_vocab)
    t_nltk_fit = time.perf_counter() - t0
    sents = split["test"][: args.nltk_sentences]
    t0 = time.perf_counter()
    n_tok = 0
    for s in sents:
        padded = ["<s>", "<s>", *s, "</s>"]
        for i in range(2, len(padded)):
            nltk_lm.score(padded[i], padded[i - 2 : i])
            n_tok += 1
    t_nltk = time.perf_counter() - t0
    ours3 = next(r for r in ptb_rows if r["order"] == 3)
    res["nltk_kn3"] = {
        "fit_s": t_nltk_fit,
        "sentences": len(sents),
        "score_tokens_per_s": n_tok / t_nltk,
        "ours_mkn3_tokens_per_s": ours3["score_tokens_per_s"],
        "speed_ratio": ours3["score_tokens_per_s"] / (n_tok / t_nltk),
    }
    res["peak_rss_mb"] = peak_rss_mb()

    print(
        f"{'order':>5} {'ppl (ours)':>20} {'KenLM':>20} exact {'fit s':>6} {'lmplz s':>7} "
        f"{'arpa s':>6} {'ours tok/s':>11} {'1st call':>9} {'kenlm tok/s':>11}"
    )
    for r in ptb_rows:
        print(
            f"{r['order']:>5} {r['perplexity']!r:>20} {r['kenlm']!r:>20} {r['exact']!s:>5} "
            f"{r['fit_s']:6.3f} {r['lmplz_s']:7.2f} {r['arpa_write_s']:6.3f} "
            f"{r['score_tokens_per_s']:11.3g} {r['score_first_call_tokens_per_s']:9.3g} "
            f"{r['kenlm_full_scores_tokens_per_s']:11.3g}"
        )
    print(f"PTB x10 order 5 fit: {t10:.2f} s (lmplz --discount_fallback 4.3 s)")
    print("counting order 5 (s):", {k: round(v, 3) for k, v in res["counting_order5_s"].items()})
    for r in char_rows:
        print(
            f"{r['corpus']} valid order 5: {r['perplexity']!r} / excl OOV "
            f"{r['perplexity_excl_oov']!r} (KenLM {r['kenlm']!r} / {r['kenlm_excl_oov']!r}) "
            f"exact={r['exact']}"
        )
    print(
        "NLTK KN3:",
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res["nltk_kn3"].items()},
    )
    print(f"peak RSS {res['peak_rss_mb']:.0f} MB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ngram_bench.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
