"""The Markdown building blocks of a report: numbers as it prints them, table cells, inline code
and tables."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def fmt(x: Any, digits: int = 3) -> str:
    """A measured value as the report prints it: thousands separators, fixed decimals,
    ``inf`` for an infinite perplexity, ``–`` for a missing value."""
    if x is None or pd.isna(x):
        return "–"
    return "inf" if math.isinf(x) else f"{float(x):,.{digits}f}"


def count(x: Any) -> str:
    """A count (pandas stores a nullable integer column as float: print it as an integer)."""
    return "–" if x is None or pd.isna(x) else f"{int(x):,}"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def code(text: str) -> str:
    """Inline code that survives backticks and pipes inside ``text`` (Markdown tables)."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{cell(text)}{pad}{fence}"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]
