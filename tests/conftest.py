"""Shared fixtures: tiny corpora written by hand, a temporary home, the reference corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def corpora_dir() -> Path:
    d = Path(os.environ.get("LMPIPE_CORPORA_DIR", SHARED_CORPORA))
    if not (d / "timemachine.txt").exists():
        pytest.skip(f"reference corpora not found in {d}")
    return d


@pytest.fixture
def tiny_text(tmp_path: Path) -> Path:
    """Ten lines: 8 train, 1 valid, 1 test under the 80/10/10 rule."""
    p = tmp_path / "tiny.txt"
    lines = [
        "the cat sat",
        "the dog sat down",
        "a cat",
        "the cat sat down",
        "a dog sat",
        "the dog",
        "a cat sat",
        "the cat",
        "a dog sat down",
        "the bird sat",
    ]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p
