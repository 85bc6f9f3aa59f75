"""``lmpipe sql``: read-only queries over the warehouse views, printed in four formats.

Three locks keep a query from changing anything: only read statements are accepted (checked
with DuckDB's own parser, not a regex), the database file is opened read-only, and file access is
limited to the warehouse folder with the configuration locked, so ``COPY ... TO``, ``ATTACH`` or
``read_csv('/etc/...')`` are refused too. Every failure is one line (a ``WarehouseError``).
"""

from __future__ import annotations

import csv
import io
import json
import math
from decimal import Decimal
from typing import Any

import duckdb

from lm.errors import WarehouseError
from lm.warehouse import VIEW_DOCS, Warehouse, rebuild_database

# DuckDB statement types that only read. DESCRIBE, SHOW and SUMMARIZE parse as SELECT; a PIVOT
# whose columns DuckDB must discover parses as MULTI (DuckDB's own rewrite into reading steps).
READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "MULTI"}
# table and markdown are for reading: floats to 7 significant digits and, in the table, long
# cells cut; csv and json keep every value exact
READ_DIGITS = 7
TABLE_CELL_WIDTH = 60

Rows = list[tuple[Any, ...]]


def one_line(e: Exception | str) -> str:
    """DuckDB's message on one line, without the caret line that points into the query (it
    means nothing once the message is folded)."""
    lines = [ln for ln in str(e).splitlines() if ln.strip() and set(ln.strip()) != {"^"}]
    text = " ".join(" ".join(lines).split())
    return text if len(text) < 400 else text[:397] + "..."


def check_read_only(query: str) -> None:
    """Refuse anything but one read statement, before any database is opened."""
    try:
        kinds = [str(s.type).rsplit(".", 1)[-1].upper() for s in duckdb.extract_statements(query)]
    except duckdb.Error as e:
        raise WarehouseError(one_line(e)) from None
    if not kinds:
        raise WarehouseError("the query is empty; give a SELECT statement")
    if len(kinds) > 1:
        raise WarehouseError(f"give one statement at a time (got {len(kinds)})")
    kind = kinds[0]
    if kind not in READ_STATEMENTS:
        raise WarehouseError(
            f"lmpipe sql is read-only: {kind} statements are refused; the warehouse is changed "
            "only by runs (and `lmpipe check --repair`)"
        )


def _views_stale(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> bool:
    """Whether the database lacks a view, or its views read files of another folder (the home
    was moved or copied): then it is rebuilt, as it may be at any time (DESIGN §4)."""
    views = dict(
        con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
    )
    root = str(wh.root).replace("'", "''")
    return not set(VIEW_DOCS) <= set(views) or any(
        "read_parquet(" in sql and root not in sql for sql in views.values()
    )


def _connect(wh: Warehouse) -> duckdb.DuckDBPyConnection:
    """A read-only connection that can read nothing outside the warehouse."""
    try:
        con = duckdb.connect(str(wh.db_path), read_only=True)
    except duckdb.Error as e:
        raise WarehouseError(f"cannot open {wh.db_path}: {one_line(e)}; try --rebuild") from None
    con.execute("SET allowed_directories = ?", [[str(wh.root)]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_query(wh: Warehouse, query: str, rebuild: bool = False) -> tuple[list[str], Rows]:
    """Run one read-only query over the views; returns column names and rows."""
    check_read_only(query)
    if not wh.root.is_dir():
        raise WarehouseError(
            f"no warehouse at {wh.root}: run `lmpipe run` there first, or give --home"
        )
    if rebuild or not wh.db_path.exists():
        rebuild_database(wh)
    con = _connect(wh)
    try:
        if _views_stale(con, wh):
            con.close()
            rebuild_database(wh)
            con = _connect(wh)
        rel = con.execute(query)
        cols = [d[0] for d in rel.description] if rel.description else []
        return cols, rel.fetchall()
    except duckdb.Error as e:
        msg = one_line(e)
        if ".parquet" in msg and not isinstance(e, duckdb.ParserException | duckdb.BinderException):
            msg += "; run `lmpipe check --repair` to find and remove damaged files"
        raise WarehouseError(msg) from None
    finally:
        con.close()


# --------------------------------------------------------------------------- output


def _json_value(v: Any) -> Any:
    """JSON has no inf/nan (kept readable as strings); DECIMAL becomes a number."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return v


def _text(v: Any, digits: int | None = None) -> str:
    """A value as text: NULL is empty, lists are bracketed, floats exact (Python's shortest
    round-trip form) or, for reading, to ``digits`` significant digits."""
    if v is None:
        return ""
    if isinstance(v, float):
        return str(v) if digits is None else format(v, f".{digits}g")
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_text(x, digits) for x in v) + "]"
    return str(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def _csv(cols: list[str], rows: Rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    w.writerows([_text(v) for v in r] for r in rows)
    return buf.getvalue()


def _json(cols: list[str], rows: Rows) -> str:
    records = [{c: _json_value(v) for c, v in zip(cols, r, strict=True)} for r in rows]
    return json.dumps(records, ensure_ascii=False, indent=1, default=str) + "\n"


def _markdown(cols: list[str], rows: Rows) -> str:
    def cell(v: Any) -> str:
        return _text(v, READ_DIGITS).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _table(cols: list[str], rows: Rows) -> str:
    def cell(v: Any) -> str:
        s = " ".join(_text(v, READ_DIGITS).split("\n"))
        return s if len(s) <= TABLE_CELL_WIDTH else s[: TABLE_CELL_WIDTH - 1] + "…"

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(cols)]
    # numbers right-aligned, so that their digits line up
    numeric = [
        bool(rows) and all(r[i] is None or _is_number(r[i]) for r in rows) for i in range(len(cols))
    ]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(cols), "  ".join("-" * w for w in widths), *(line(r) for r in cells)]
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out) + "\n"


_FORMATTERS = {"table": _table, "csv": _csv, "json": _json, "markdown": _markdown}
FORMATS = tuple(_FORMATTERS)


def format_rows(cols: list[str], rows: Rows, fmt: str) -> str:
    if fmt not in _FORMATTERS:
        raise WarehouseError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return _FORMATTERS[fmt](cols, rows)
