"""ARPA export read back by kenlm and by load_arpa: same scores as the model itself."""

import warnings

import kenlm
import numpy as np
import pytest

from lmpipe.lm.ngram import ArpaError, fit, kenlm_perplexity, load_arpa, write_arpa

from .conftest import encode

TEST = ["the cat sat on the dog", "a cat ran down", "the bird sat", "dog"]


@pytest.mark.parametrize("method", ["mkn", "kn", "witten-bell", "absolute", "katz"])
def test_kenlm_reads_our_arpa(tmp_path, small, method: str) -> None:
    vocab, stream = small
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = fit(stream, 3, method, vocab_size=len(vocab))
    path = tmp_path / "m.arpa"
    write_arpa(model, path, vocab.tokens)
    lm = kenlm.Model(str(path))
    for line in TEST:
        _, one = encode([line], vocab)
        ours = model.score(one).logprob / np.log(10)
        theirs = np.array([s[0] for s in lm.full_scores(line)])
        # log10 0 (Katz on tiny data) is written as SRILM's -99, which kenlm adds up
        finite = np.isfinite(ours)
        np.testing.assert_allclose(ours[finite], theirs[finite], atol=1e-4, err_msg=line)
        assert (theirs[~finite] <= -99).all()
    loaded = load_arpa(path)
    ours = model.score(encode(TEST, vocab)[1])
    theirs = loaded.score(TEST)
    np.testing.assert_allclose(
        np.maximum(theirs.logprob, -99 * np.log(10)),
        np.maximum(ours.logprob, -99 * np.log(10)),
        atol=1e-3,
    )
    if method == "mkn":
        np.testing.assert_array_equal(theirs.logprob, ours.logprob)
        assert kenlm_perplexity(theirs) == kenlm_perplexity(ours)


def test_load_arpa_reproduces_kenlm_perplexity(tmp_path, toy) -> None:
    vocab, stream = toy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = fit(stream, 3, "mkn", vocab_size=len(vocab))
    path = tmp_path / "toy.arpa"
    write_arpa(model, path, vocab.tokens)
    scores = load_arpa(path).score(["the cat sat down", "the bird sat"])
    assert kenlm_perplexity(scores) == (3.875606832595709, 2.837572657842173)
    lm = kenlm.Model(str(path))
    total = sum(lm.score(s) for s in ["the cat sat down", "the bird sat"])
    assert 10 ** (-total / 9) == pytest.approx(3.875606832595709, rel=1e-7)


def test_export_refuses_non_backoff_models(tmp_path, small) -> None:
    vocab, stream = small
    with pytest.raises(TypeError, match="backoff form"):
        write_arpa(
            fit(stream, 2, "add-k", vocab_size=len(vocab)), tmp_path / "x.arpa", vocab.tokens
        )


def test_malformed_arpa(tmp_path) -> None:
    path = tmp_path / "bad.arpa"
    path.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n\\end\\\n")
    with pytest.raises(ArpaError, match="header says 2"):
        load_arpa(path)


def test_arpa_without_unk_gets_kenlm_substitute(tmp_path) -> None:
    path = tmp_path / "nounk.arpa"
    path.write_text(
        "\\data\\\nngram 1=3\n\n\\1-grams:\n-0.5\t<s>\t0\n-0.3\t</s>\n-0.2\tx\n\n\\end\\\n"
    )
    scores = load_arpa(path).score(["x y"])
    np.testing.assert_allclose(scores.logprob / np.log(10), [-0.2, -100.0, -0.3], rtol=1e-6)
    assert scores.oov.tolist() == [False, True, False]
