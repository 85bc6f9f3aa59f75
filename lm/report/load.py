"""Everything a report shows, read from the warehouse: one run's rows, the previous run of its
experiment (for deltas) and each corpus's training n-gram counts (for the Zipf section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lmpipe.lm.errors import WarehouseError
from lmpipe.lm.warehouse import Warehouse, order_path

CorpusKey = tuple[str, str]  # (corpus, tokenizer)
TOP_NGRAMS = 10


@dataclass(frozen=True)
class Zipf:
    """Training n-gram counts of one corpus: every count of each order, most frequent first
    (for the plot), and the most frequent n-grams spelled out (for the table)."""

    counts: dict[int, np.ndarray]
    top: dict[int, list[tuple[str, int]]]


@dataclass
class RunData:
    """Everything a report shows, as read from the warehouse (one run's rows and the rest)."""

    run: dict[str, Any]
    corpora: pd.DataFrame
    splits: pd.DataFrame
    results: pd.DataFrame
    epochs: pd.DataFrame
    samples: pd.DataFrame
    previous: pd.DataFrame | None  # results of the previous run of the experiment
    previous_run: dict[str, Any] | None  # and its runs row
    zipf: dict[CorpusKey, Zipf] = field(default_factory=dict)
    # training count of <unk> per corpus: 0 means no model could learn it (docs/design.md §3)
    unk_train_count: dict[CorpusKey, int] = field(default_factory=dict)

    def keys(self) -> list[CorpusKey]:
        return [
            (str(c), str(t))
            for c, t in self.corpora[["corpus", "tokenizer"]].itertuples(index=False)
        ]


def _run_index(wh: Warehouse) -> pd.DataFrame:
    """run_id, experiment and started_at of every committed run, oldest first."""
    rows = [
        pq.read_table(
            wh.run_path("runs", r), columns=["run_id", "experiment", "started_at"]
        ).to_pylist()[0]
        for r in wh.committed_runs()
    ]
    if not rows:
        raise WarehouseError(f"no completed run in {wh.root}; run `lmpipe run` first")
    return pd.DataFrame(rows).sort_values(["started_at", "run_id"], ignore_index=True)


def newest_run(wh: Warehouse) -> str:
    return str(_run_index(wh)["run_id"].iloc[-1])


def newest_run_of(wh: Warehouse, experiment: str) -> str | None:
    runs = _run_index(wh)
    runs = runs[runs["experiment"] == experiment]
    return str(runs["run_id"].iloc[-1]) if not runs.empty else None


def _previous_run(wh: Warehouse, run: dict[str, Any]) -> str | None:
    runs = _run_index(wh)
    earlier = runs[
        (runs["experiment"] == run["experiment"]) & (runs["started_at"] < run["started_at"])
    ]
    return str(earlier["run_id"].iloc[-1]) if not earlier.empty else None


def _read(wh: Warehouse, dataset: str, run_id: str) -> pd.DataFrame:
    p = wh.run_path(dataset, run_id)
    return pq.read_table(p).to_pandas() if p.exists() else pd.DataFrame()


def load_run(wh: Warehouse, run_id: str) -> RunData:
    if run_id not in wh.committed_runs():
        raise WarehouseError(
            f'run {run_id!r} is not a completed run in {wh.root}; see `lmpipe sql "select run_id '
            'from runs"`'
        )
    run = _read(wh, "runs", run_id).iloc[0].to_dict()
    prev_id = _previous_run(wh, run)
    data = RunData(
        run=run,
        corpora=_read(wh, "corpora", run_id),
        splits=_read(wh, "splits", run_id),
        results=_read(wh, "results", run_id),
        epochs=_read(wh, "epochs", run_id),
        samples=_read(wh, "samples", run_id),
        previous=_read(wh, "results", prev_id) if prev_id else None,
        previous_run=_read(wh, "runs", prev_id).iloc[0].to_dict() if prev_id else None,
    )
    for c in data.corpora.itertuples(index=False):
        key = (str(c.corpus), str(c.tokenizer))
        vocab_path = wh.vocab_path(c.corpus, c.tokenizer, c.data_key)
        if vocab_path.exists():
            vocab = pq.read_table(vocab_path, columns=["token", "count"]).to_pandas()
            data.unk_train_count[key] = int(vocab["count"].iloc[0])  # <unk> has id 0
            data.zipf[key] = _zipf(
                wh.ngrams_dir(c.corpus, c.tokenizer, c.data_key),
                vocab["token"].tolist(),
                c.tokenizer,
            )
    return data


def _zipf(ngrams_dir: Path, tokens: list[str], tokenizer: str) -> Zipf:
    """Orders 1..3 of the stored training counts (an order not counted is left out)."""
    counts: dict[int, np.ndarray] = {}
    top: dict[int, list[tuple[str, int]]] = {}
    for n in (1, 2, 3):
        p = order_path(ngrams_dir, n)
        if not p.exists():
            continue
        ids = [f"w{i}" for i in range(1, n + 1)]
        df = pq.read_table(p, columns=[*ids, "count"]).to_pandas()
        # ties broken by token ids so that the table is the same on every rewrite
        df = df.sort_values(["count", *ids], ascending=[False] + [True] * n, ignore_index=True)
        counts[n] = df["count"].to_numpy()
        top[n] = [
            (spell(tokenizer, [tokens[int(i)] for i in row[:-1]]), int(row[-1]))
            for row in df.head(TOP_NGRAMS)[[*ids, "count"]].itertuples(index=False)
        ]
    return Zipf(counts, top)


def spell(tokenizer: str, toks: list[str]) -> str:
    """An n-gram as readers see it: characters joined (a space shown as ␣), words spaced."""
    if tokenizer == "char":
        return "".join(t.replace(" ", "␣") for t in toks)
    return " ".join(toks)
