"""The whole ``lmpipe ngram`` command against KenLM's ``lmplz`` (+ ``query``), process start to
exit, on the same text, in one script (the README's speed table, row "whole lmpipe ngram").

    bash benchmarks/build_kenlm.sh   # lmplz and query, once
    python benchmarks/ngram_command.py [--order 5] [--repeat 3] [--train F [--valid F] --test F]
    python benchmarks/ngram_command.py --zipf-tokens 20000000 --memory-limit 3GB --repeat 1

Default text: PTB from ../shared/corpora/ptb.zip; ``--zipf-tokens N`` writes N Zipf tokens
(``synth_corpus.py``, seed 0) as the training text and 100 k more (seed 1) as the test text.
``--memory-limit`` goes to both tools (lmpipe's ``--memory-limit``, lmplz's ``-S``); without it
lmpipe keeps its default and lmplz gets ``-S 1G``. Each repeat runs, taking turns:

* ``lmpipe ngram --train --valid --test --order N --smoothing mkn --json`` into a fresh home
  (nothing cached: ingest, count, estimate, score valid and test, record the run), then the same
  command again in that home (every step cached: what a re-run costs);
* ``lmplz -o N --discount_fallback -S 1G`` (text in, ARPA out), then ``query -v summary`` of the
  ARPA file on the validation and test texts, each a process of its own.

PTB ships its rare words as a literal ``<unk>``, which lmplz refuses; its copy of the text names
them ``<unk-word>`` (made before timing), as ``benchmarks/kenlm_compare.py`` does, and lmpipe
reads that word the same way (docs/kenlm-mkn.md), so both give the same test perplexity: the
script exits 1 unless they agree to 1e-9. Prints best-of-repeat seconds and the ratios, and
writes ``benchmarks/results/ngram_command.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PTB_ZIP = ROOT.parent / "shared" / "corpora" / "ptb.zip"
KENLM_BIN = ROOT / "benchmarks" / ".kenlm" / "bin"
RESULTS = ROOT / "benchmarks" / "results"


def timed(
    cmd: list[str], stdin: Path | None = None, stdout: Path | None = None
) -> tuple[float, str]:
    with (
        open(stdin, "rb") if stdin else open("/dev/null", "rb") as fin,
        open(stdout, "wb") if stdout else tempfile.TemporaryFile() as fout,
    ):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdin=fin, stdout=fout, stderr=subprocess.PIPE, check=False)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode()[-400:]}")
        if stdout:
            return seconds, ""
        fout.seek(0)
        return seconds, fout.read().decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--train", type=Path)
    ap.add_argument("--valid", type=Path)
    ap.add_argument("--test", type=Path)
    ap.add_argument("--zipf-tokens", type=int, help="a synthetic Zipf corpus of this many tokens")
    ap.add_argument("--memory-limit", help="for both tools, e.g. 3GB (default: see above)")
    args = ap.parse_args()
    if not (KENLM_BIN / "lmplz").exists():
        sys.exit(f"no lmplz in {KENLM_BIN}: run `bash benchmarks/build_kenlm.sh` first")
    lmpipe = shutil.which("lmpipe") or sys.exit("no lmpipe command on PATH: pip install -e .")
    work = Path(tempfile.mkdtemp(prefix="lmpipe-ngram-command-"))
    try:
        if args.zipf_tokens:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from synth_corpus import write_corpus

            texts = {"train": work / "train.txt", "test": work / "test.txt"}
            write_corpus(texts["train"], args.zipf_tokens, seed=0)
            write_corpus(texts["test"], 100_000, seed=1)
        elif args.train is None:
            with zipfile.ZipFile(PTB_ZIP) as z:
                z.extractall(work)
            texts = {s: work / "ptb" / f"ptb.{s}.txt" for s in ("train", "valid", "test")}
        else:
            texts = {"train": args.train, "test": args.test}
            if args.valid:
                texts["valid"] = args.valid
        scored = [s for s in ("valid", "test") if s in texts]
        limit = ["--memory-limit", args.memory_limit] if args.memory_limit else []
        lmplz_memory = args.memory_limit.upper().removesuffix("B") if args.memory_limit else "1G"
        kenlm_texts = {}
        for split, path in texts.items():
            kenlm_texts[split] = work / f"kenlm.{split}.txt"
            text = path.read_text(encoding="utf-8")
            kenlm_texts[split].write_text(text.replace("<unk>", "<unk-word>"), encoding="utf-8")
        rows = []
        for rep in range(args.repeat):
            home = work / f"home{rep}"
            cmd = [
                lmpipe, "ngram", "--home", str(home), "--order", str(args.order),
                "--smoothing", "mkn", "--json", *limit,
                *(a for s in texts for a in (f"--{s}", str(texts[s]))),
            ]  # fmt: skip
            first, out = timed(cmd)
            ours = json.loads(out)
            again, out = timed(cmd)
            assert json.loads(out)["cached"], "the second command should find every step cached"
            arpa = work / "kenlm.arpa"
            lmplz, _ = timed(
                [str(KENLM_BIN / "lmplz"), "-o", str(args.order), "--discount_fallback",
                 "-S", lmplz_memory, "-T", str(work)],
                stdin=kenlm_texts["train"], stdout=arpa,
            )  # fmt: skip
            query = {}
            for split in scored:
                query[split], out = timed(
                    [str(KENLM_BIN / "query"), "-v", "summary", str(arpa)], stdin=kenlm_texts[split]
                )
                if split == "test":
                    kenlm_ppl = float(re.search(r"including OOVs:\s*(\S+)", out)[1])  # type: ignore[index]
            rows.append(
                {"lmpipe": first, "lmpipe_cached": again, "lmplz": lmplz,
                 "query": sum(query.values()),
                 "lmpipe_test_ppl": ours["test_perplexity"], "kenlm_test_ppl": kenlm_ppl}
            )  # fmt: skip
            print(
                f"run {rep + 1}: lmpipe {first:.2f} s (cached {again:.2f} s); lmplz {lmplz:.2f} s"
                f" + query {sum(query.values()):.2f} s; test ppl lmpipe"
                f" {ours['test_perplexity']:.10f}, KenLM {kenlm_ppl:.10f}",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def best(key: str) -> float:
        return min(r[key] for r in rows)

    kenlm_whole = min(r["lmplz"] + r["query"] for r in rows)
    summary = {
        "text": f"zipf {args.zipf_tokens}" if args.zipf_tokens else str(args.train or "ptb"),
        "memory_limit": args.memory_limit,
        "order": args.order,
        "repeat": args.repeat,
        "lmpipe_seconds": best("lmpipe"),
        "lmpipe_cached_seconds": best("lmpipe_cached"),
        "lmplz_seconds": best("lmplz"),
        "lmplz_query_seconds": kenlm_whole,
        "time_ratio_lmpipe_to_lmplz": best("lmpipe") / best("lmplz"),
        "time_ratio_lmpipe_to_lmplz_query": best("lmpipe") / kenlm_whole,
        "runs": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"ngram_command_zipf{args.zipf_tokens}" if args.zipf_tokens else "ngram_command"
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=1))
    print(
        f"best of {args.repeat}: lmpipe ngram {summary['lmpipe_seconds']:.2f} s (cached"
        f" {summary['lmpipe_cached_seconds']:.2f} s); lmplz {summary['lmplz_seconds']:.2f} s"
        f" (lmpipe's time {summary['time_ratio_lmpipe_to_lmplz']:.2f}x its); lmplz + query of"
        f" {' and '.join(scored)} {kenlm_whole:.2f} s"
        f" (lmpipe's time {summary['time_ratio_lmpipe_to_lmplz_query']:.2f}x theirs)"
    )
    bad = [
        r
        for r in rows
        if abs(r["lmpipe_test_ppl"] - r["kenlm_test_ppl"]) > 1e-9 * r["kenlm_test_ppl"]
    ]
    if bad:
        ours, theirs = bad[0]["lmpipe_test_ppl"], bad[0]["kenlm_test_ppl"]
        sys.exit(f"test perplexities differ: lmpipe {ours} against KenLM {theirs}")


if __name__ == "__main__":
    main()
