import gzip
import pickle
import socket
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lmpipe.lm.corpus import (
    TextSource,
    expand_path,
    fetch,
    iter_lines,
    load_registry,
    resolve_files,
    resolve_registry,
)
from lmpipe.lm.errors import CorpusError
from lmpipe.lm.ingest import IngestSettings, ingest, load_stream, load_vocab
from lmpipe.lm.warehouse import Warehouse


def test_registry_names_the_three_reference_corpora():
    reg = load_registry()
    assert set(reg) >= {"timemachine", "jaychou", "ptb"}
    assert reg["ptb"].members == {
        "train": "ptb/ptb.train.txt",
        "valid": "ptb/ptb.valid.txt",
        "test": "ptb/ptb.test.txt",
    }
    assert (
        reg["timemachine"].sha256
        == "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516"
    )


def test_corpora_dir_is_used_and_verified(corpora_dir, tmp_path):
    p = fetch(load_registry()["timemachine"], tmp_path / "cache", corpora_dir)
    assert p == corpora_dir / "timemachine.txt"
    assert not (tmp_path / "cache").exists()  # nothing copied or downloaded


def test_checksum_mismatch_in_corpora_dir_is_an_error(tmp_path):
    (tmp_path / "timemachine.txt").write_text("not the book\n")
    with pytest.raises(CorpusError, match="sha256 .* expected 8424dbd9"):
        fetch(load_registry()["timemachine"], tmp_path / "cache", tmp_path)


def test_offline_download_error_says_which_file_to_put_where(tmp_path, monkeypatch):
    import lmpipe.lm.corpus as corpus

    def refuse(url, dest):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(corpus, "_download", refuse)
    with pytest.raises(CorpusError) as e:
        fetch(load_registry()["ptb"], tmp_path / "cache", None)
    msg = str(e.value)
    assert "ptb.zip" in msg and "LMPIPE_CORPORA_DIR" in msg and "\n" not in msg
    assert list((tmp_path / "cache").glob("*")) == []  # nothing partial kept


def test_bad_download_is_not_kept(tmp_path, monkeypatch):
    import lmpipe.lm.corpus as corpus

    monkeypatch.setattr(corpus, "embedded_path", lambda entry: None)
    monkeypatch.setattr(corpus, "_download", lambda url, dest: Path(dest).write_bytes(b"junk"))
    with pytest.raises(CorpusError, match="nothing was kept"):
        fetch(load_registry()["timemachine"], tmp_path / "cache", None)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_default_corpora_are_embedded_and_need_no_network(tmp_path, monkeypatch):
    import lmpipe.lm.corpus as corpus

    def offline(url, dest):
        raise AssertionError(f"downloaded {url}")

    monkeypatch.setattr(corpus, "_download", offline)
    reg = load_registry()
    for name, file in (("timemachine", "timemachine.txt"), ("jaychou", "jaychou_lyrics.txt.zip")):
        p = fetch(reg[name], tmp_path / "cache", None)
        assert p.name == file and p.parent.name == "corpora" and p.parent.parent.name == "data"
        assert corpus.sha256_file(p) == reg[name].sha256
    assert corpus.embedded_path(reg["ptb"]) is None  # PTB is download-only (LDC's terms)
    assert not (tmp_path / "cache").exists()


def test_look_up_order_is_corpora_dir_then_cache_then_embedded(tmp_path, corpora_dir):
    entry = load_registry()["timemachine"]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "timemachine.txt").write_bytes((corpora_dir / "timemachine.txt").read_bytes())
    assert fetch(entry, cache, corpora_dir) == corpora_dir / "timemachine.txt"
    assert fetch(entry, cache, tmp_path / "empty") == cache / "timemachine.txt"
    (cache / "timemachine.txt").unlink()
    assert fetch(entry, cache, None).parent.name == "corpora"  # the embedded copy
    # a damaged file earlier in the order is an error, never silently skipped
    (cache / "timemachine.txt").write_text("a forged time machine\n")
    with pytest.raises(CorpusError, match=r"cache/timemachine.txt has sha256"):
        fetch(entry, cache, None)


@pytest.mark.parametrize(
    "error, transient",
    [
        (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")), False),
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), False),
        (OSError(101, "Network is unreachable"), False),
        (urllib.error.HTTPError("http://x", 404, "Not Found", None, None), False),
        (urllib.error.HTTPError("http://x", 503, "Service Unavailable", None, None), True),
        (TimeoutError("timed out"), True),
        (urllib.error.URLError(ConnectionResetError(104, "Connection reset by peer")), True),
    ],
    ids=["no-dns", "refused", "unreachable", "404", "503", "timeout", "reset"],
)
def test_only_passing_download_failures_are_transient(tmp_path, monkeypatch, error, transient):
    import lmpipe.lm.corpus as corpus
    from lmpipe.lm.errors import DownloadError

    def fail(url, dest):
        raise error

    monkeypatch.setattr(corpus, "_download", fail)
    with pytest.raises(DownloadError) as e:
        fetch(load_registry()["ptb"], tmp_path / "cache", None)
    assert e.value.transient is transient
    assert pickle.loads(pickle.dumps(e.value)).transient is transient  # survives a Dask worker


def test_gz_zip_and_folder_sources(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("one\n")
    with gzip.open(tmp_path / "d" / "b.txt.gz", "wt") as f:
        f.write("two\n")
    with zipfile.ZipFile(tmp_path / "d" / "c.zip", "w") as z:
        z.writestr("inner/c.txt", "three\n")
    srcs = expand_path(tmp_path / "d")
    lines = [line for s in srcs for line in iter_lines(s)]
    assert lines == ["one", "two", "three"]
    assert [line for s in expand_path(str(tmp_path / "d" / "*.txt")) for line in iter_lines(s)] == [
        "one"
    ]


def test_invalid_utf8_names_file_and_byte_offset(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"ok line\nbad \xff here\n")
    with pytest.raises(CorpusError, match=r"bad.txt is not valid UTF-8 at byte 12"):
        list(iter_lines(TextSource(p)))


def test_replace_mode_counts_replacements(tmp_path):
    from lmpipe.lm.corpus import DecodeStats

    p = tmp_path / "bad.txt"
    p.write_bytes(b"a\xffb\xfe\n")
    stats = DecodeStats()
    assert list(iter_lines(TextSource(p), errors="replace", stats=stats)) == ["a\ufffdb\ufffd"]
    assert stats.replaced == 2


def test_contiguous_split_and_exact_counts(tiny_text, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    src = resolve_files("tiny", all_text=tiny_text)
    r = ingest(src, IngestSettings(tokenizer="whitespace"), wh)
    assert {s: st.lines for s, st in r.splits.items()} == {"train": 8, "valid": 1, "test": 1}
    vocab = load_vocab(r.vocab_path)
    # train words: the x5, cat x5, sat x5, dog x3 (first seen in line 2), a x3 (line 3), down x2
    assert vocab.tokens[4:] == ("the", "cat", "sat", "dog", "a", "down")
    assert vocab.counts[4:] == (5, 5, 5, 3, 3, 2)
    test = load_stream(r.splits["test"].path)
    assert test.tolist() == [4, 0, 6, 2]  # "the bird sat" + </s>, bird is OOV
    assert r.splits["test"].oov == 1 and r.splits["test"].bytes == len("the bird sat\n")
    assert r.splits["valid"].tokens == len("a dog sat down".split()) + 1
    # distinct token strings per split, </s> not counted: 6 in train, bird is a type of test
    assert {s: st.types for s, st in r.splits.items()} == {"train": 6, "valid": 4, "test": 3}
    # the same content again: the finished ingest is returned, not redone
    again = ingest(
        resolve_files("tiny", all_text=tiny_text), IngestSettings(tokenizer="whitespace"), wh
    )
    assert again.key == r.key and again.seconds == r.seconds


def test_token_positions_are_delta_encoded(tiny_text, tmp_path):
    """pos and sent ascend: stored DELTA_BINARY_PACKED (a few bits a row), ids in a dictionary;
    the rows read back as written, by Arrow and by DuckDB."""
    import duckdb
    import pyarrow.parquet as pq

    r = ingest(resolve_files("tiny", all_text=tiny_text), IngestSettings(), Warehouse(tmp_path))
    path = r.splits["train"].path
    meta = pq.ParquetFile(path).metadata.row_group(0)
    enc = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(3)}
    assert "DELTA_BINARY_PACKED" in enc["pos"] and "DELTA_BINARY_PACKED" in enc["sent"]
    assert "RLE_DICTIONARY" in enc["id"]
    rows = duckdb.execute("SELECT pos, sent FROM read_parquet(?) ORDER BY pos", [path]).fetchall()
    assert [p for p, _ in rows] == list(range(r.splits["train"].tokens))
    assert rows[-1][1] == 7  # 8 training lines: sentences 0..7


def test_an_edited_file_gets_a_new_key(tiny_text, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    k1 = ingest(resolve_files("tiny", all_text=tiny_text), IngestSettings(), wh).key
    tiny_text.write_text(tiny_text.read_text() + "one more line\n")
    k2 = ingest(resolve_files("tiny", all_text=tiny_text), IngestSettings(), wh).key
    assert k1 != k2


def test_jaychou_char_level_matches_the_published_split(corpora_dir, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    src = resolve_registry("jaychou", tmp_path / "cache", corpora_dir)
    r = ingest(src, IngestSettings(tokenizer="char"), wh)
    # docs/reference-figures.md: 5,819 lines, 2,287 train symbols, 265 OOV characters in 6,044
    # valid tokens
    assert sum(st.lines for st in r.splits.values()) == 5819
    assert r.vocab_size == 2287 + 4
    assert (r.splits["valid"].oov, r.splits["valid"].tokens) == (265, 6044)
    stream = load_stream(r.splits["valid"].path)
    assert int((stream == 0).sum()) == 265 and stream.dtype == np.int32


def _reference_lines(raw: bytes, errors: str) -> list[str]:
    """What iter_pieces must give, line by line: the whole file decoded at once, cut at \\n,
    a \\r before the \\n dropped, no line after a final newline, a UTF-8 BOM dropped."""
    raw = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    text = raw.decode("utf-8", errors="replace" if errors == "replace" else "strict")
    lines = text.split("\n")
    if text.endswith("\n") or not text:
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


@pytest.mark.parametrize("chunk", [4, 5, 7, 16, 1 << 20])
def test_blocks_and_pieces_give_every_line_exactly(tmp_path, chunk):
    """Whole lines come in blocks, a line longer than ``chunk`` in pieces of at most ``chunk``
    bytes; joined, they are the file's lines (\\r\\n across a read boundary, a multi-byte
    character cut by a read, a last line without newline, lone \\r kept inside a line)."""
    from lmpipe.lm.corpus import DecodeStats, iter_blocks

    rng = np.random.default_rng(0)
    alphabet = ["a", "b", " ", "\n", "\r\n", "\r", "é", "中", "\t", "  \n"]
    p = tmp_path / "t.txt"
    for trial in range(150):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 120))))
        raw = (b"\xef\xbb\xbf" if trial % 7 == 0 else b"") + text.encode()
        p.write_bytes(raw)
        stats = DecodeStats()
        lines, cur = [], []
        for block in iter_blocks(TextSource(p), stats=stats, chunk=chunk):
            if isinstance(block, list):
                assert not cur, "whole lines never start inside a line given in pieces"
                lines.extend(block)
                continue
            piece, ends_line = block
            assert len(piece.encode()) <= chunk
            cur.append(piece)
            if ends_line:
                lines.append("".join(cur))
                cur = []
        assert not cur and lines == _reference_lines(raw, "strict"), (raw, chunk)
        assert stats.raw_lines == len(lines) and bool(stats.bom) == (trial % 7 == 0)


def test_a_long_line_ingests_as_the_same_line_read_whole(tmp_path, monkeypatch):
    """The fast path (whole lines in blocks) and the streaming path (a line in pieces) give the
    same tokens, counts and bytes: one corpus read with a chunk above and below its lines."""
    from lmpipe.lm import corpus

    text = "".join(
        f"w{i % 13} x{i % 5}  y\u00e9{i % 3}\t\n" if i % 9 else "  \n" for i in range(400)
    )
    p = tmp_path / "c.txt"
    p.write_text(text, encoding="utf-8")
    results = []
    for chunk in (1 << 20, 8):
        monkeypatch.setattr(corpus, "READ_CHUNK", chunk)
        for tokenizer, normalize in [("whitespace", "none"), ("char", "d2l"), ("word", "none")]:
            wh = Warehouse(tmp_path / f"wh{chunk}{tokenizer}")
            r = ingest(resolve_files("c", all_text=p), IngestSettings(tokenizer, normalize), wh)
            streams = [load_stream(st.path).tolist() for st in r.splits.values()]
            splits = {
                s: (st.lines, st.tokens, st.types, st.oov, st.bytes) for s, st in r.splits.items()
            }
            results.append((chunk, tokenizer, splits, streams, load_vocab(r.vocab_path)))
    fast, slow = results[:3], results[3:]
    assert [r[1:] for r in fast] == [r[1:] for r in slow]
    # hand count: 400 lines, of which 45 (i % 9 == 0) blank: 355 kept, 284/35/36 by 80/10/10
    assert {s: v[0] for s, v in fast[0][2].items()} == {"train": 284, "valid": 35, "test": 36}
    assert fast[0][2]["train"][1] == 284 * 4  # three words and </s> per line


def test_arrow_splits_whitespace_words_exactly_as_python(tmp_path, monkeypatch):
    """The Arrow path (ASCII blocks) and str.split give the same vocabulary (ties in first-
    appearance order), ids, OOVs and types; a block with \\x1c-\\x1f (whitespace to Python
    only) or non-ASCII text falls back to Python, and a literal <unk> is the <unk> id."""
    from lmpipe.lm import corpus
    from lmpipe.lm import ingest as ingest_module

    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(40)]
    lines = [" ".join(rng.choice(words, size=int(rng.integers(1, 9)))) for _ in range(600)]
    # 3,000 words seen twice each, far apart: ties everywhere, broken by first appearance
    ties = [f"t{i}" for i in rng.permutation(3000)]
    lines += [" ".join(ties[i : i + 10]) for i in range(0, 3000, 10)] * 2
    rng.shuffle(lines)
    lines[10] = "  a\tb\x0bc\x0cd  e "  # ASCII whitespace of every kind
    lines[200] = lines[201] = "x\x1cy z"  # str.split cuts at \x1c, Arrow would not
    lines[300] = "caf\u00e9 <unk> w1"  # non-ASCII; a literal <unk>
    p = tmp_path / "c.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(corpus, "READ_CHUNK", 1000)  # many blocks: ASCII ones and the others
    monkeypatch.setattr(ingest_module._ArrowCounts, "FOLD_ROWS", 50)  # counts summed on the way
    calls: list[bool] = []
    arrow_words = ingest_module._arrow_words

    def spy(block, text):
        got = arrow_words(block, text)
        calls.append(got is not None)
        return got

    results = []
    for split_words in (spy, lambda block, text: None):
        monkeypatch.setattr(ingest_module, "_arrow_words", split_words)
        wh = Warehouse(tmp_path / f"wh{len(results)}")
        r = ingest(resolve_files("c", all_text=p), IngestSettings("whitespace", min_freq=2), wh)
        stats = {s: (st.lines, st.tokens, st.types, st.oov, st.bytes) for s, st in r.splits.items()}
        streams = [load_stream(st.path).tolist() for st in r.splits.values()]
        results.append((stats, streams, load_vocab(r.vocab_path)))
    assert results[0] == results[1]
    assert any(calls) and not all(calls)  # both paths ran in the first ingest
    vocab = results[0][2]
    assert {"x", "y"} <= set(vocab.tokens) and "x\x1cy" not in vocab.tokens  # cut at \x1c
    assert vocab.tokens.count("<unk>") == 1


@pytest.mark.parametrize("own_splits", [False, True], ids=["one-text", "own-split-files"])
def test_training_blocks_kept_from_pass_1_give_the_same_ingest(tmp_path, monkeypatch, own_splits):
    """Pass 2 takes the training blocks that pass 1 split and encoded (and does not read own
    training files again): tokens, vocabulary, statistics and decode counts (a BOM dropped from
    the training file) equal those of an ingest that keeps none."""
    from lmpipe.lm import corpus
    from lmpipe.lm import ingest as ingest_module

    rng = np.random.default_rng(11)
    words = [f"w{i}" for i in range(300)]
    lines = [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for _ in range(900)]
    texts = {"train": lines[:700], "valid": lines[700:800], "test": lines[800:]}
    paths = {}
    for split, part in texts.items():
        paths[split] = tmp_path / f"{split}.txt"
        bom = b"\xef\xbb\xbf" if split == "train" else b""
        paths[split].write_bytes(bom + ("\n".join(part) + "\n").encode())
    paths["all"] = tmp_path / "all.txt"
    paths["all"].write_bytes(b"".join(paths[s].read_bytes() for s in texts))
    monkeypatch.setattr(corpus, "READ_CHUNK", 1000)  # many blocks
    calls: list[int] = []
    arrow_words = ingest_module._arrow_words

    def spy(block, text):
        calls[-1] += 1
        return arrow_words(block, text)

    monkeypatch.setattr(ingest_module, "_arrow_words", spy)
    results = []
    for keep in (ingest_module.KEEP_TRAIN_BYTES, 0):  # 0: nothing fits, pass 2 reads again
        monkeypatch.setattr(ingest_module, "KEEP_TRAIN_BYTES", keep)
        calls.append(0)
        files = {s: paths[s] for s in texts} if own_splits else {"all_text": paths["all"]}
        r = ingest(
            resolve_files("c", **files),
            IngestSettings("whitespace"),
            Warehouse(tmp_path / str(keep)),
        )
        stats = {s: (st.lines, st.tokens, st.types, st.oov, st.bytes) for s, st in r.splits.items()}
        streams = [load_stream(st.path).tolist() for st in r.splits.values()]
        results.append((stats, streams, load_vocab(r.vocab_path), r.bom_files, r.replaced))
    assert results[0] == results[1]
    assert results[0][0]["train"][0] == (700 if own_splits else 720)  # own files or 80 %
    assert results[0][3] == 1
    assert calls[0] < calls[1]  # the kept blocks were not split again
