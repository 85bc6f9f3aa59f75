from collections import Counter

import numpy as np
import pytest

from lmpipe.lm.errors import ConfigError
from lmpipe.lm.tokenize import (
    char_tokens,
    get_normalizer,
    get_tokenizer,
    whitespace_tokens,
    word_tokens,
)
from lmpipe.lm.vocab import (
    BOS,
    EOS,
    PAD,
    UNK,
    VocabularyError,
    build_vocab,
    encode_sentences,
    sentence_bounds,
)


def test_reserved_ids_are_fixed():
    assert (UNK, BOS, EOS, PAD) == (0, 1, 2, 3)


def test_vocab_orders_by_frequency_then_first_appearance():
    v = build_vocab([["b", "a", "c"], ["a", "c", "d"]])
    assert v.tokens == ("<unk>", "<s>", "</s>", "<pad>", "a", "c", "b", "d")
    assert v.counts == (0, 0, 0, 0, 2, 2, 1, 1)
    assert v.predictable_size == 4 + 2  # words + </s> + <unk>


def test_min_freq_maps_rare_words_to_unk_and_counts_them():
    v = build_vocab([["a", "a", "b", "c"]], min_freq=2)
    assert v.tokens[4:] == ("a",)
    assert v.counts[0] == 2  # b and c
    assert v.ids(["a", "b", "zzz"]) == [4, UNK, UNK]


def test_min_freq_leaving_only_reserved_tokens_is_a_clear_error():
    with pytest.raises(VocabularyError, match="min_freq=5 leaves no word"):
        build_vocab([["a", "b"]], min_freq=5)


def test_literal_unk_is_the_unknown_token():
    v = build_vocab([["<unk>", "x", "<unk>"]])
    assert "<unk>" not in v.tokens[4:]
    assert v.id("<unk>") == UNK and v.counts[UNK] == 2


def test_stream_ends_every_sentence_with_eos():
    v = build_vocab([["a", "b"]])
    s = encode_sentences(v, [["a"], ["b", "a", "q"], []])
    assert s.tolist() == [4, EOS, 5, 4, UNK, EOS, EOS]
    assert sentence_bounds(s).tolist() == [0, 2, 6, 7]
    assert s.dtype == np.int32


def test_fingerprint_changes_with_the_tokens():
    assert build_vocab([["a"]]).fingerprint() != build_vocab([["b"]]).fingerprint()


def test_tokenizers():
    assert char_tokens("分开 了") == ["分", "开", " ", "了"]
    assert word_tokens("The Time-Traveller's 2 eyes!") == ["the", "time", "traveller", "s", "eyes"]
    assert whitespace_tokens(" a  <unk>\tN ") == ["a", "<unk>", "N"]
    with pytest.raises(ConfigError, match="unknown tokenizer 'bpe2'"):
        get_tokenizer("bpe2")


def test_d2l_normalisation_gives_its_28_symbols(corpora_dir):
    norm = get_normalizer("d2l")
    counter: Counter[str] = Counter()
    for line in (corpora_dir / "timemachine.txt").read_text(encoding="utf-8").splitlines():
        line = norm(line).strip()
        if line:
            counter.update(line)
    # 26 letters and the space; with <unk> that is d2l's 28-symbol vocabulary
    assert len(counter) == 27 and " " in counter
