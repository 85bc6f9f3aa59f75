"""Synthetic corpora of a requested size, reproducible from a seed and without downloads.

    python benchmarks/synth_corpus.py /tmp/big.txt --tokens 20000000
    python benchmarks/synth_corpus.py /tmp/ptbx.txt --tokens 10000000 --source ptb

``zipf`` (the default) draws every word independently from a finite Zipf law over ``--vocab``
types, p(rank r) ~ 1 / r**s, so that almost every 5-gram is unique: the hard case for n-gram
counting and estimation (KenLM lmplz needs 39 s and 1.3 GB for 20 M such tokens). Words are
``w<rank>``. Sentence lengths come from a fixed distribution (1 + a lognormal around 18 words,
at most 200). ``ptb`` samples whole sentences of PTB's training split with replacement
(``../shared/corpora/ptb.zip`` or ``$LMPIPE_CORPORA_DIR``): realistic repetition, no new words.

The text is written in blocks of about a million tokens, so memory stays small for any size;
the token count is exact (a sentence's ``</s>`` is not a token of the file).
"""

from __future__ import annotations

import argparse
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BLOCK_TOKENS = 1 << 20
CORPORA = Path(
    os.environ.get("LMPIPE_CORPORA_DIR", Path(__file__).resolve().parents[2] / "shared" / "corpora")
)


def sentence_lengths(rng: np.random.Generator, size: int) -> np.ndarray:
    """Words per sentence: 1 + lognormal(median 17, sigma 0.6), at most 200 (mean about 20)."""
    return np.minimum(1 + rng.lognormal(np.log(17.0), 0.6, size).astype(np.int64), 200)


def zipf_blocks(tokens: int, vocab: int, exponent: float, seed: int) -> Iterator[str]:
    """Text blocks of Zipf words; inverse-CDF sampling keeps it O(tokens log vocab)."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights / weights.sum())
    words = np.array([f"w{r}" for r in range(1, vocab + 1)], dtype=object)
    left = tokens
    while left > 0:
        lengths = _lengths_for(rng, min(left, BLOCK_TOKENS))
        ids = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), vocab - 1)
        yield _join(words[ids], lengths)
        left -= int(lengths.sum())


def ptb_blocks(tokens: int, seed: int) -> Iterator[str]:
    """Text blocks of PTB training sentences drawn with replacement; the last one is cut to
    make the token count exact."""
    with zipfile.ZipFile(CORPORA / "ptb.zip") as z:
        lines = [
            ln.split() for ln in z.read("ptb/ptb.train.txt").decode().splitlines() if ln.strip()
        ]
    rng = np.random.default_rng(seed)
    left = tokens
    while left > 0:
        out: list[str] = []
        block = 0
        while block < min(left, BLOCK_TOKENS):
            words = lines[int(rng.integers(len(lines)))][: left - block]
            out.append(" ".join(words) + "\n")
            block += len(words)
        yield "".join(out)
        left -= block


def _lengths_for(rng: np.random.Generator, tokens: int) -> np.ndarray:
    """Sentence lengths summing to exactly ``tokens`` (the last one cut); drawing ``tokens``
    lengths of at least 1 always covers them."""
    lengths = sentence_lengths(rng, tokens)
    ends = np.cumsum(lengths)
    k = int(np.searchsorted(ends, tokens))
    lengths = lengths[: k + 1].copy()
    lengths[k] -= int(ends[k]) - tokens
    return lengths[lengths > 0]


def _join(words: np.ndarray, lengths: np.ndarray) -> str:
    """Words separated by spaces, a newline after each sentence."""
    seps = np.full(words.size, " ", dtype=object)
    seps[np.cumsum(lengths) - 1] = "\n"
    parts = np.empty(2 * words.size, dtype=object)
    parts[0::2], parts[1::2] = words, seps
    return "".join(parts.tolist())


def write_corpus(
    path: Path,
    tokens: int,
    *,
    source: str = "zipf",
    vocab: int = 200_000,
    exponent: float = 1.0,
    seed: int = 0,
) -> int:
    """Write a corpus of ``tokens`` words to ``path``; returns its size in bytes."""
    blocks = (
        zipf_blocks(tokens, vocab, exponent, seed) if source == "zipf" else ptb_blocks(tokens, seed)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for block in blocks:
            f.write(block)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--tokens", type=int, required=True, help="words to write (</s> not counted)"
    )
    parser.add_argument("--source", choices=("zipf", "ptb"), default="zipf")
    parser.add_argument("--vocab", type=int, default=200_000, help="zipf: number of word types")
    parser.add_argument("--exponent", type=float, default=1.0, help="zipf: s of p ~ 1/rank**s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = write_corpus(
        args.out,
        args.tokens,
        source=args.source,
        vocab=args.vocab,
        exponent=args.exponent,
        seed=args.seed,
    )
    print(f"{args.out}: {args.tokens:,} tokens, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
