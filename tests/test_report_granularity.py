"""One corpus under several tokenizers (``tokenizers = [...]`` of a corpus): the report's
granularity table holds every model's test bits per byte at each tokenization, as stored, with
each tokenization's vocabulary size and OOV rate, and one figure. The same run prunes its
highest-order model at two thresholds (``ngram.prune``): the size-against-perplexity table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_report import num, section, tables


def lmpipe(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def units_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import SHARED_CORPORA

    corpora_dir = Path(os.environ.get("LMPIPE_CORPORA_DIR", SHARED_CORPORA))
    tmp_path = tmp_path_factory.mktemp("units")
    text = tmp_path / "tm.txt"
    text.write_text("\n".join((corpora_dir / "timemachine.txt").read_text().splitlines()[:250]))
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        name = "units"
        [[corpora]]
        name = "tm-slice"
        path = "{text}"
        tokenizers = ["word", "bpe"]
        [vocab]
        bpe_vocab_size = 400
        [ngram]
        orders = [1, 2, 3]
        methods = ["mkn"]
        prune = [1e-3, 1e-5]
        [neural]
        architectures = ["gru"]
        hidden = 8
        embed = 8
        epochs = 1
        batch_size = 8
        seq_len = 16
    """)
    )
    home = tmp_path / "h"
    r = lmpipe("run", "--config", str(cfg), "--quiet", home=home)
    assert r.returncode == 0, r.stderr
    (report,) = (home / "reports" / "units").glob("*/report.md")
    return home, report


def test_granularity_table_and_figure(units_run: tuple[Path, Path]) -> None:
    home, report = units_run
    md = report.read_text(encoding="utf-8")
    part = section(md, "## tm-slice: granularity (word, bpe)")
    (grid,) = tables(part)
    names = [row["model"] for row in grid]
    assert names[:6] == [
        "*vocabulary*", "*test OOV rate*", "mkn n=1", "mkn n=2", "mkn n=3", "gru",
    ]  # fmt: skip
    # then each unit's mixture of its best n-gram and the GRU (the best n-gram may differ)
    assert names[6:] and all(m.startswith("mkn") and m.endswith("+gru") for m in names[6:])
    r = lmpipe(
        "sql",
        "select r.tokenizer, r.family, r.model, r.n, r.bits_per_byte, r.oov_rate, c.vocab_size "
        "from results r join corpora c using (run_id, corpus, tokenizer) "
        "where r.split = 'test' and r.role = 'final'",
        "--format", "json", home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 2 * 5
    for row in rows:
        name = f"mkn n={row['n']}" if row["family"] == "ngram" else row["model"]
        cell = next(g for g in grid if g["model"] == name)[row["tokenizer"]]
        assert num(cell.strip("*")) == round(row["bits_per_byte"], 4)
        assert grid[0][row["tokenizer"]] == f"{row['vocab_size']:,}"
        assert num(grid[1][row["tokenizer"]]) == round(100 * row["oov_rate"], 2)
    # the best unit of each model is bold, exactly one per row
    for g in grid[2:]:
        assert sum(v.startswith("**") for k, v in g.items() if k != "model") == 1
    assert (report.parent / "granularity-tm-slice.png").stat().st_size > 10_000
    assert "word drops case, digits and punctuation" in part
    assert "![Bits per byte of tm-slice by tokenization](granularity-tm-slice.png)" in part


def test_pruned_models_size_against_perplexity(units_run: tuple[Path, Path]) -> None:
    home, report = units_run
    md = report.read_text(encoding="utf-8")
    r = lmpipe(
        "sql",
        "select tokenizer, settings_json, parameters, perplexity, perplexity_excluding_oov "
        "from results where split = 'test' and method = 'mkn' and n = 3 "
        "order by tokenizer, parameters desc",
        "--format", "json", home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    for tok in ("word", "bpe"):
        mine = [x for x in rows if x["tokenizer"] == tok]
        # the unpruned model, then 1e-5 and 1e-3: fewer n-grams each time
        assert [json.loads(x["settings_json"]).get("prune") for x in mine] == [None, 1e-5, 1e-3]
        sizes = [x["parameters"] for x in mine]
        assert sizes[0] > sizes[1] > sizes[2], sizes
        corpus = section(md, f"## tm-slice ({tok} tokens)")
        heading = next(h for h in corpus.splitlines() if h.startswith("### Pruning: size against"))
        part = section(corpus, heading)
        (grid,) = tables(part)
        assert [g["threshold"] for g in grid] == ["none", "1e-05", "0.001"]
        assert [num(g["n-grams"]) for g in grid] == sizes
        ppl = next(k for k in grid[0] if k.startswith("test perplexity"))
        column = "perplexity_excluding_oov" if "excluding" in ppl else "perplexity"
        assert [num(g[ppl]) for g in grid] == [round(x[column], 3) for x in mine]
        assert f"(prune-tm-slice-{tok}.png)" in part
        assert (report.parent / f"prune-tm-slice-{tok}.png").stat().st_size > 10_000
        # pruned models are no rows of the n-gram tables, the mixtures or the granularity grid
        ngram = section(corpus, "### N-gram models (perplexity)")
        assert [g["n"] for g in tables(ngram)[0]] == ["1", "2", "3"]
