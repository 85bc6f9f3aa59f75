"""PTB test perplexities of KenLM (KENLM_MKN.md §10), to every digit. Slow: real corpus."""

import zipfile

import pytest

from lm.ngram import fit, kenlm_perplexity
from lm.vocab import build_vocab, encode_sentences

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
