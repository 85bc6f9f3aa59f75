"""Count pruning at estimation, as lmplz ``--prune`` (KenLM ``AdjustCounts`` and
``InitialProbabilities``): an n-gram goes when its raw count is at most its order's threshold;
the discounts stay those of the unpruned counts; a context's pruned extensions still count in
its denominator, and their adjusted counts join its backoff's numerator."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from lmpipe.lm.ngram import DiscountFallbackWarning, fit, write_arpa
from lmpipe.lm.ngram.mkn import prune_thresholds

from .conftest import SMALL, encode

# lmplz -o 3 --prune 0 1 --discount_fallback < SMALL (KenLM 0.3.0, built by
# benchmarks/build_kenlm.sh): the whole ARPA file
LMPLZ_PRUNE_0_1 = """\
\\data\\
ngram 1=11
ngram 2=5
ngram 3=1

\\1-grams:
-1.3290588	<unk>	0
0	<s>	-0.03945416
-0.6922366	</s>	0
-0.9610819	the	-0.06790023
-0.9610819	cat	-0.049904294
-0.9610819	sat	0
-0.9610819	dog	-0.106296636
-1.1072099	down	0
-1.1072099	a	0
-1.1072099	ran	0
-1.1072099	on	0

\\2-grams:
-0.5381596	cat </s>	0
-1.0005361	<s> the	-0.17609124
-0.62291014	the cat	0
-0.51893824	dog sat	0
-0.8008414	<s> a	0

\\3-grams:
-0.30786943	<s> the cat

\\end\\
"""


def arpa_rows(text: str) -> dict[tuple[str, ...], tuple[str, ...]]:
    """n-gram -> its other fields, as printed; header lines by their text."""
    rows: dict[tuple[str, ...], tuple[str, ...]] = {}
    for line in text.splitlines():
        if line.startswith("ngram "):
            rows[(line,)] = ()
        elif "\t" in line:
            fields = line.split("\t")
            rows[tuple(fields[1].split())] = (fields[0], *fields[2:])
    return rows


def fit_small(order: int, prune_counts: list[int] | None):
    vocab, stream = encode(SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiscountFallbackWarning)
        return vocab, fit(stream, order, "mkn", vocab_size=len(vocab), prune_counts=prune_counts)


def test_equals_lmplz_prune(tmp_path: Path) -> None:
    vocab, model = fit_small(3, [0, 1])
    write_arpa(model, tmp_path / "m.arpa", list(vocab.tokens))
    assert arpa_rows((tmp_path / "m.arpa").read_text()) == arpa_rows(LMPLZ_PRUNE_0_1)


def test_bigram_values_by_hand() -> None:
    """Order 2, bigrams seen once pruned. Kept: <s> the (3), the cat (3), dog sat (2), <s> a
    (2), cat </s> (2). Context "the": S = 3 + 1 (the dog, pruned) = 4, so
    gamma(the) = (D3 * 1 + 1) / 4 and p(cat | the) = (3 - D3) / 4 + gamma(the) p(cat);
    context "sat": all three extensions pruned, gamma = 3 / 3 = 1, log10 backoff 0. The
    unigrams and the discounts are those of the unpruned model."""
    vocab, model = fit_small(2, [0, 1])
    _, full = fit_small(2, None)
    f32 = np.float32
    d3 = model.details["discounts"][1][2]
    np.testing.assert_array_equal(model.details["discounts"], full.details["discounts"])
    np.testing.assert_array_equal(model.tables.logp[0], full.tables.logp[0])

    def row(*words: str) -> int:
        (r,) = model.trie.lookup(np.array([[vocab.id(w) for w in words]]))
        assert r >= 0, words
        return int(r)

    kept = {("<s>", "the"), ("the", "cat"), ("dog", "sat"), ("<s>", "a"), ("cat", "</s>")}
    assert model.trie.size(2) == len(kept) and all(row(*g) >= 0 for g in kept)
    gamma_the = f32((f32(d3) * f32(1) + f32(1)) / f32(4))
    assert model.tables.backoff[0][row("the")] == np.log10(gamma_the, dtype=f32)
    p_cat = f32(10.0) ** model.tables.logp[0][row("cat")]
    p = f32(f32(f32(3) - d3) / f32(4)) + f32(gamma_the * p_cat)
    assert model.tables.logp[1][row("the", "cat")] == pytest.approx(np.log10(p), abs=2e-7)
    assert model.tables.backoff[0][row("sat")] == 0.0
    # the pruned model is still a distribution
    for context in ("the", "sat", "<s>"):
        dist = model.distribution([vocab.id(context)])
        assert abs(dist.sum() - 1.0) < 1e-5, context


def test_zero_thresholds_are_no_pruning() -> None:
    _, pruned = fit_small(3, [0, 0, 0])
    _, full = fit_small(3, None)
    for a, b in zip(pruned.tables.logp, full.tables.logp, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("given", "order", "expected"),
    [(None, 3, [0, 0, 0]), ([0, 1], 4, [0, 1, 1, 1]), ([0, 0, 2], 3, [0, 0, 2])],
)
def test_thresholds_repeat_the_last(given, order, expected) -> None:
    assert prune_thresholds(given, order) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([1, 1], "the first threshold must be 0"),
        ([0, 2, 1], "must not decrease"),
        ([0, 1, 1, 1], "4 pruning thresholds for a model of order 3"),
    ],
)
def test_thresholds_refused(given, message) -> None:
    with pytest.raises(ValueError, match=message):
        prune_thresholds(given, 3)


def test_cli_prune_count(tmp_path: Path) -> None:
    text = tmp_path / "small.txt"
    text.write_text("\n".join(SMALL) + "\n")

    def lmpipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lmpipe.flows.cli", "ngram", "--train", str(text), "--test",
             str(text), "--order", "3", "--home", str(tmp_path / "h"), *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    r = lmpipe("--prune-count", "0,1", "--arpa", str(tmp_path / "m.arpa"), "--json")
    assert r.returncode == 0, r.stderr
    # the model's n-grams: the file's 11 unigrams (and the <pad> row every trie holds), 5 bigrams
    # and 1 trigram of the 26 unpruned
    assert json.loads(r.stdout)["parameters"] == 12 + 5 + 1
    assert arpa_rows((tmp_path / "m.arpa").read_text()) == arpa_rows(LMPLZ_PRUNE_0_1)
    for args, message in (
        (["--prune-count", "0 2 1"], "must not decrease"),
        (["--prune-count", "0 x"], "'x' is not a count"),
        (["--prune-count", "0 1", "--smoothing", "kn"], "for mkn; kn has none"),
        (["--prune-count", "0 1", "--engine", "duckdb"], "drop --engine duckdb"),
    ):
        r = lmpipe(*args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1, r.stderr
