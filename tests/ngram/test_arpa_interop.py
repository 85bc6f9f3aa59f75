"""Scoring with an ARPA model made elsewhere, as KenLM scores it: an n-gram whose suffix the file
lacks (SRILM's pruned models) gets KenLM's blank, a literal ``</s>`` inside a line is a word and
the line goes on, and ``lmpipe ngram --lm`` prints and stores the figures of a trained model.

The model below is written by hand (order 4; the n-grams with ``a`` only give KenLM's hash
tables the room its blanks need, no test sentence uses them). The file lacks the suffixes
``the sat`` (of ``cat the sat``), ``cat sat the`` and ``sat the`` (of ``the cat sat the``); the
blanks KenLM fills in are what backing off gives: sat the = bo(sat) + p(the) = -1.0,
cat sat the = bo(cat sat) + p(sat the) = -1.35, the sat = bo(the) + p(sat) = -1.5, each with
backoff 0.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import kenlm
import numpy as np
import pytest

from lmpipe.lm.ngram import ArpaError, kenlm_perplexity, load_arpa

ARPA = """
\\data\\
ngram 1=7
ngram 2=11
ngram 3=7
ngram 4=1

\\1-grams:
-1.0\t<s>\t-0.5
-0.7\t</s>
-0.9\tthe\t-0.3
-1.1\tcat\t-0.2
-1.2\tsat\t-0.1
-2.0\t<unk>
-1.3\ta\t-0.4

\\2-grams:
-0.4\t<s> the\t-0.25
-0.3\tthe cat\t-0.15
-0.5\tcat sat\t-0.35
-0.6\tsat </s>
-0.8\tcat the\t-0.05
-0.9\ta a\t-0.1
-0.9\ta the
-0.9\ta cat
-0.9\ta sat
-0.9\ta </s>
-1.1\tthe a

\\3-grams:
-0.1\t<s> the cat\t-0.12
-0.15\tcat the sat
-0.2\tthe cat sat\t-0.07
-0.5\ta a a
-0.5\ta a the
-0.5\ta a cat
-0.5\ta a sat

\\4-grams:
-0.05\tthe cat sat the

\\end\\
"""

# log10 p of every token, worked out by hand from the file (query's rule: the longest n-gram
# present, plus the backoffs of the longer contexts; absent contexts and blanks back off by 0)
EXPECTED = {
    # cat: p(cat) + bo(<s>); sat: cat sat; the: blank cat sat the; </s>: p(</s>) + bo(the)
    "cat sat the": [-1.6, -0.5, -1.35, -1.0],
    # </s> inside: p(</s>) + bo(cat) + bo(the cat) + bo(<s> the cat); then sat goes on from
    # "the cat </s>" (not from <s>: that would be -1.7); dog is <unk>: p(<unk>) + bo(sat)
    "the cat </s> sat dog": [-0.4, -0.1, -1.17, -1.2, -2.1, -0.7],
    # the: cat the; sat: cat the sat; </s>: sat </s> (the blank the sat backs off by 0)
    "cat the sat": [-1.6, -0.8, -0.15, -0.6],
    # sat: the blank the sat + bo(<s> the), exactly what backing off gives
    "the sat": [-0.4, -1.75, -0.6],
}


@pytest.fixture
def arpa(tmp_path: Path) -> Path:
    path = tmp_path / "hand.arpa"
    path.write_text(ARPA.lstrip(), encoding="utf-8")
    return path


def test_blanks_and_literal_eos_score_as_worked_out_by_hand(arpa: Path) -> None:
    model = load_arpa(arpa)
    assert model.blanks == 3 and model.size == 26
    scores = model.score(list(EXPECTED))
    expected = [v for values in EXPECTED.values() for v in values]
    np.testing.assert_allclose(scores.logprob / np.log(10), expected, rtol=1e-6)
    assert np.flatnonzero(scores.oov).tolist() == [8]  # dog


def test_scores_equal_the_kenlm_module(arpa: Path) -> None:
    model = load_arpa(arpa)
    ref = kenlm.Model(str(arpa))
    sentences = [*EXPECTED, "sat sat the cat the sat </s> </s>", "", "<s> the cat sat the"]
    scores = model.score(sentences)
    theirs = [p for s in sentences for p, _, _ in ref.full_scores(s)]
    np.testing.assert_allclose(scores.logprob / np.log(10), theirs, rtol=1e-6)
    total = sum(ref.score(s) for s in sentences)
    assert kenlm_perplexity(scores)[0] == pytest.approx(10 ** (-total / len(theirs)), rel=1e-12)


def _lmpipe(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cli_scores_a_gzipped_model_and_stores_the_result(tmp_path: Path, arpa: Path) -> None:
    gz = tmp_path / "hand.arpa.gz"
    gz.write_bytes(gzip.compress(arpa.read_bytes()))
    text = tmp_path / "heldout.txt"
    text.write_text("cat sat the\n\n  the cat </s> sat dog  \ncat the sat\nthe sat\n", "utf-8")
    home = tmp_path / "home"
    r = _lmpipe("ngram", "--lm", gz, "--test", text, "--json", "--home", home, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    log10 = [v for values in EXPECTED.values() for v in values]
    assert out["tokens"] == 17 and out["oov"] == 1 and out["n"] == 4
    assert out["model"] == "hand" and out["corpus"] == "heldout" and out["parameters"] == 26
    assert out["perplexity"] == pytest.approx(10 ** (-sum(log10) / 17), rel=1e-6)
    excl = 10 ** (-(sum(log10) + 2.1) / 16)
    assert out["perplexity_excluding_oov"] == pytest.approx(excl, rel=1e-6)
    n_bytes = len(b"cat sat the\nthe cat </s> sat dog\ncat the sat\nthe sat\n")
    bits = -sum(log10) * np.log2(10)
    assert out["bits_per_byte"] == pytest.approx(bits / n_bytes, rel=1e-6)
    assert out["bits_per_token"] == pytest.approx(bits / 17, rel=1e-6)
    r = _lmpipe("sql", "--home", home, "--format", "json",
                "select model, method, n, split, tokens from results", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        {"model": "hand", "method": "arpa", "n": 4, "split": "test", "tokens": 17}
    ]
    assert _lmpipe("check", "--home", home, cwd=tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--order", "3"], "--order cannot go with it"),
        (["--smoothing", "kn"], "--smoothing cannot go with it"),
        ([], "--lm needs the text to score"),
    ],
)
def test_cli_refuses_what_a_given_model_fixes(
    tmp_path: Path, arpa: Path, extra: list[str], message: str
) -> None:
    text = tmp_path / "t.txt"
    text.write_text("the cat\n", encoding="utf-8")
    test = [] if not extra else ["--test", text]
    r = _lmpipe("ngram", "--lm", arpa, *test, *extra, "--home", tmp_path / "h", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_binary_form_scores_the_same_and_refuses_damage(tmp_path: Path, arpa: Path) -> None:
    from lmpipe.lm.ngram.binary import load_binary, load_model, write_binary

    model = load_arpa(arpa)
    out = tmp_path / "hand.bin"
    write_binary(model, out)
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()  # as open() creates a file
    again = load_model(out)
    assert not again.tables.records[0].flags.owndata  # mapped, not read
    assert (again.order, again.tokens, again.blanks, again.size) == (4, model.tokens, 3, 26)
    ref = model.score(list(EXPECTED))
    scores = again.score(list(EXPECTED))
    np.testing.assert_array_equal(scores.logprob, ref.logprob)
    assert (scores.total_log10, scores.oov_log10) == (ref.total_log10, ref.oov_log10)
    out.write_bytes(out.read_bytes()[:-64])
    with pytest.raises(ArpaError, match="truncated"):
        load_binary(out)
    assert load_model(arpa).size == 26  # text is told apart from binary by the magic


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
