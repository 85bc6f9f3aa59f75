"""The views over the warehouse's Parquet datasets, defined once and built two ways.

- ``read_only_connection`` is what ``lmpipe sql`` queries: an in-memory DuckDB connection in
  which every view is an Arrow dataset registered from Python (pyarrow reads the files), with
  DuckDB's own file access switched off and its configuration locked before the first user
  statement. DuckDB can then open, read or write no file at all: ``COPY ... TO``, ``EXPORT``,
  ``ATTACH``, ``IMPORT DATABASE``, ``INSTALL``/``LOAD`` and ``read_csv('/etc/...')`` fail inside
  DuckDB, whatever statement wraps them (``EXPLAIN ANALYZE`` included), and nothing the
  connection creates outlives it.
- ``rebuild_database`` writes the same views into ``data/lmpipe.duckdb`` over ``read_parquet``,
  for people who open the warehouse with DuckDB's own shell or client. It holds nothing but
  views and is rebuilt at will (docs/design.md §4); lmpipe itself never queries it.

Both show per-run datasets for committed runs only (their commit record exists), so a reader
never sees half a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from lmpipe.lm.fileio import atomic_path, atomic_write_text, file_lock, sha256_text
from lmpipe.lm.ngram.registry import MAX_ORDER
from lmpipe.lm.sqlfiles import statements
from lmpipe.lm.warehouse.schemas import CONTENT_SCHEMAS, RUN_SCHEMAS
from lmpipe.lm.warehouse.store import Warehouse

# What each view holds (``lmpipe sql`` lists them; the README documents their columns).
VIEW_DOCS: dict[str, str] = {
    "runs": "one row per committed run: id, experiment, timings, config, code version",
    "corpora": "per run: each corpus and tokenizer used, its source, checksum and vocabulary",
    "splits": "per run: lines, tokens, types, OOV and bytes of each split",
    "results": "per run: one row per model, corpus, tokenizer and split (perplexity & co.)",
    "epochs": "per run: neural training curves, one row per epoch",
    "samples": "per run: generated text for each prefix",
    "benchmarks": "per run: speed and quality measurements against peer tools",
    "vocab": "vocabularies by data key: id, token, training count",
    "tokens": "token ids of each split by data key (pos, sent, id)",
    "ngram_ids": "n-gram counts by data key and order, as vocabulary ids w1..w9",
    "ngrams": "n-gram counts by data key and order, with readable tokens",
    "token_scores": "per model key and split: each token's natural-log probability (pos, id)",
}


@dataclass(frozen=True)
class ContentView:
    """A content-addressed dataset: ``<root>/<folder>/<k1>=v1/.../<file>``; the folder keys
    become columns (``key=`` is shown as ``data_key``), before the file's own columns."""

    name: str
    folder: str
    file: str
    keys: tuple[tuple[str, str, pa.DataType], ...]  # (folder key, column, type)
    columns: pa.Schema

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(col, t) for _, col, t in self.keys] + list(self.columns))

    def files(self, root: Path) -> list[tuple[Path, dict[str, str]]]:
        """Every final file of the dataset with its folder keys' values (temporary names,
        which start with a dot, never match)."""
        base = root / self.folder
        pattern = "/".join(f"{k}=*" for k, _, _ in self.keys) + "/" + self.file
        out = []
        for p in sorted(base.glob(pattern)) if base.is_dir() else []:
            parts = p.relative_to(base).parts[:-1]
            values = {
                col: part.split("=", 1)[1]
                for (_, col, _), part in zip(self.keys, parts, strict=True)
            }
            out.append((p, values))
        return out


_TEXT = pa.string()
_CORPUS_KEYS = (("corpus", "corpus", _TEXT), ("tokenizer", "tokenizer", _TEXT))
_DATA_KEY = ("key", "data_key", _TEXT)

CONTENT_VIEWS: tuple[ContentView, ...] = (
    ContentView("vocab", "vocab", "vocab.parquet", (*_CORPUS_KEYS, _DATA_KEY),
                CONTENT_SCHEMAS["vocab"]),
    ContentView("tokens", "tokens", "tokens.parquet",
                (*_CORPUS_KEYS, _DATA_KEY, ("split", "split", _TEXT)), CONTENT_SCHEMAS["tokens"]),
    ContentView("ngram_ids", "ngrams", "ngrams.parquet",
                (*_CORPUS_KEYS, _DATA_KEY, ("n", "n", pa.int32())),
                pa.schema([*((f"w{i}", pa.int32()) for i in range(1, MAX_ORDER + 1)),
                           ("count", pa.int64())])),
    ContentView("token_scores", "token_scores", "scores.parquet",
                (*_CORPUS_KEYS, ("model", "model_key", _TEXT), ("split", "split", _TEXT)),
                CONTENT_SCHEMAS["token_scores"]),
)  # fmt: skip


def _derived_views() -> list[str]:
    """Views defined over the others (``sql/derived_views.sql``)."""
    return statements("lmpipe.lm.warehouse", "derived_views")


# ----------------------------------------------------------------------------- lmpipe sql


def _run_dataset(wh: Warehouse, dataset: str, committed: list[str]) -> ds.Dataset | pa.Table:
    schema = RUN_SCHEMAS[dataset]
    paths = [str(p) for r in committed if (p := wh.run_path(dataset, r)).is_file()]
    if not paths:
        return schema.empty_table()
    return ds.FileSystemDataset.from_paths(
        paths, schema=schema, format=ds.ParquetFileFormat(), filesystem=pafs.LocalFileSystem()
    )


def _content_dataset(wh: Warehouse, view: ContentView) -> ds.Dataset | pa.Table:
    files = view.files(wh.root)
    if not files:
        return view.schema.empty_table()
    partitions = []
    for _, values in files:
        expr = ds.scalar(True)
        for _, col, t in view.keys:
            expr = expr & (ds.field(col) == pa.scalar(values[col]).cast(t))
        partitions.append(expr)
    return ds.FileSystemDataset.from_paths(
        [str(p) for p, _ in files],
        schema=view.schema,
        format=ds.ParquetFileFormat(),
        filesystem=pafs.LocalFileSystem(),
        partitions=partitions,
    )


def read_only_connection(wh: Warehouse) -> duckdb.DuckDBPyConnection:
    """An in-memory connection holding every view as an Arrow dataset, that can touch no file:
    external access off (no file, URL, extension or attached database), no Python replacement
    scans, and the configuration locked so that no statement can turn either back on."""
    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "python_enable_replacements": False,
        },
    )
    committed = wh.committed_runs()
    for dataset in RUN_SCHEMAS:
        con.register(dataset, _run_dataset(wh, dataset, committed))
    for view in CONTENT_VIEWS:
        con.register(view.name, _content_dataset(wh, view))
    for stmt in _derived_views():
        con.execute(stmt.replace("CREATE OR REPLACE VIEW", "CREATE OR REPLACE TEMP VIEW", 1))
    con.execute("SET lock_configuration = true")
    return con


# ----------------------------------------------------------------------------- the file


def _literal(text: str) -> str:
    # A view cannot hold bound parameters: the (warehouse-made) glob is quoted as a literal.
    return "'" + text.replace("'", "''") + "'"


def _select_list(con: duckdb.DuckDBPyConnection, source: str, schema: pa.Schema) -> str:
    """``schema``'s columns from ``source``, in order; a column no file has yet (a column added
    after those files were written) is a typed NULL."""
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = []
    for f in schema:
        duck = _duck_type(f.type)
        cols.append(f"CAST({f.name} AS {duck}) AS {f.name}" if f.name in present
                    else f"NULL::{duck} AS {f.name}")  # fmt: skip
    return ", ".join(cols)


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    raise TypeError(t)


def _empty(schema: pa.Schema) -> str:
    cols = ", ".join(f"NULL::{_duck_type(f.type)} AS {f.name}" for f in schema)
    return f"SELECT {cols} WHERE false"


def _file_view_statements(con: duckdb.DuckDBPyConnection, wh: Warehouse) -> list[str]:
    """The views of ``data/lmpipe.duckdb``: ``read_parquet`` over each dataset's glob, so that
    runs committed after the build show too."""
    stmts = []
    runs_glob = _literal(str(wh.root / "runs" / "run_id=*" / "runs.parquet"))
    for dataset, schema in RUN_SCHEMAS.items():
        body = _empty(schema)
        if wh.run_files(dataset) and wh.run_files("runs"):
            glob = _literal(str(wh.root / dataset / "run_id=*" / f"{dataset}.parquet"))
            source = f"read_parquet({glob}, hive_partitioning=false, union_by_name=true)"
            body = f"SELECT {_select_list(con, source, schema)} FROM {source}"
            if dataset != "runs":
                body += (
                    " WHERE run_id IN (SELECT run_id FROM read_parquet("
                    f"{runs_glob}, hive_partitioning=false))"
                )
        stmts.append(f"CREATE OR REPLACE VIEW {dataset} AS {body}")
    for view in CONTENT_VIEWS:
        body = _empty(view.schema)
        if view.files(wh.root):
            glob = "/".join([str(wh.root / view.folder), *(f"{k}=*" for k, _, _ in view.keys),
                             view.file])  # fmt: skip
            source = f"read_parquet({_literal(glob)}, hive_partitioning=true, union_by_name=true)"
            renamed = ", ".join(f"{k} AS {col}" for k, col, _ in view.keys if k != col)
            inner = f"(SELECT * {'RENAME (' + renamed + ')' if renamed else ''} FROM {source})"
            body = f"SELECT {_select_list(con, inner, view.schema)} FROM {inner}"
        stmts.append(f"CREATE OR REPLACE VIEW {view.name} AS {body}")
    return stmts + _derived_views()


def rebuild_database(wh: Warehouse, *, if_changed: bool = False) -> Path:
    """(Re)create the DuckDB file of views from the Parquet files present now.

    Built under a temporary name and renamed into place, so a reader holding the old file
    keeps a consistent one and never meets a half-built database. ``if_changed`` (what
    recording a run asks for) leaves the file alone where it is the one this function last
    built (:func:`_stamp`) and holds these same statements: the views read their datasets
    through globs, so a new run's files show without a new file (25-35 ms of every run)."""
    wh.root.mkdir(parents=True, exist_ok=True)
    stamp_path = wh.db_path.with_name(wh.db_path.name + ".built")
    with file_lock(wh.root / ".views.lock"):
        probe = duckdb.connect()  # in memory: DESCRIBE reads only the files' footers
        try:
            stmts = _file_view_statements(probe, wh)
        finally:
            probe.close()
        digest = sha256_text(*stmts)
        if if_changed and _read_stamp(stamp_path) == _stamp(wh.db_path, digest):
            return wh.db_path
        with atomic_path(wh.db_path) as tmp:
            tmp.unlink()
            con = duckdb.connect(str(tmp))
            try:
                for stmt in stmts:
                    con.execute(stmt)
                con.execute("CHECKPOINT")
            finally:
                con.close()
        atomic_write_text(stamp_path, _stamp(wh.db_path, digest) or "")
    return wh.db_path


def _stamp(db: Path, digest: str) -> str | None:
    """The digest of a database's statements with the identity of its file (inode, size,
    modification time): a file put there by anything else (another version of lmpipe, a
    user's own tool) never matches. None when there is no file."""
    try:
        st = db.stat()
    except FileNotFoundError:
        return None
    return f"{digest} {st.st_ino} {st.st_size} {st.st_mtime_ns}"


def _read_stamp(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
