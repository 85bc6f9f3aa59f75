"""``lmpipe sql``: read-only queries over the warehouse views, printed in four formats.

What keeps a query from changing anything is the connection it runs on
(:func:`lmpipe.lm.warehouse.read_only_connection`): an in-memory DuckDB whose views are Arrow
datasets read by pyarrow, with DuckDB's file access off and its configuration locked, so no
statement can open, write or attach a file, wherever it hides (``EXPLAIN ANALYZE COPY ...``
included). On top of that, statements other than one read (SELECT, EXPLAIN, PRAGMA, DESCRIBE,
SHOW, SUMMARIZE) are refused with a message saying so, before any file is opened.

A query runs on a worker thread, so that Ctrl-C and the time limit can interrupt DuckDB in the
middle of it; rows are fetched in batches, so printing a large result streams instead of
holding it all. Every failure is one line (a ``WarehouseError``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from lmpipe.lm.errors import WarehouseError
from lmpipe.lm.warehouse import Warehouse, read_only_connection

# DuckDB statement types that only read. DESCRIBE, SHOW and SUMMARIZE parse as SELECT; a PIVOT
# whose columns DuckDB must discover parses as MULTI (DuckDB's own rewrite into reading steps).
READ_STATEMENTS = {"SELECT", "EXPLAIN", "PRAGMA", "MULTI"}
# table and markdown are for reading: floats to 7 significant digits and, in the table, long
# cells cut; csv and json keep every value exact
READ_DIGITS = 7
TABLE_CELL_WIDTH = 60
DEFAULT_TIMEOUT_S = 300.0
BATCH_ROWS = 10_000

Rows = list[tuple[Any, ...]]
_EXPLAINED = re.compile(r"\s*explain\s+analy[sz]e\s+", re.IGNORECASE)


def one_line(e: BaseException | str) -> str:
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
    explained = _EXPLAINED.match(query)
    if kind == "EXPLAIN" and explained:
        # EXPLAIN ANALYZE runs the statement it explains: that one must be a read too
        check_read_only(query[explained.end() :])
        return
    if kind not in READ_STATEMENTS:
        raise WarehouseError(
            f"lmpipe sql is read-only: {kind} statements are refused; the warehouse is changed "
            "only by runs (and `lmpipe check --repair`)"
        )


@dataclass
class QueryResult:
    """The columns of a running query and its rows, batch by batch (``batches`` may be read
    once). ``timeout`` bounds the whole query, fetching included (None: no limit)."""

    columns: list[str]
    batches: Iterator[Rows]


_DONE = object()


def _query_error(e: BaseException) -> WarehouseError:
    msg = one_line(e)
    damaged = isinstance(e, pa.ArrowException) or (
        ".parquet" in msg and not isinstance(e, duckdb.ParserException | duckdb.BinderException)
    )
    if damaged:
        msg += "; run `lmpipe check --repair` to find and remove damaged files"
    return WarehouseError(msg)


def _wait(q: queue.Queue[Any], deadline: float, stop: Callable[[], None], query: str) -> Any:
    """The next item of ``q``; interrupts the query on Ctrl-C or at the deadline. Waits in short
    slices so that the main thread gets Python's KeyboardInterrupt while DuckDB computes."""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                stop()
                raise WarehouseError(
                    f"the query ran past its time limit and was stopped: {query[:60]!r}...; "
                    "narrow it, or give a longer --timeout (0 = none)"
                )
            try:
                return q.get(timeout=min(0.1, left))
            except queue.Empty:
                continue
    except KeyboardInterrupt:
        stop()
        raise


def stream_query(
    wh: Warehouse, query: str, timeout: float | None = DEFAULT_TIMEOUT_S
) -> QueryResult:
    """Start one read-only query over the views; its rows come in batches of ``BATCH_ROWS``."""
    check_read_only(query)
    if not wh.root.is_dir():
        raise WarehouseError(
            f"no warehouse at {wh.root}: run `lmpipe run` there first, or give --home"
        )
    try:
        con = read_only_connection(wh)
    except (duckdb.Error, pa.ArrowException, OSError) as e:
        raise _query_error(e) from None
    out: queue.Queue[Any] = queue.Queue(maxsize=2)  # a batch in hand, one ready: bounded memory
    stopped = threading.Event()

    def work() -> None:
        try:
            rel = con.execute(query)
            out.put([d[0] for d in rel.description] if rel.description else [])
            while not stopped.is_set():
                rows = rel.fetchmany(BATCH_ROWS)
                if not rows:
                    break
                out.put(rows)
            out.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread
            out.put(e)

    def stop() -> None:
        stopped.set()
        con.interrupt()

    deadline = time.monotonic() + (timeout if timeout else math.inf)
    worker = threading.Thread(target=work, name="lmpipe-sql", daemon=True)
    worker.start()

    def take() -> Any:
        item = _wait(out, deadline, stop, query)
        if isinstance(item, BaseException):
            raise _query_error(item) from None
        return item

    def finish() -> None:
        # interrupt again until the worker leaves DuckDB: an interrupt that comes before the
        # query has started is lost, and the query would then run to its end
        while worker.is_alive():
            stop()
            try:
                out.get(timeout=0.05)
            except queue.Empty:
                pass
        con.close()

    try:
        columns = take()
    except BaseException:
        finish()
        raise

    def batches() -> Iterator[Rows]:
        try:
            while (item := take()) is not _DONE:
                yield item
        finally:
            finish()

    return QueryResult(columns, batches())


def run_query(
    wh: Warehouse, query: str, timeout: float | None = DEFAULT_TIMEOUT_S
) -> tuple[list[str], Rows]:
    """Run one read-only query over the views; returns column names and every row."""
    result = stream_query(wh, query, timeout)
    rows: Rows = []
    for batch in result.batches:
        rows.extend(batch)
    return result.columns, rows


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


# Formats for reading show at most this many rows unless --limit says otherwise; csv and json
# stream every row.
READING_LIMIT = 1000


def write_result(
    result: QueryResult, fmt: str, write: Callable[[str], Any], limit: int | None = None
) -> tuple[int, bool]:
    """Print ``result`` in ``fmt`` through ``write`` as its batches arrive (csv and json), or
    once at most ``limit`` rows are in (table and markdown, whose column widths need every
    row: ``READING_LIMIT`` when ``limit`` is None). Returns the rows written and whether more
    rows were left out."""
    if fmt not in _FORMATTERS:
        raise WarehouseError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    streamed = fmt in ("csv", "json")
    cap = limit if limit is not None else (None if streamed else READING_LIMIT)
    shown: Rows = []
    n, more = 0, False
    cols = result.columns
    if fmt == "csv":
        write(_csv(cols, []))
    elif fmt == "json":
        write("[")
    for batch in result.batches:
        if cap is not None and n + len(batch) > cap:
            batch, more = batch[: cap - n], True
        if fmt == "csv":
            write(_csv(cols, batch).split("\n", 1)[1])
        elif fmt == "json":
            for r in batch:
                record = {c: _json_value(v) for c, v in zip(cols, r, strict=True)}
                write(("\n " if n == 0 else ",\n ") + json.dumps(record, ensure_ascii=False,
                                                                default=str))  # fmt: skip
                n += 1
            n -= len(batch)
        else:
            shown.extend(batch)
        n += len(batch)
        if more:
            break
    if fmt == "json":
        write("\n]\n" if n else "]\n")
    elif not streamed:
        write(_FORMATTERS[fmt](cols, shown))
    return n, more
