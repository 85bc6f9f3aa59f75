"""The command-line contract of docs/design.md §7, exercised as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmpipe.lm.neural.config import TrainSettings


def lmpipe(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def split_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    train = tmp_path / "train.txt"
    valid = tmp_path / "valid.txt"
    test = tmp_path / "test.txt"
    train.write_text("the cat sat\nthe dog sat down\na cat\nthe cat sat down\na dog sat\n")
    valid.write_text("the dog sat\n")
    test.write_text("the bird sat\na cat sat down\n")
    return train, valid, test


def test_ngram_json_has_the_contract_keys_and_hand_checked_laplace(split_files, home):
    train, valid, test = split_files
    r = lmpipe(
        "ngram",
        "--train",
        str(train),
        "--valid",
        str(valid),
        "--test",
        str(test),
        "--order",
        "1",
        "--smoothing",
        "add-k",
        "--k",
        "1",
        "--json",
        home=home,
    )
    out = json.loads(r.stdout)
    assert {"perplexity", "perplexity_excluding_oov", "oov", "tokens", "run_id"} <= out.keys()
    # vocabulary: the cat sat dog a down (6 words) + </s> + <unk> = V 8;
    # train tokens 16 + 5 </s> = 21
    # test: the bird(OOV) sat </s> a cat sat down </s>
    c = {"the": 3, "cat": 3, "sat": 4, "dog": 2, "a": 2, "down": 2, "</s>": 5, "<unk>": 0}
    import math

    toks = ["the", "<unk>", "sat", "</s>", "a", "cat", "sat", "down", "</s>"]
    nll = -sum(math.log((c[t] + 1) / (21 + 8)) for t in toks)
    assert out["tokens"] == 9 and out["oov"] == 1
    assert out["perplexity"] == pytest.approx(math.exp(nll / 9), rel=1e-12)
    excl = -sum(math.log((c[t] + 1) / (21 + 8)) for t in toks if t != "<unk>")
    assert out["perplexity_excluding_oov"] == pytest.approx(math.exp(excl / 8), rel=1e-12)
    assert out["valid_perplexity"] > 1 and out["test_perplexity"] == out["perplexity"]


def test_ngram_text_output_and_arpa_export(split_files, home, tmp_path):
    train, _, test = split_files
    arpa = tmp_path / "m.arpa"
    r = lmpipe(
        "ngram",
        "--train",
        str(train),
        "--test",
        str(test),
        "--order",
        "3",
        "--smoothing",
        "mkn",
        "--arpa",
        str(arpa),
        home=home,
    )
    assert "ppl=" in r.stdout and "test" in r.stdout
    assert arpa.read_text().startswith("\n\\data\\") or "\\data\\" in arpa.read_text()[:20]


def test_ngram_out_of_core_engine_gives_the_in_memory_figures(split_files, tmp_path):
    train, valid, test = split_files
    args = ["ngram", "--train", str(train), "--valid", str(valid), "--test", str(test)]
    args += ["--order", "3", "--smoothing", "mkn", "--json"]
    mem = json.loads(lmpipe(*args, "--engine", "memory", home=tmp_path / "a").stdout)
    arpa = tmp_path / "m.arpa"
    r = lmpipe(
        *args, "--engine", "duckdb", "--memory-limit", "256MB", "--arpa", str(arpa),
        home=tmp_path / "b",
    )  # fmt: skip
    disk = json.loads(r.stdout)
    assert (mem["engine"], disk["engine"]) == ("memory", "duckdb")
    for key in ("perplexity", "perplexity_excluding_oov", "valid_perplexity", "parameters"):
        assert disk[key] == mem[key], key
    assert arpa.read_text().startswith("\n\\data\\\nngram 1=")
    spill = tmp_path / "b" / "data" / "spill"
    assert not spill.exists() or not any(spill.iterdir())  # the model's database is removed
    text = lmpipe(*args[:-1], "--engine", "duckdb", home=tmp_path / "b").stdout
    assert "out of core" in text
    bad = args[:-1] + ["--engine", "duckdb"]
    bad[bad.index("mkn")] = "kn"
    r = lmpipe(*bad, home=tmp_path / "c", check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--engine duckdb" in r.stderr


def test_ngram_on_a_registry_corpus_matches_kenlm(home, corpora_dir):
    import os

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmpipe.flows.cli",
            "ngram",
            "--corpus",
            "timemachine",
            "--order",
            "3",
            "--smoothing",
            "mkn",
            "--json",
            "--home",
            str(home),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "LMPIPE_CORPORA_DIR": str(corpora_dir)},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # docs/reference-figures.md: KenLM order 3 on the design's split, valid 6.72 and test 7.22
    # (printed to 3 digits)
    assert out["valid_perplexity"] == pytest.approx(6.72, rel=1e-3)
    assert out["test_perplexity"] == pytest.approx(7.22, rel=1e-3)


def test_train_generate_report_sql_check(split_files, home):
    train, valid, test = split_files
    r = lmpipe(
        "train",
        "--train",
        str(train),
        "--valid",
        str(valid),
        "--test",
        str(test),
        "--tokenizer",
        "word",
        "--arch",
        "gru",
        "--hidden",
        "8",
        "--embed",
        "8",
        "--epochs",
        "2",
        "--seq-len",
        "4",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--json",
        home=home,
    )
    out = json.loads(r.stdout)
    for key in (
        "valid_perplexity",
        "test_perplexity",
        "perplexity",
        "epochs",
        "tokens_per_second",
        "parameters",
        "wall_seconds",
        "run_id",
        "tokens",
        "oov",
        "perplexity_excluding_oov",
    ):
        assert key in out, key
    assert out["test_perplexity"] == out["perplexity"] and out["epochs"] == 2
    sample = ["generate", "--run", out["run_id"], "--prefix", "the cat", "--length", "5"]
    g1 = lmpipe(*sample, "--seed", "3", home=home)
    g2 = lmpipe(*sample, "--seed", "3", home=home)
    assert g1.stdout == g2.stdout and g1.stdout.startswith("the cat")
    greedy = lmpipe(
        "generate",
        "--run",
        out["run_id"],
        "--prefix",
        "the",
        "--greedy",
        "--length",
        "3",
        home=home,
    )
    assert greedy.stdout.startswith("the")
    unknown = lmpipe(*sample[:4], "the zebra cat qux zebra", "--length", "2", home=home)
    assert unknown.returncode == 0 and unknown.stdout.startswith("the zebra cat qux zebra")
    assert unknown.stderr.strip() == (
        "lmpipe: warning: the prefix holds 2 token(s) the model never saw in training ('zebra', "
        "'qux'); they are read as <unk>"
    )
    for bad, message in (
        (["--top-k", "0"], "--top-k must be at least 1 (got 0)"),
        (["--temperature", "1e300"], "--temperature must be positive and at most 1000"),
        (["--length", "100000000"], "--length 100000000 is more than one call generates"),
    ):
        r = lmpipe(*sample[:5], *bad, home=home, check=False)
        assert r.returncode == 2 and r.stderr.startswith(f"lmpipe: error: {message}"), r.stderr
        assert r.stderr.count("\n") == 1 and r.stdout == ""
    rep = lmpipe("report", "--run", out["run_id"], home=home)
    assert Path(rep.stdout.strip()).exists()
    rows = json.loads(
        lmpipe("sql", "--format", "json", "select model, split from results", home=home).stdout
    )
    assert sorted((x["model"], x["split"]) for x in rows) == [("gru", "test"), ("gru", "valid")]
    assert "clean" in lmpipe("check", home=home).stdout


def test_train_with_only_a_time_budget_is_not_capped_at_the_default_epochs(split_files, home):
    train, valid, test = split_files
    files = ["--train", str(train), "--valid", str(valid), "--test", str(test)]
    tiny = ["--tokenizer", "word", "--arch", "rnn", "--hidden", "4", "--embed", "4"]
    tiny += ["--seq-len", "2", "--batch-size", "2", "--device", "cpu", "--json"]
    budget = ["--max-minutes", "0.1", "--patience", "0"]  # no early stopping: only the budget
    out = json.loads(lmpipe("train", *files, *tiny, *budget, home=home).stdout)
    assert out["stopped"] == "time budget" and out["epochs"] > 10  # epochs take milliseconds
    out = json.loads(lmpipe("train", *files, *tiny, "--force", "--patience", "0", home=home).stdout)
    default = TrainSettings.model_fields["epochs"].default
    assert out["stopped"] == "epochs" and out["epochs"] == default  # without a budget
