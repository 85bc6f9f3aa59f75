"""Per-token scores as data: what every evaluated model gives each token of a split.

One file per model key and split (``Warehouse.token_scores_path``), written once by the step
that evaluated the model and shared by every run that records it. Rows follow the split's token
stream (``pos`` 0..N-1, the order of the ``tokens`` view), so two models of the same data key
line up position by position; ``sum(logprob)`` is the ``-nats`` of their ``results`` row.
Stored: ``pos`` (delta-encoded) and ``id`` compress to almost nothing, ``logprob`` is a float64
(8 bytes, the sums stay exact), so about 9 bytes per token on disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lmpipe.lm.errors import WarehouseError
from lmpipe.lm.metrics import TokenScores
from lmpipe.lm.warehouse.schemas import CONTENT_SCHEMAS
from lmpipe.lm.warehouse.store import Warehouse, write_parquet

SCHEMA = CONTENT_SCHEMAS["token_scores"]


def write_token_scores(
    wh: Warehouse,
    corpus: str,
    tokenizer: str,
    model_key: str,
    split: str,
    ids: np.ndarray,
    scores: TokenScores,
) -> Path:
    """Store one model's scores of one split (atomically); returns the file."""
    lp = np.asarray(scores.logprob, dtype=np.float64)
    if lp.shape != np.shape(ids):
        raise ValueError(f"{lp.size} scores for a stream of {np.size(ids)} tokens")
    table = pa.table(
        [
            pa.array(np.arange(lp.size, dtype=np.int64)),
            pa.array(np.asarray(ids, dtype=np.int32)),
            pa.array(lp),
            pa.array(np.asarray(scores.oov, dtype=bool)),
        ],
        schema=SCHEMA,
    )
    dest = wh.token_scores_path(corpus, tokenizer, model_key, split)
    # pos ascending (delta); no dictionary for the logprobs, nearly all distinct: trying one
    # doubles the write (PTB's test split: 9.3 against 4.4 ms)
    write_parquet(table, dest, dictionary=["id", "oov"], delta=["pos"])
    return dest


def read_token_scores(
    wh: Warehouse, corpus: str, tokenizer: str, model_key: str, split: str
) -> tuple[np.ndarray, TokenScores]:
    """The token ids and scores stored for one model and split."""
    path = wh.token_scores_path(corpus, tokenizer, model_key, split)
    try:
        table = pq.read_table(path, columns=["id", "logprob", "oov"])
    except FileNotFoundError:
        raise WarehouseError(
            f"no token scores for model {model_key} ({corpus}/{tokenizer}, {split}) at {path}: "
            "evaluate the model again (lmpipe run re-creates them)"
        ) from None
    ids = table.column("id").to_numpy()
    return ids, TokenScores(
        logprob=table.column("logprob").to_numpy(), oov=table.column("oov").to_numpy()
    )


def has_token_scores(
    wh: Warehouse, corpus: str, tokenizer: str, model_key: str, splits: list[str]
) -> bool:
    return all(wh.token_scores_path(corpus, tokenizer, model_key, s).is_file() for s in splits)
