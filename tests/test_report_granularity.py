"""One corpus under several tokenizers (``tokenizers = [...]`` of a corpus): the report's
granularity table holds every model's test bits per byte at each tokenization, as stored, with
each tokenization's vocabulary size and OOV rate, and one figure."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from test_report import num, section, tables


def lmpipe(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lmpipe.flows.cli", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_granularity_table_and_figure(tmp_path: Path, corpora_dir: Path) -> None:
    text = tmp_path / "tm.txt"
    text.write_text("\n".join((corpora_dir / "timemachine.txt").read_text().splitlines()[:400]))
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        name = "units"
        [[corpora]]
        name = "tm-slice"
        path = "{text}"
        tokenizers = ["char", "word", "bpe"]
        [vocab]
        bpe_vocab_size = 400
        [ngram]
        orders = [1, 2, 3]
        methods = ["mkn"]
        [neural]
        architectures = ["gru"]
        hidden = 16
        embed = 16
        epochs = 1
        batch_size = 8
        seq_len = 16
    """)
    )
    home = tmp_path / "h"
    r = lmpipe("run", "--config", str(cfg), "--quiet", home=home)
    assert r.returncode == 0, r.stderr
    (report,) = (home / "reports" / "units").glob("*/report.md")
    md = report.read_text(encoding="utf-8")
    part = section(md, "## tm-slice: granularity (char, word, bpe)")
    (grid,) = tables(part)
    assert [row["model"] for row in grid] == [
        "*vocabulary*", "*test OOV rate*", "mkn n=1", "mkn n=2", "mkn n=3", "gru", "mkn3+gru",
    ]  # fmt: skip
    r = lmpipe(
        "sql",
        "select r.tokenizer, r.family, r.model, r.n, r.bits_per_byte, r.oov_rate, c.vocab_size "
        "from results r join corpora c using (run_id, corpus, tokenizer) "
        "where r.split = 'test' and r.role = 'final'",
        "--format", "json", home=home,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 3 * 5
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
