"""The warehouse: hive-partitioned Parquet datasets under one root, and DuckDB views over them.

Layout (DESIGN section 4), ``W = <home>/data/warehouse``:

- content-addressed, written once per content key ``K`` and shared by every run that needs it:
  ``W/tokens/corpus=C/tokenizer=T/key=K/split=S/tokens.parquet``,
  ``W/vocab/corpus=C/tokenizer=T/key=K/vocab.parquet``,
  ``W/ngrams/corpus=C/tokenizer=T/key=K/n=N/ngrams.parquet``;
- per run, every row carrying its ``run_id``: ``W/<dataset>/run_id=R/<dataset>.parquet`` for
  ``corpora``, ``splits``, ``results``, ``epochs``, ``samples``, ``benchmarks``, and last of all
  ``W/runs/run_id=R/runs.parquet``, the run's commit record (with the row count of each of its
  datasets). Views show a run's rows only once its commit record exists, so readers never see a
  half-written run; ``lmpipe check`` compares the files with the recorded counts.

Every file is written under a temporary name and renamed into place (``lm.fileio``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lm.errors import WarehouseError
from lm.fileio import TMP_PREFIX, atomic_path, file_lock

# Per-run datasets and their schemas: the column names and types that SQL users rely on.
RUN_SCHEMAS: dict[str, pa.Schema] = {
    "runs": pa.schema(
        [
            ("run_id", pa.string()),
            ("experiment", pa.string()),
            ("kind", pa.string()),
            ("started_at", pa.timestamp("us", tz="UTC")),
            ("finished_at", pa.timestamp("us", tz="UTC")),
            ("wall_seconds", pa.float64()),
            ("status", pa.string()),
            ("config_json", pa.string()),
            ("code_version", pa.string()),
            ("environment_json", pa.string()),
            ("row_counts_json", pa.string()),
        ]
    ),
    "corpora": pa.schema(
        [
            ("run_id", pa.string()),
            ("corpus", pa.string()),
            ("tokenizer", pa.string()),
            ("data_key", pa.string()),
            ("origin", pa.string()),
            ("sha256", pa.string()),
            ("normalize", pa.string()),
            ("min_freq", pa.int32()),
            ("vocab_size", pa.int32()),
            ("replaced_bytes", pa.int64()),
        ]
    ),
    "splits": pa.schema(
        [
            ("run_id", pa.string()),
            ("corpus", pa.string()),
            ("tokenizer", pa.string()),
            ("split", pa.string()),
            ("lines", pa.int64()),
            ("tokens", pa.int64()),
            ("types", pa.int64()),
            ("oov", pa.int64()),
            ("oov_rate", pa.float64()),
            ("bytes", pa.int64()),
        ]
    ),
    "results": pa.schema(
        [
            ("run_id", pa.string()),
            ("experiment", pa.string()),
            ("corpus", pa.string()),
            ("tokenizer", pa.string()),
            ("family", pa.string()),
            ("model", pa.string()),
            ("method", pa.string()),
            ("n", pa.int32()),
            ("split", pa.string()),
            ("tokens", pa.int64()),
            ("oov", pa.int64()),
            ("oov_rate", pa.float64()),
            ("zero_prob", pa.int64()),
            ("nats", pa.float64()),
            ("perplexity", pa.float64()),
            ("perplexity_excluding_oov", pa.float64()),
            ("bits_per_token", pa.float64()),
            ("bits_per_byte", pa.float64()),
            ("bytes", pa.int64()),
            ("parameters", pa.int64()),
            ("train_seconds", pa.float64()),
            ("eval_seconds", pa.float64()),
            ("tokens_per_second", pa.float64()),
            ("epochs", pa.int32()),
            ("device", pa.string()),
            ("model_key", pa.string()),
            ("settings_json", pa.string()),
        ]
    ),
    "epochs": pa.schema(
        [
            ("run_id", pa.string()),
            ("corpus", pa.string()),
            ("tokenizer", pa.string()),
            ("model", pa.string()),
            ("model_key", pa.string()),
            ("epoch", pa.int32()),
            ("train_perplexity", pa.float64()),
            ("valid_perplexity", pa.float64()),
            ("learning_rate", pa.float64()),
            ("grad_norm", pa.float64()),
            ("tokens_per_second", pa.float64()),
            ("seconds", pa.float64()),
        ]
    ),
    "samples": pa.schema(
        [
            ("run_id", pa.string()),
            ("corpus", pa.string()),
            ("tokenizer", pa.string()),
            ("model", pa.string()),
            ("model_key", pa.string()),
            ("prefix", pa.string()),
            ("strategy", pa.string()),
            ("seed", pa.int64()),
            ("text", pa.string()),
        ]
    ),
    "benchmarks": pa.schema(
        [
            ("run_id", pa.string()),
            ("benchmark", pa.string()),
            ("tool", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
            ("unit", pa.string()),
            ("reference", pa.float64()),
            ("notes", pa.string()),
        ]
    ),
}

CONTENT_SCHEMAS: dict[str, pa.Schema] = {
    "tokens": pa.schema([("pos", pa.int64()), ("sent", pa.int64()), ("id", pa.int32())]),
    "vocab": pa.schema([("id", pa.int32()), ("token", pa.string()), ("count", pa.int64())]),
}

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")
DB_NAME = "lmpipe.duckdb"

# The views the DuckDB file holds. {runs} etc. are replaced by bound file lists at build time;
# run-partitioned datasets show committed runs only.
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
    "ngrams": "n-gram counts by data key and order, with readable tokens",
}


@dataclass(frozen=True)
class Warehouse:
    root: Path

    @classmethod
    def at_home(cls, home: Path) -> Warehouse:
        return cls(Path(home) / "data" / "warehouse")

    @property
    def db_path(self) -> Path:
        return self.root.parent / DB_NAME

    # ------------------------------------------------------------------ paths

    def content_dir(self, dataset: str, corpus: str, tokenizer: str, key: str) -> Path:
        return self.root / dataset / f"corpus={corpus}" / f"tokenizer={tokenizer}" / f"key={key}"

    def tokens_path(self, corpus: str, tokenizer: str, key: str, split: str) -> Path:
        d = self.content_dir("tokens", corpus, tokenizer, key)
        return d / f"split={split}" / "tokens.parquet"

    def vocab_path(self, corpus: str, tokenizer: str, key: str) -> Path:
        return self.content_dir("vocab", corpus, tokenizer, key) / "vocab.parquet"

    def ngrams_dir(self, corpus: str, tokenizer: str, key: str) -> Path:
        return self.content_dir("ngrams", corpus, tokenizer, key)

    def run_path(self, dataset: str, run_id: str) -> Path:
        if not RUN_ID_RE.match(run_id):
            raise WarehouseError(f"run id {run_id!r} is not valid (letters, digits, '_', '-')")
        return self.root / dataset / f"run_id={run_id}" / f"{dataset}.parquet"

    # ------------------------------------------------------------------ writing

    def write_run_rows(self, dataset: str, run_id: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Write one run's rows of a per-run dataset atomically; returns the row count."""
        schema = RUN_SCHEMAS[dataset]
        rows = [dict(r, run_id=run_id) for r in rows]
        table = pa.Table.from_pylist(rows, schema=schema) if rows else schema.empty_table()
        write_parquet(table, self.run_path(dataset, run_id))
        return table.num_rows

    def commit_run(self, run_id: str, record: Mapping[str, Any]) -> None:
        """Write the run's commit record last: from now on the views show the run."""
        self.write_run_rows("runs", run_id, [record])

    # ------------------------------------------------------------------ reading

    def run_files(self, dataset: str) -> list[str]:
        d = self.root / dataset
        return sorted(str(p) for p in d.glob(f"run_id=*/{dataset}.parquet")) if d.exists() else []

    def content_files(self, dataset: str, name: str) -> list[str]:
        d = self.root / dataset
        return sorted(str(p) for p in d.glob(f"**/{name}")) if d.exists() else []

    def read_run(self, dataset: str, run_id: str) -> pa.Table:
        return pq.read_table(self.run_path(dataset, run_id))

    def committed_runs(self) -> list[str]:
        return [Path(p).parent.name.removeprefix("run_id=") for p in self.run_files("runs")]


def write_parquet(table: pa.Table, dest: Path) -> None:
    """Atomic Parquet write (temporary name in the same folder, then rename)."""
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def is_temporary(path: Path) -> bool:
    return path.name.startswith(TMP_PREFIX)


# ---------------------------------------------------------------------------- views


def _empty_select(schema: pa.Schema) -> str:
    cols = ", ".join(f"NULL::{_duck_type(f.type)} AS {f.name}" for f in schema)
    return f"SELECT {cols} WHERE false"


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    raise TypeError(t)


def _literal(path: str) -> str:
    # A view cannot hold bound parameters, so the (warehouse-made) path is quoted as a literal.
    return "'" + path.replace("'", "''") + "'"


# Glob of each dataset's final file names (temporary names start with TMP_PREFIX and never
# match), evaluated when a query runs, so a view sees runs committed after it was created.
GLOBS = {
    **{d: f"{d}/run_id=*/{d}.parquet" for d in RUN_SCHEMAS},
    "vocab": "vocab/corpus=*/tokenizer=*/key=*/vocab.parquet",
    "tokens": "tokens/corpus=*/tokenizer=*/key=*/split=*/tokens.parquet",
    "ngrams": "ngrams/corpus=*/tokenizer=*/key=*/n=*/ngrams.parquet",
}


def _glob(wh: Warehouse, dataset: str) -> str:
    return _literal(str(wh.root / GLOBS[dataset]))


def view_statements(wh: Warehouse) -> list[str]:
    """CREATE VIEW statements for every dataset, over the files present now. A dataset with no
    file yet gets an empty view of the same columns, so queries never fail for lack of data."""
    stmts: list[str] = []
    committed = wh.run_files("runs")
    runs_body = (
        f"SELECT * FROM read_parquet({_glob(wh, 'runs')}, hive_partitioning=false)"
        if committed
        else _empty_select(RUN_SCHEMAS["runs"])
    )
    stmts.append(f"CREATE OR REPLACE VIEW runs AS {runs_body}")
    for dataset, schema in RUN_SCHEMAS.items():
        if dataset == "runs":
            continue
        files = wh.run_files(dataset)
        body = _empty_select(schema)
        if files and committed:
            cols = ", ".join(f"d.{f.name}" for f in schema)
            body = (
                f"SELECT {cols} FROM read_parquet({_glob(wh, dataset)}, hive_partitioning=false,"
                " union_by_name=true) d SEMI JOIN runs r ON d.run_id = r.run_id"
            )
        stmts.append(f"CREATE OR REPLACE VIEW {dataset} AS {body}")
    stmts.extend(_content_views(wh))
    return stmts


_CONTENT_EMPTY = {
    "vocab": "SELECT NULL::VARCHAR AS corpus, NULL::VARCHAR AS tokenizer, NULL::VARCHAR AS"
    " data_key, NULL::INTEGER AS id, NULL::VARCHAR AS token, NULL::BIGINT AS count WHERE false",
    "tokens": "SELECT NULL::VARCHAR AS corpus, NULL::VARCHAR AS tokenizer, NULL::VARCHAR AS"
    " data_key, NULL::VARCHAR AS split, NULL::BIGINT AS pos, NULL::BIGINT AS sent,"
    " NULL::INTEGER AS id WHERE false",
    "ngrams": "SELECT NULL::VARCHAR AS corpus, NULL::VARCHAR AS tokenizer, NULL::VARCHAR AS"
    " data_key, NULL::INTEGER AS n, NULL::VARCHAR[] AS tokens, NULL::BIGINT AS count WHERE false",
}


def _content_views(wh: Warehouse) -> list[str]:
    vocab_files = wh.content_files("vocab", "vocab.parquet")
    token_files = wh.content_files("tokens", "tokens.parquet")
    ngram_files = wh.content_files("ngrams", "ngrams.parquet")
    views = dict(_CONTENT_EMPTY)
    if vocab_files:
        views["vocab"] = (
            "SELECT corpus, tokenizer, key AS data_key, id, token, count FROM "
            f"read_parquet({_glob(wh, 'vocab')}, hive_partitioning=true)"
        )
    if token_files:
        views["tokens"] = (
            "SELECT corpus, tokenizer, key AS data_key, split, pos, sent, id FROM "
            f"read_parquet({_glob(wh, 'tokens')}, hive_partitioning=true)"
        )
    if ngram_files and vocab_files:
        # n-gram files hold ids w1..wn; the view spells them out with the vocabulary of the
        # same data key (a list lookup, so every order shares one statement).
        top = max(int(m.group(1)) for f in ngram_files if (m := re.search(r"/n=(\d+)/", f)))
        ids = ", ".join(f"g.w{i}" for i in range(1, top + 1))
        views["ngrams"] = (
            "WITH g AS (SELECT * FROM read_parquet("
            f"{_glob(wh, 'ngrams')}, hive_partitioning=true, union_by_name=true)), "
            "v AS (SELECT corpus, tokenizer, data_key AS key, list(token ORDER BY id) AS toks"
            " FROM vocab GROUP BY ALL) "
            "SELECT g.corpus, g.tokenizer, g.key AS data_key, CAST(g.n AS INTEGER) AS n, "
            f"list_transform(list_filter([{ids}], lambda x: x IS NOT NULL), "
            "lambda x: v.toks[x + 1]) AS tokens, g.count::BIGINT AS count "
            "FROM g JOIN v USING (corpus, tokenizer, key)"
        )
    return [f"CREATE OR REPLACE VIEW {name} AS {body}" for name, body in views.items()]


def rebuild_database(wh: Warehouse) -> Path:
    """(Re)create the DuckDB file of views from the Parquet files present now.

    Built under a temporary name and renamed into place, so a reader holding the old file
    keeps a consistent one and never meets a half-built database."""
    wh.root.mkdir(parents=True, exist_ok=True)
    with file_lock(wh.root / ".views.lock"), atomic_path(wh.db_path) as tmp:
        tmp.unlink()
        con = duckdb.connect(str(tmp))
        try:
            for stmt in view_statements(wh):
                con.execute(stmt)
            con.execute("CHECKPOINT")
        finally:
            con.close()
    return wh.db_path


def environment_json() -> str:
    """Versions and machine facts for the reproducibility block. Package versions come from
    their metadata, so recording a run never pays for importing torch."""
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, object] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    for pkg in ("torch", "numpy", "pandas", "pyarrow", "duckdb", "prefect"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    torch = sys.modules.get("torch")
    info["cuda"] = bool(torch is not None and torch.cuda.is_available())
    return json.dumps(info, sort_keys=True)
