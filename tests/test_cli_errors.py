"""Bad input through the command line, as a user meets it: a non-zero exit status and one line
on stderr naming the file or value and what to do; no traceback unless ``--debug``.

Most cases run ``lmpipe ngram`` on explicit files, which fails before any heavy import; the few
that must succeed (replaced bytes, an order longer than every sentence) run the whole command.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmpipe.lm.corpus import DecodeStats, TextSource, iter_lines, resolve_registry
from lmpipe.lm.errors import CorpusError

ROOT = Path(__file__).resolve().parents[1]


def lmpipe(
    *args: str | Path,
    home: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "lmpipe.flows.cli", *map(str, args)]
    if home is not None:
        argv += ["--home", str(home)]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("LMPIPE_HOME", None)
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def assert_one_line_error(r: subprocess.CompletedProcess[str], *must: str) -> str:
    """Non-zero exit, exactly one stderr line ``lmpipe: error: ...`` holding every ``must``."""
    assert r.returncode != 0, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("lmpipe: error: "), r.stderr
    assert "Traceback" not in r.stderr
    for m in must:
        assert m in lines[0], (m, lines[0])
    return lines[0]


@pytest.fixture
def ok(tmp_path: Path) -> Path:
    p = tmp_path / "ok.txt"
    p.write_text("the cat sat\nthe dog sat down\na cat\n", encoding="utf-8")
    return p


def ngram(
    train: Path | str, test: Path | str, home: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return lmpipe(
        "ngram",
        "--train",
        train,
        "--test",
        test,
        "--order",
        "3",
        "--smoothing",
        "add-k",
        *extra,
        home=home,
    )


# ----------------------------------------------------------------------------- corpus files


def test_missing_path(tmp_path, ok, home):
    r = ngram(tmp_path / "nope.txt", ok, home)
    assert_one_line_error(r, "nope.txt", "does not exist", "check the path")


def test_missing_path_traceback_with_debug(tmp_path, ok, home):
    r = ngram(tmp_path / "nope.txt", ok, home, "--debug")
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "CorpusError" in r.stderr and "nope.txt" in r.stderr


def test_empty_file(tmp_path, ok, home):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert_one_line_error(
        ngram(empty, ok, home), "empty.txt", "no training tokens", "non-empty line"
    )


def test_blank_lines_only(tmp_path, ok, home):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\t\n\n", encoding="utf-8")
    assert_one_line_error(ngram(blank, ok, home), "blank.txt", "blank")


def test_empty_test_file(tmp_path, ok, home):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\n\n")
    assert_one_line_error(
        ngram(ok, empty, home), "test text", "empty.txt", "give a test file with text"
    )


def test_single_line_corpus_cannot_be_split(tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("just one line\n", encoding="utf-8")
    from lmpipe.lm.corpus import resolve_files
    from lmpipe.lm.ingest import IngestSettings, ingest
    from lmpipe.lm.warehouse import Warehouse

    with pytest.raises(CorpusError, match="only 1 non-empty line.*--train and --test"):
        ingest(resolve_files("one", all_text=one), IngestSettings(), Warehouse(tmp_path / "wh"))


def test_folder_without_text_files(tmp_path, ok, home):
    d = tmp_path / "pictures"
    d.mkdir()
    (d / "cat.png").write_bytes(b"\x89PNG")
    assert_one_line_error(ngram(d, ok, home), "pictures", "holds no text files")


def test_bytes_that_are_not_utf8_give_the_offset(tmp_path, ok, home):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ok line\ncaf\u00e9 au lait\n".encode("latin-1"))
    assert_one_line_error(
        ngram(bad, ok, home),
        "latin1.txt",
        "not valid UTF-8 at byte 11",
        "--encoding-errors replace",
    )


def test_binary_file(tmp_path, ok, home):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"abc\x00\x01\x02\xff" * 10)
    assert_one_line_error(ngram(binary, ok, home), "model.bin", "NUL bytes at byte 3", "binary")


def test_empty_zip(tmp_path, ok, home):
    z = tmp_path / "corpus.zip"
    zipfile.ZipFile(z, "w").close()
    assert_one_line_error(ngram(z, ok, home), "corpus.zip", "holds no file")


def test_zip_with_only_a_folder(tmp_path, ok, home):
    z = tmp_path / "corpus.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("text/", "")
        f.writestr("__MACOSX/._x.txt", "junk")
    assert_one_line_error(ngram(z, ok, home), "corpus.zip", "holds no file")


def test_registry_zip_without_its_member(tmp_path):
    z = tmp_path / "ptb.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("ptb/other.txt", "a b\n")
    with pytest.raises(
        CorpusError, match=r"ptb.zip has no member 'ptb/ptb.train.txt' \(it has: ptb/other.txt\)"
    ):
        list(iter_lines(TextSource(z, "ptb/ptb.train.txt")))


@pytest.mark.parametrize(
    "name,data,words",
    [
        ("corrupt.gz", b"this is not gzip at all\n", "corrupt or truncated"),
        (
            "cut.gz",
            gzip.compress(" ".join(str(i * i) for i in range(20000)).encode())[:2000],
            "corrupt or truncated",
        ),
        ("corrupt.zip", b"PK\x03\x04 this is not a zip", "not a readable zip"),
    ],
    ids=["not-gzip", "truncated-gzip", "not-zip"],
)
def test_corrupt_archives(tmp_path, ok, home, name, data, words):
    p = tmp_path / name
    p.write_bytes(data)
    assert_one_line_error(ngram(p, ok, home), name, words)


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    import lmpipe.lm.corpus as corpus

    def wrong_bytes(url: str, dest: Path) -> None:
        dest.write_bytes(b"not the published file\n")

    monkeypatch.setattr(corpus, "embedded_path", lambda entry: None)
    monkeypatch.setattr(corpus, "_download", wrong_bytes)
    cache = tmp_path / "cache"
    with pytest.raises(CorpusError, match="expected .*nothing was kept") as e:
        resolve_registry("timemachine", cache, corpora_dir=None)
    assert "\n" not in str(e.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_registry_file_with_wrong_checksum_through_the_cli(tmp_path, home):
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    (corpora / "timemachine.txt").write_text("a forged time machine\n", encoding="utf-8")
    r = lmpipe(
        "ngram",
        "--corpus",
        "timemachine",
        "--order",
        "2",
        home=home,
        env={"LMPIPE_CORPORA_DIR": str(corpora)},
    )
    assert_one_line_error(
        r, "timemachine.txt has sha256", "expected", "replace it with the published file"
    )


# ----------------------------------------------------------------------------- accepted input


def test_replaced_bytes_are_counted_and_reported(tmp_path, ok, home):
    bad = tmp_path / "mixed.txt"
    bad.write_bytes(b"the cat \xff\xfe sat\nthe dog\n")
    r = lmpipe(
        "ngram",
        "--train",
        bad,
        "--test",
        ok,
        "--order",
        "9",
        "--smoothing",
        "add-k",
        "--encoding-errors",
        "replace",
        "--json",
        home=home,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["replaced"] == 2
    assert "replaced 2 byte(s)" in r.stderr and "mixed" in r.stderr
    # an order far beyond every sentence's length works: the model pads with <s>
    assert out["n"] == 9 and out["perplexity"] > 1 and out["tokens"] == 12


def test_a_utf8_byte_order_mark_is_dropped_and_said(tmp_path, ok, home):
    plain = tmp_path / "plain.txt"
    plain.write_text("the cat sat\nthe dog\n", encoding="utf-8")
    marked = tmp_path / "marked.txt"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    a, b = (
        lmpipe("ngram", "--train", t, "--test", ok, "--order", "2", "--smoothing", "add-k",
               "--json", home=home / t.stem)
        for t in (plain, marked)
    )  # fmt: skip
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert json.loads(a.stdout)["perplexity"] == json.loads(b.stdout)["perplexity"]
    assert "byte-order mark" in b.stderr and "byte-order mark" not in a.stderr


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pipe_or_a_device_is_refused_at_once(tmp_path, ok, home, kind):
    if kind == "fifo":
        special = tmp_path / "pipe"
        os.mkfifo(special)
    else:
        special = Path("/dev/zero")
    r = lmpipe("ngram", "--train", special, "--test", ok, "--order", "2", "--smoothing", "add-k",
               home=home, timeout=30)  # fmt: skip
    assert_one_line_error(r, "not a regular file", str(special))


def test_symlink_loops_and_duplicate_links_read_each_file_once(tmp_path, ok, home):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    text = "the cat sat\nthe dog sat down\na cat\nthe cat sat down\n"
    (d / "sub" / "a.txt").write_text(text, encoding="utf-8")
    (d / "sub" / "loop").symlink_to(d)  # a folder that contains itself
    (d / "sub" / "again.txt").symlink_to(d / "sub" / "a.txt")
    ppl = {}
    for name, spec in (("file", d / "sub" / "a.txt"), ("glob", f"{d}/**/*.txt"), ("folder", d)):
        r = lmpipe("ngram", "--train", spec, "--test", ok, "--order", "2", "--smoothing",
                   "add-k", "--json", home=home / name, timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        ppl[name] = json.loads(r.stdout)["perplexity"]
    assert ppl["glob"] == ppl["file"] == ppl["folder"]


def test_utf16_text_is_named(tmp_path, ok, home):
    utf16 = tmp_path / "wide.txt"
    utf16.write_bytes("the cat sat\nthe dog\n".encode("utf-16"))  # with its BOM
    assert_one_line_error(ngram(utf16, ok, home), "UTF-16", "wide.txt", "iconv")


def test_bytes_replaced_are_counted_once_for_a_single_text(tmp_path):
    from lmpipe.lm.corpus import resolve_files
    from lmpipe.lm.ingest import IngestSettings, ingest
    from lmpipe.lm.warehouse import Warehouse

    p = tmp_path / "b.txt"
    p.write_bytes(b"a \xff b\n" * 10)
    r = ingest(
        resolve_files("b", all_text=p),
        IngestSettings(encoding_errors="replace", tokenizer="whitespace"),
        Warehouse(tmp_path / "wh"),
    )
    assert r.replaced == 10
    stats = DecodeStats()
    list(iter_lines(TextSource(p), errors="replace", stats=stats))
    assert stats.replaced == 10


def test_min_freq_that_leaves_only_reserved_tokens(tmp_path, ok, home):
    r = ngram(ok, ok, home, "--min-freq", "50")
    assert_one_line_error(r, "min_freq=50", "only reserved tokens", "lower min_freq")


def test_a_long_single_line_streams_with_bounded_memory(tmp_path):
    """One line of 20 MB (the 100 MB case is the slow test below; ~20 s) is ingested in pieces,
    not refused; peak memory stays that of a short corpus (the whole line is never held)."""
    big = _ingest_peak_mb(_one_line(tmp_path / "big.txt", 20), tmp_path / "wh")
    small = _ingest_peak_mb(_one_line(tmp_path / "small.txt", 2), tmp_path / "wh2")
    assert big - small < 150  # 18 MB more text must not cost the memory of holding it whole


@pytest.mark.slow
def test_a_100mb_single_line(tmp_path):
    # measured: ~290 MB peak RSS, of which ~130 MB is imports; whole-line reading needed 430 MB
    big = _ingest_peak_mb(_one_line(tmp_path / "big.txt", 100), tmp_path / "wh")
    small = _ingest_peak_mb(_one_line(tmp_path / "small.txt", 2), tmp_path / "wh2")
    assert big - small < 220


def _one_line(path: Path, mb: int) -> Path:
    block = ("abcdefghij klmnopqrstuvwxyz \u00e9\u4e2d" * 40)[:1000].encode("utf-8")[:1000]
    block = block.decode("utf-8", errors="ignore").encode("utf-8")
    with open(path, "wb") as f:
        for _ in range(mb * 1_000_000 // len(block)):
            f.write(block)
        f.write(b"\n")
    return path


_PEAK = """
import resource, sys
from pathlib import Path
from lmpipe.lm.corpus import resolve_files
from lmpipe.lm.ingest import IngestSettings, ingest
from lmpipe.lm.warehouse import Warehouse
big, wh = Path(sys.argv[1]), Path(sys.argv[2])
files = resolve_files("big", train=big, test=big)
r = ingest(files, IngestSettings(tokenizer="char"), Warehouse(wh))
assert r.splits["train"].lines == 1 and r.splits["train"].tokens == r.splits["test"].tokens > 1_000
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _ingest_peak_mb(path: Path, wh: Path) -> float:
    r = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path), str(wh)],
        cwd=ROOT,
        # allocator settings that other tests' libraries (Dask) export would skew the figure
        env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return float(r.stdout.strip())


# ----------------------------------------------------------------------------- options and config


@pytest.mark.parametrize(
    "args,words",
    [
        (["--order", "0"], ["--order must be at least 1", "got 0"]),
        (["--order", "abc"], ["'--order'", "lmpipe ngram --help"]),
        (["--order", "2", "--smoothing", "magic"], ["unknown smoothing 'magic'", "choose one of"]),
        (["--order", "2", "--tokenizer", "bpe2"], ["unknown tokenizer 'bpe2'", "choose one of"]),
        (["--order", "2", "--k", "-1"], ["--k must be positive"]),
        (["--order", "2", "--min-freq", "0"], ["--min-freq must be at least 1"]),
        (
            ["--order", "2", "--encoding-errors", "ignore"],
            ["--encoding-errors must be strict or replace"],
        ),
        (["--order", "2", "--smoothing-typo", "kn"], ["No such option", "--smoothing-typo"]),
        (["--order", "2", "--memory-limit", "0"], ["memory size '0'", "must be positive"]),
        (["--order", "2", "--memory-limit", "lots"], ["memory size 'lots' not understood"]),
        (["--order", "2", "--engine", "disk"], ["--engine must be one of auto, memory, duckdb"]),
        (
            ["--order", "3", "--smoothing", "mkn", "--engine", "duckdb", "--memory-limit", "1MB"],
            ["DuckDB ran out of memory estimating the 3-gram model", "larger --memory-limit"],
        ),
    ],
)
def test_bad_ngram_options(ok, home, args, words):
    r = lmpipe("ngram", "--train", ok, "--test", ok, *args, home=home)
    assert_one_line_error(r, *words)
    assert r.returncode == 2


def test_warnings_are_one_line(ok, home):
    """KenLM's fallback discounts on a tiny corpus: one ``lmpipe: warning:`` line per order,
    no file name or source line; the figures still print."""
    r = ngram(ok, ok, home, "--smoothing", "mkn")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines and all(ln.startswith("lmpipe: warning: modified Kneser-Ney") for ln in lines)
    assert "fallback discounts" in lines[0] and "ppl=" in r.stdout


@pytest.mark.parametrize("corpus", ["../x", "/etc", "a/../../b"])
def test_corpus_names_cannot_escape_the_home(home, corpus):
    r = lmpipe("ngram", "--corpus", corpus, "--order", "2", home=home)
    assert_one_line_error(r, repr(corpus), "not a plain name")
    assert not (home / "data" / "cache").exists() or not any((home / "data" / "cache").iterdir())


def test_unknown_corpus(home):
    assert_one_line_error(
        lmpipe("ngram", "--corpus", "nosuch", "--order", "2", home=home),
        "unknown corpus 'nosuch'",
        "known corpora",
    )


@pytest.mark.parametrize(
    "toml,words",
    [
        ("[ngram]\norders = [0]\n", ["ngram.orders", "order 0"]),
        ("[neural]\nlr = -0.1\n", ["neural.lr", "greater than 0", "-0.1"]),
        ('[neural]\narchitectures = ["transfomer"]\n', ["unknown architecture 'transfomer'"]),
        ('tokenizers = ["morse"]\n', ["unknown tokenizer 'morse'"]),
        ('corpora = ["nosuch"]\n', ["unknown corpus 'nosuch'"]),
        ("[neural]\nhiden = 3\n", ["neural.hiden", "unknown key (a typo?)"]),
        ('corpora = ["../x"]\n', ["'../x'", "not a plain name"]),
        ("corpora = [\n", ["not valid TOML"]),
        (
            '[[corpora]]\nname = "x"\npath = "a.txt"\ntrain = "b.txt"\ntest = "c.txt"\n',
            ["corpus 'x'", "not both"],
        ),
        (
            "[neural]\nembed = 64\nhidden = 32\n",
            ["tied weights need embed == hidden", "embed=64, hidden=32"],
        ),
        ("[neural.overrides.gur]\nhidden = 8\n", ["gur"]),
    ],
)
def test_bad_config_files(tmp_path, home, toml, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml, encoding="utf-8")
    assert_one_line_error(lmpipe("run", "--config", cfg, home=home), "bad.toml", *words)


def test_run_with_an_absolute_corpus_path_as_name(home):
    assert_one_line_error(
        lmpipe("run", "--corpus", "/etc", home=home), "'/etc'", "not a plain name"
    )


def test_run_with_a_missing_config(tmp_path, home):
    assert_one_line_error(
        lmpipe("run", "--config", tmp_path / "nope.toml", home=home), "nope.toml", "does not exist"
    )


@pytest.mark.parametrize(
    "args,words",
    [
        (["--arch", "transfomer"], ["unknown architecture 'transfomer'"]),
        (["--lr", "-1"], ["lr must be positive", "-1"]),
        (["--tokenizer", "morse"], ["unknown tokenizer 'morse'"]),
    ],
)
def test_bad_train_options(ok, home, args, words):
    r = lmpipe(
        "train", "--train", ok, "--valid", ok, "--test", ok, "--epochs", "1", *args, home=home
    )
    assert_one_line_error(r, *words)


def test_unknown_command_and_missing_option(home):
    assert_one_line_error(lmpipe("trian", home=home), "No such command 'trian'", "lmpipe --help")
    assert_one_line_error(lmpipe("ngram", home=home), "--order is missing", "--lm MODEL.arpa")
    assert_one_line_error(
        lmpipe("generate", home=home), "Missing option '--run'", "lmpipe generate --help"
    )


# ----------------------------------------------------------------------------- the warehouse


def test_truncated_parquet_is_reported_by_sql_and_check_and_repaired(tmp_path, home):
    from lmpipe.lm.warehouse import Warehouse

    wh = Warehouse.at_home(home)
    for rid in ("20240101-000000-aaaaaa", "20240102-000000-bbbbbb"):
        counts = {
            "results": wh.write_run_rows("results", rid, [{"corpus": "c", "perplexity": 2.0}])
        }
        wh.commit_run(
            rid, {"experiment": "e", "status": "completed", "row_counts_json": json.dumps(counts)}
        )
    damaged = wh.run_path("results", "20240102-000000-bbbbbb")
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])  # truncated by hand

    r = lmpipe("sql", "select count(*) as n from results", home=home)
    line = assert_one_line_error(r, str(damaged))

    r = lmpipe("check", home=home)
    assert r.returncode != 0
    assert f"damaged {damaged}" in r.stdout and "lmpipe check --repair" in r.stdout
    assert "Traceback" not in r.stderr

    r = lmpipe("check", "--repair", home=home)
    assert r.returncode == 0, r.stderr
    assert not damaged.exists() and not wh.run_path("runs", "20240102-000000-bbbbbb").exists()
    r = lmpipe("check", "--json", home=home)
    assert r.returncode == 0 and json.loads(r.stdout)["clean"] is True
    r = lmpipe("sql", "select count(*) as n from results", "--format", "json", home=home)
    assert r.returncode == 0, (line, r.stderr)
    assert json.loads(r.stdout) == [{"n": 1}]


def test_damaged_tokens_are_recomputed_by_the_next_run(tmp_path, ok, home):
    first = lmpipe(
        "ngram",
        "--train",
        ok,
        "--test",
        ok,
        "--order",
        "2",
        "--smoothing",
        "add-k",
        "--json",
        home=home,
    )
    assert first.returncode == 0, first.stderr
    tokens = sorted((home / "data" / "warehouse" / "tokens").rglob("tokens.parquet"))[0]
    tokens.write_bytes(tokens.read_bytes()[:20])
    r = lmpipe("check", "--repair", home=home)
    assert r.returncode == 0 and f"damaged {tokens}" in r.stdout
    again = lmpipe(
        "ngram",
        "--train",
        ok,
        "--test",
        ok,
        "--order",
        "2",
        "--smoothing",
        "add-k",
        "--json",
        home=home,
    )
    assert again.returncode == 0, again.stderr
    assert pq.read_table(tokens).num_rows > 0
    assert json.loads(again.stdout)["perplexity"] == json.loads(first.stdout)["perplexity"]
    r = lmpipe("check", home=home)
    assert r.returncode == 0 and "clean" in r.stdout, r.stdout


def test_word_tokenizer_on_chinese_names_the_cause(tmp_path, home):
    zh = tmp_path / "zh.txt"
    zh.write_text("床前明月光\n疑是地上霜\n举头望明月\n", encoding="utf-8")
    r = lmpipe("ngram", "--train", zh, "--test", zh, "--order", "2", "--tokenizer", "word",
               home=home)  # fmt: skip
    assert_one_line_error(
        r, "--tokenizer word keeps only Latin letters", "3 line(s) of", "zh.txt", "--tokenizer char"
    )


def test_carriage_return_only_line_ends_are_warned_about(tmp_path, ok, home):
    cr = tmp_path / "mac.txt"
    cr.write_bytes(b"the cat sat\rthe dog\ra cat\r")
    r = lmpipe("ngram", "--train", cr, "--test", ok, "--order", "2", "--smoothing", "add-k",
               "--json", home=home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == (
        "lmpipe: warning: corpus 'mac': 1 file(s) end their lines with \\r alone (classic Mac "
        "OS); lines end at \\n, so each such file was read as one line: convert it first "
        "(tr '\\r' '\\n' < in > out)"
    )
    assert json.loads(r.stdout)["tokens"] == 12  # ok.txt: 9 words and 3 </s>


@pytest.mark.parametrize(
    ("code", "named", "message"),
    [
        (
            "ENOSPC",
            False,
            "no space left on the disk of {home}: free space, or give another --home",
        ),
        ("EROFS", True, "is on a read-only file system: give a --home you can write to"),
    ],
)
def test_a_full_or_read_only_disk_is_one_line_and_leaves_nothing_half_written(
    tmp_path, ok, code, named, message
):
    """The disk fails the first file lmpipe moves into place (as a full disk fails the write
    before it; the OSError of a failed write names no file): injected by a ``sitecustomize``."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import errno, os\n"
        "_replace = os.replace\n"
        "def replace(src, dst, *a, **k):\n"
        f"    if {str(tmp_path / 'home')!r} in os.fspath(dst):\n"
        f"        args = (errno.{code}, os.strerror(errno.{code})) + ((os.fspath(dst),) if {named} "
        "else ())\n"
        "        raise OSError(*args)\n"
        "    return _replace(src, dst, *a, **k)\n"
        "os.replace = replace\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    env = {"PYTHONPATH": os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")])}
    r = lmpipe("ngram", "--train", ok, "--test", ok, "--order", "2", home=home, env=env)
    line = assert_one_line_error(r, message.format(home=home))
    assert r.returncode == 2, line
    assert [p for p in home.rglob("*") if p.name.startswith(".tmp-")] == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('[neural]\ntied = "yes"', "neural.tied: Input should be a valid boolean (got 'yes')"),
        ('[neural]\nhidden = "64"', "neural.hidden: Input should be a valid integer (got '64')"),
        ("[ngram]\norders = [1.5]", "ngram.orders.0: Input should be a valid integer (got 1.5)"),
    ],
)
def test_config_values_of_the_wrong_type_are_refused_not_coerced(tmp_path, home, line, message):
    cfg = tmp_path / "typed.toml"
    cfg.write_text(f'name = "typed"\n[[corpora]]\nname = "timemachine"\n{line}\n', "utf-8")
    assert_one_line_error(lmpipe("run", "--config", cfg, home=home), f"typed.toml: {message}")


def test_a_text_too_short_for_a_validation_split_fails_before_any_work(tmp_path, ok, home):
    cfg = tmp_path / "short.toml"
    cfg.write_text(f'name = "short"\n[[corpora]]\nname = "mine"\npath = "{ok}"\n', "utf-8")
    t0 = time.monotonic()
    r = lmpipe("run", "--config", cfg, home=home)
    assert_one_line_error(
        r, "corpus 'mine'", "ok.txt", "has 3 non-empty line(s)", "no validation line",
        "train, valid and test files",
    )  # fmt: skip
    assert time.monotonic() - t0 < 20  # no n-gram model was estimated first (23 s before)
    assert not (home / "data" / "models").exists()


def test_a_configured_prefect_api_that_is_down_is_one_line(tmp_path):
    """PREFECT_API_URL naming a server that does not answer: one line that names the URL and
    what to do, exit 2, before any work (not Prefect's error from inside the flow)."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    r = lmpipe(
        "run", "--profile", "quick", home=tmp_path / "home", env={"PREFECT_API_URL": url},
        timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert_one_line_error(r, "cannot reach the Prefect API", url, "unset PREFECT_API_URL")
    assert not (tmp_path / "home" / "data" / "warehouse").exists()
