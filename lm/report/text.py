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


# Text from a corpus or a model is data, never markup: these characters would make HTML, links,
# images, emphasis or table cells of it (CommonMark backslash escapes; HTML as entities).
_MARKUP = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;",
     **{c: "\\" + c for c in "\\`*_[]|~#"}}
)  # fmt: skip


def visible(text: str) -> str:
    """Control characters shown as their Unicode pictures (a ``\\r`` would break a table
    row), a line break as ⏎."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\n":
            out.append(" ⏎ ")
        elif o < 0x20:
            out.append(chr(0x2400 + o))  # ␀ .. ␟ (␉ tab, ␍ carriage return)
        elif o == 0x7F:
            out.append("␡")
        elif 0x80 <= o < 0xA0 or ch in "\u2028\u2029":
            out.append(f"U+{o:04X}")
        else:
            out.append(ch)
    return "".join(out)


def cell(text: str) -> str:
    """Untrusted text (a sample, a prefix, a token) as literal Markdown: no HTML, link, image,
    emphasis or cell break survives, control characters are shown."""
    return visible(text).translate(_MARKUP)


def code(text: str) -> str:
    """Inline code that survives backticks and pipes inside ``text`` (Markdown tables). Inside
    a code span nothing is markup but the pipe of a table row."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    body = visible(text).replace("|", "\\|")
    return f"{fence}{pad}{body}{pad}{fence}"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]
