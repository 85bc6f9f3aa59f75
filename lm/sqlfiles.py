"""SQL kept where it can be read: ``.sql`` files beside the modules that run them, loaded here.

A file holds one statement, or several each under a ``-- name: <name>`` line; values are bound
as parameters when the statements run, never pasted in.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources


@cache
def sql_text(package: str, name: str) -> str:
    """The text of ``sql/<name>.sql`` in ``package`` (installed as package data)."""
    return resources.files(package).joinpath(f"sql/{name}.sql").read_text("utf-8")


def named_statements(package: str, name: str) -> dict[str, str]:
    """The statements of a file of ``-- name: <name>`` sections, by name."""
    parts = re.split(r"^-- name: (\w+)\n", sql_text(package, name), flags=re.MULTILINE)
    return {key: body.strip() for key, body in zip(parts[1::2], parts[2::2], strict=True)}


def statements(package: str, name: str) -> list[str]:
    """The statements of a file, in order: comment lines dropped, split on semicolons."""
    text = sql_text(package, name)
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]
