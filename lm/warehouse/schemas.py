"""The warehouse's datasets and their schemas: the column names and types SQL users rely on.

Per-run datasets (``RUN_SCHEMAS``) hold one file per committed run; content datasets
(``CONTENT_SCHEMAS``) one file per content key, shared by every run that needs it. A column is
only ever added at the end of a schema, so files of older runs still read (the missing column
is NULL there).
"""

from __future__ import annotations

import pyarrow as pa

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
            ("role", pa.string()),
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
    # One row per evaluated position of a split's token stream (the order of ``tokens``):
    # the natural-log probability the model gives the token there, and whether it is <unk>.
    "token_scores": pa.schema(
        [("pos", pa.int64()), ("id", pa.int32()), ("logprob", pa.float64()), ("oov", pa.bool_())]
    ),
}
