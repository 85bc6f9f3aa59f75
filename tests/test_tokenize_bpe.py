"""``--tokenizer bpe``: byte-level BPE learned on the training split, stored with the vocabulary,
exact to decode; merges worked out by hand on literal texts."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lmpipe.lm.bpe import Bpe
from lmpipe.lm.corpus import resolve_files
from lmpipe.lm.ingest import IngestSettings, _LineTokens, ingest, load_stream, load_vocab
from lmpipe.lm.steps.ingest import ingest_settings
from lmpipe.lm.tokenize import detokenize, get_tokenizer
from lmpipe.lm.warehouse import Warehouse


def lmpipe(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_merges_by_hand() -> None:
    """ "abab abab": pre-tokens ``abab`` and ``Ġabab``; pairs (a,b) x4, (b,a) x2, (Ġ,a) x1, so
    the first merge is ``ab``; then (ab,ab) x2 against (Ġ,ab) x1, so the second is ``abab``.
    Two merges beyond the 256 bytes: the text is three units."""
    bpe = Bpe.learn(["abab abab"], vocab_size=258)
    assert bpe.size == 258
    assert bpe.tokens("abab abab") == ["abab", "Ġ", "abab"]
    # a pair seen once is never merged (MIN_PAIR_COUNT), however large the budget
    assert Bpe.learn(["xy"], vocab_size=1000).tokens("xy") == ["x", "y"]
    # no merge at all: bytes; a Chinese character is its three UTF-8 bytes
    assert Bpe.learn(["ab"], vocab_size=256).tokens("这") == ["è", "¿", "Ļ"]


@pytest.mark.parametrize(
    "line",
    [
        "the time traveller  (for so it will be convenient)",
        "分开 不分开\t周杰伦 2024年",
        "a\u00a0b",
    ],
)
def test_decoding_is_exact(line: str) -> None:
    bpe = Bpe.learn(["the time traveller", "不分开 分开", "周杰伦的歌"] * 3, vocab_size=300)
    assert bpe.decode(bpe.tokens(line)) == line


def test_pieces_cut_at_whitespace_tokenize_as_the_whole_line() -> None:
    """Long lines stream in pieces: cutting before the last whitespace gives exactly the tokens
    of the whole line (GPT-2's pattern keeps a word's leading space with the word)."""
    bpe = Bpe.learn(["the cat sat on the mat", "the  cat\tsat"] * 4, vocab_size=280)
    line = "the cat  sat on\tthe mat, the cat"
    whole = bpe.tokens(line)
    settings = IngestSettings(tokenizer="bpe", bpe_vocab_size=280)
    for size in (1, 2, 3, 5, 7):
        feed = _LineTokens(settings, bpe.tokens)
        pieces = [line[i : i + size] for i in range(0, len(line), size)]
        got = [
            t
            for k, p in enumerate(pieces)
            for chunk in feed.feed(p, k == len(pieces) - 1)
            for t in chunk
        ]
        assert got == whole, size


def test_learned_on_the_training_split_only(tmp_path: Path) -> None:
    """A word that occurs only in the test text is never a unit; the merges are stored with
    the vocabulary; the same content and size give the same key and merges."""
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("low lower lowest\n" * 5)
    test.write_text("zzzz zzzz zzzz zzzz\nlow\n")
    wh = Warehouse(tmp_path / "wh")
    src = resolve_files("own", train=str(train), test=str(test), tokenizer="bpe")
    r = ingest(src, IngestSettings(tokenizer="bpe", bpe_vocab_size=270), wh)
    merges = Path(r.tokenizer_path)
    assert merges.parent == Path(r.vocab_path).parent and merges.name == "tokenizer.json"
    bpe = Bpe.load(merges)
    assert bpe.tokens("zzzz") == ["z"] * 4 and bpe.tokens(" low") == ["Ġlow"]
    vocab = load_vocab(r.vocab_path)
    # the vocabulary is the units training's tokens use: Ġlow is a merge, but training always
    # merged it further (Ġlower, Ġlowest); z never occurred
    assert vocab.tokens[4:] == ("low", "Ġlower", "Ġlowest")
    stream = load_stream(r.splits["test"].path).tolist()
    # "zzzz" + 3 x ("Ġ" "zzzz") out of vocabulary, "low" known
    assert r.splits["test"].oov == 4 + 3 * 5 and stream.count(0) == r.splits["test"].oov
    # bits per byte count the text's bytes, whatever the units
    assert r.splits["test"].bytes == len("zzzz zzzz zzzz zzzz\nlow\n")
    again = ingest(
        resolve_files("own", train=str(train), test=str(test), tokenizer="bpe"),
        IngestSettings(tokenizer="bpe", bpe_vocab_size=270),
        Warehouse(tmp_path / "wh2"),
    )
    assert again.key == r.key
    assert Path(again.tokenizer_path).read_text() == merges.read_text()


def test_the_size_is_part_of_the_bpe_key_only() -> None:
    assert ingest_settings("bpe", {}).bpe_vocab_size == 1000
    assert ingest_settings("bpe", {"bpe_vocab_size": 500}).bpe_vocab_size == 500
    assert ingest_settings("char", {"bpe_vocab_size": 500}).bpe_vocab_size is None


def test_a_learned_tokenizer_needs_its_merges() -> None:
    with pytest.raises(Exception, match="learned from a corpus's training split"):
        get_tokenizer("bpe")


def test_cli_ngram_train_generate_and_check(tmp_path: Path, tiny_text: Path) -> None:
    """Through the command line: n-gram scores with finite bits per byte, a training, a
    generation that decodes exactly (the prefix comes back as typed), the vocab view, check."""
    home = tmp_path / "home"
    text = tmp_path / "story.txt"
    text.write_text(
        "".join(f"the time traveller {w} the machine\n" for w in ("saw", "built", "rode") * 20)
    )
    r = lmpipe(
        "ngram", "--text", str(text), "--tokenizer", "bpe", "--bpe-vocab-size", "300",
        "--order", "3", "--json", home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["tokenizer"] == "bpe" and math.isfinite(out["bits_per_byte"])
    assert out["bits_per_byte"] < 1.0  # a repetitive text: well under a bit per byte
    r = lmpipe(
        "train", "--text", str(text), "--tokenizer", "bpe", "--bpe-vocab-size", "300",
        "--arch", "gru", "--epochs", "1", "--hidden", "16", "--embed", "16", "--batch-size", "4",
        "--seq-len", "16", "--json", home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    r = lmpipe(
        "generate", "--run", run_id, "--prefix", "the time  trav", "--length", "20", home=home
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("the time  trav")
    r = lmpipe(
        "sql", "select count(*) as n from vocab where tokenizer = 'bpe' and token = 'Ġtime'",
        "--format", "json", home=home,
    )  # fmt: skip
    assert r.returncode == 0 and json.loads(r.stdout) == [{"n": 1}], r.stderr
    assert lmpipe("check", home=home).returncode == 0
    # the merges are part of the ingest: losing them is found, and repaired by a new ingest
    (merges,) = (home / "data" / "warehouse" / "vocab").rglob("tokenizer.json")
    merges.unlink()
    r = lmpipe("check", home=home)
    assert r.returncode != 0 and "merges" in r.stdout + r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tokenizer", "char", "--bpe-vocab-size", "500"],
            "--bpe-vocab-size sizes --tokenizer bpe",
        ),
        (["--tokenizer", "bpe", "--bpe-vocab-size", "100"], "--bpe-vocab-size must be"),
    ],
)
def test_cli_refuses_sizes_that_do_nothing(
    tmp_path: Path, tiny_text: Path, args: list[str], message: str
) -> None:
    r = lmpipe("ngram", "--text", str(tiny_text), "--order", "2", *args, home=tmp_path / "h")
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_cli_lm_with_bpe_is_refused(tmp_path: Path) -> None:
    arpa = tmp_path / "m.arpa"
    arpa.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n\n\\end\\\n")
    r = lmpipe("ngram", "--lm", str(arpa), "--test", str(arpa), "--tokenizer", "bpe", home=tmp_path)
    assert r.returncode == 2 and "an ARPA model brings none" in r.stderr, r.stderr


def test_detokenize_ends_lines_at_eos(tmp_path: Path) -> None:
    bpe = Bpe.learn(["分开 不分开"] * 3, vocab_size=270)
    bpe.save(tmp_path / "tokenizer.json")
    tokens = bpe.tokens("不分开 分开") + ["</s>"] + bpe.tokens("分开")
    assert detokenize("bpe", tokens, tmp_path / "tokenizer.json") == "不分开 分开\n分开"
    assert get_tokenizer("bpe", tmp_path / "tokenizer.json")("分开") == bpe.tokens("分开")
