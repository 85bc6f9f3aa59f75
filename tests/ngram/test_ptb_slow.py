"""PTB test perplexities of KenLM (docs/kenlm-mkn.md §10), to every digit. Slow: real corpus."""

import zipfile

import pytest

from lmpipe.lm.ngram import fit, kenlm_perplexity
from lmpipe.lm.vocab import build_vocab, encode_sentences

from .conftest import CORPORA

PTB_KENLM = {
    2: 185.7048931511453,
    3: 148.2814995024931,
    4: 142.71560595161773,
    5: 141.1862070921484,
}


@pytest.mark.slow
@pytest.mark.skipif(not (CORPORA / "ptb.zip").exists(), reason="shared corpora absent")
def test_ptb_matches_kenlm_exactly() -> None:
    with zipfile.ZipFile(CORPORA / "ptb.zip") as z:
        split = {
            k: [
                line.split()
                for line in z.read(f"ptb/ptb.{k}.txt").decode().splitlines()
                if line.strip()
            ]
            for k in ("train", "test")
        }
    vocab = build_vocab(split["train"])
    train, test = (encode_sentences(vocab, split[k]) for k in ("train", "test"))
    for order, expected in PTB_KENLM.items():
        scores = fit(train, order, "mkn", vocab_size=len(vocab)).score(test)
        assert kenlm_perplexity(scores)[0] == expected


@pytest.mark.slow
@pytest.mark.skipif(not (CORPORA / "ptb.zip").exists(), reason="shared corpora absent")
def test_ptb_5gram_arpa_agrees_with_the_kenlm_module_sentence_by_sentence(tmp_path) -> None:
    """Our 5-gram, exported to ARPA and loaded by the `kenlm` module: every PTB test sentence's
    log10 score equals ours to 1e-4; the ARPA file imported and scored by lmpipe reproduces the
    kenlm module's perplexity."""
    import math

    import numpy as np

    kenlm = pytest.importorskip("kenlm")
    from lmpipe.lm.ngram import load_arpa, write_arpa
    from lmpipe.lm.vocab import sentence_bounds

    with zipfile.ZipFile(CORPORA / "ptb.zip") as z:
        train_s, test_s = (
            [
                line.split()
                for line in z.read(f"ptb/ptb.{k}.txt").decode().splitlines()
                if line.strip()
            ]
            for k in ("train", "test")
        )
    vocab = build_vocab(train_s)
    model = fit(encode_sentences(vocab, train_s), 5, "mkn", vocab_size=len(vocab))
    test = encode_sentences(vocab, test_s)
    arpa = tmp_path / "ptb5.arpa"
    # kenlm knows PTB's literal <unk> as its own unknown word: write it under that name
    write_arpa(model, arpa, list(vocab.tokens))
    km = kenlm.Model(str(arpa))
    ours = model.score(test).logprob / math.log(10)
    bounds = sentence_bounds(test)
    ours_sent = np.add.reduceat(ours, bounds[:-1])
    theirs = np.array([km.score(" ".join(s), bos=True, eos=True) for s in test_s])
    assert len(theirs) == len(ours_sent) == 3761
    assert np.max(np.abs(ours_sent - theirs)) < 1e-4
    # the ARPA file, imported by lmpipe, reproduces kenlm's own perplexity for it
    total = sum(km.score(" ".join(s), bos=True, eos=True) for s in test_s)
    kenlm_ppl = 10 ** (-total / len(test))
    imported = load_arpa(arpa).score([" ".join(s) for s in test_s])
    assert kenlm_perplexity(imported)[0] == pytest.approx(kenlm_ppl, rel=1e-9)
