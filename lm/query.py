"""``lmpipe sql``: read-only queries over the warehouse views, printed in four formats.

Three locks keep a query from changing anything: only read statements are accepted (checked
with DuckDB's own parser, not a regex), the database file is opened read-only, and file access is
limited to the warehouse folder with the configuration locked, so ``COPY ... TO``, ``ATTACH`` or
``read_csv('/etc/...')`` are refused too.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime
from typing import Any

import duckdb

from lm.errors import WarehouseError
from lm.warehouse import Warehouse, rebuild_database

READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "SHOW", "DESCRIBE", "SUMMARIZE"}
FORMATS = ("table", "csv", "json", "markdown")


def _statement_kinds(con: duckdb.DuckDBPyConnection, query: str) -> list[str]:
    try:
        stmts = con.extract_statements(query)
    except duckdb.Error as e:
        raise WarehouseError(_one_line(e)) from None
    return [str(s.type).rsplit(".", 1)[-1].upper() for s in stmts]


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text if len(text) < 400 else text[:397] + "..."


def run_query(wh: Warehouse, query: str, rebuild: bool = False) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only query; returns column names and rows."""
    if rebuild or not wh.db_path.exists():
        rebuild_database(wh)
    probe = duckdb.connect()
    kinds = _statement_kinds(probe, query)
    probe.close()
    if not kinds:
        raise WarehouseError("the query is empty; give a SELECT statement")
    if len(kinds) > 1:
        raise WarehouseError("give one statement at a time")
    if kinds[0] not in READ_STATEMENTS:
        raise WarehouseError(
            f"lmpipe sql is read-only: a {kinds[0]} statement is refused; the warehouse is "
            "changed only by runs (`lmpipe check --repair` removes damaged files)"
        )
    try:
        con = duckdb.connect(str(wh.db_path), read_only=True)
    except duckdb.Error as e:
        raise WarehouseError(f"cannot open {wh.db_path}: {_one_line(e)}; try --rebuild") from None
    try:
        root = str(wh.root.resolve())
        con.execute("SET allowed_directories = ?", [[root]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        rel = con.execute(query)
        cols = [d[0] for d in rel.description] if rel.description else []
        rows = rel.fetchall()
    except duckdb.Error as e:
        raise WarehouseError(_one_line(e)) from None
    finally:
        con.close()
    return cols, rows


def _cell(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return [_cell(x) for x in v]
    return v


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e6 or math.isinf(v) else f"{v:.6e}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_text(x) for x in v) + "]"
    return str(v)


def format_rows(cols: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([_text(v) if isinstance(v, list | tuple) else ("" if v is None else v) for v in r])
        return buf.getvalue()
    if fmt == "json":
        return json.dumps([dict(zip(cols, map(_cell, r), strict=True)) for r in rows], ensure_ascii=False, indent=1) + "\n"
    cells = [[_text(v) for v in r] for r in rows]
    if fmt == "markdown":
        esc = [[c.replace("|", "\\|") for c in r] for r in cells]
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in esc]
        return "\n".join(lines) + "\n"
    if fmt == "table":
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
        sep = "  "
        lines = [sep.join(c.ljust(w) for c, w in zip(cols, widths, strict=True)),
                 sep.join("-" * w for w in widths)]
        for r in cells:
            lines.append(sep.join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
        return "\n".join(lines) + "\n"
    raise WarehouseError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
