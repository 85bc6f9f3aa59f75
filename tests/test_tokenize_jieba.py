"""``--tokenizer jieba``: Chinese words by jieba's bundled dictionary, checked by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from lmpipe.lm.tokenize import detokenize, get_tokenizer

jieba = get_tokenizer("jieba")


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("周杰伦的歌《七里香》很好听", ["周杰伦", "的", "歌", "《", "七里香", "》", "很", "好听"]),
        # whitespace dropped; Latin and digit runs whole
        (
            "我爱北京天安门 hello world 2024年",
            ["我", "爱", "北京", "天安门", "hello", "world", "2024", "年"],
        ),  # fmt: skip
        ("  空格  之间 ", ["空格", "之间"]),
    ],
)
def test_segmentation(line: str, words: list[str]) -> None:
    assert jieba(line) == words


def test_detokenize_spaces_only_between_latin_runs() -> None:
    tokens = ["我", "爱", "hello", "world", "2024", "年", "</s>", "好听"]
    assert detokenize("jieba", tokens) == "我爱hello world 2024年\n好听"


def test_jaychou_by_words_end_to_end(corpora_dir, tmp_path) -> None:
    """The issue's command: Jay Chou's lyrics by jieba words, a trigram MKN model, finite bits
    per byte; fewer tokens than characters, a larger vocabulary."""

    def ngram(tokenizer: str) -> dict:
        r = subprocess.run(
            [sys.executable, "-m", "lmpipe.flows.cli", "ngram", "--corpus", "jaychou",
             "--tokenizer", tokenizer, "--order", "3", "--smoothing", "mkn", "--json",
             "--corpora-dir", str(corpora_dir), "--home", str(tmp_path / "home")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    words, chars = ngram("jieba"), ngram("char")
    assert words["tokenizer"] == "jieba" and math.isfinite(words["bits_per_byte"])
    assert 0.3 * chars["tokens"] < words["tokens"] < 0.9 * chars["tokens"]
    assert 0.5 < words["bits_per_byte"] / chars["bits_per_byte"] < 2
