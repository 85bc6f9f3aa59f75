"""Flow tests' helpers."""

from __future__ import annotations

import textwrap
from pathlib import Path


def slice_experiment(tmp_path: Path, corpora_dir: Path, name: str, lines: int, body: str) -> Path:
    """An experiment TOML named ``name`` over the first ``lines`` lines of The Time Machine
    (character level), with ``body`` (its [ngram], [neural], ... tables); returns its path."""
    text = tmp_path / "tm.txt"
    head = (corpora_dir / "timemachine.txt").read_text().splitlines()[:lines]
    text.write_text("\n".join(head) + "\n")
    cfg = tmp_path / "exp.toml"
    header = f"""
        name = "{name}"
        tokenizers = ["char"]
        [[corpora]]
        name = "tm-slice"
        path = "{text}"
    """
    cfg.write_text(textwrap.dedent(header) + textwrap.dedent(body))
    return cfg
