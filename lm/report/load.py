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
from lmpipe.lm.ngram.registry import SMOOTHING
from lmpipe.lm.warehouse import Warehouse, order_path

CorpusKey = tuple[str, str]  # (corpus, tokenizer)
NORMALIZED = {name for name, s in SMOOTHING.items() if s.normalized}
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
    # the tuning candidates' results (validation only) and training curves
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame)
    candidate_epochs: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the pruned n-gram models (``ngram.prune``): the size-against-perplexity curve
    pruned: pd.DataFrame = field(default_factory=pd.DataFrame)
    # training count of <unk> per corpus: 0 means no model could learn it (docs/design.md §3)
    unk_train_count: dict[CorpusKey, int] = field(default_factory=dict)
    # per corpus: the test split's token ids, per model key their natural-log probabilities
    # (the best n-gram model by validation and every neural model), and the vocabulary
    test_ids: dict[CorpusKey, np.ndarray] = field(default_factory=dict)
    test_scores: dict[CorpusKey, dict[str, np.ndarray]] = field(default_factory=dict)
    vocab: dict[CorpusKey, pd.DataFrame] = field(default_factory=dict)

    def keys(self) -> list[CorpusKey]:
        return [
            (str(c), str(t))
            for c, t in self.corpora[["corpus", "tokenizer"]].itertuples(index=False)
        ]


def _run_index(wh: Warehouse) -> pd.DataFrame:
    """run_id, experiment and started_at of every committed run, oldest first."""
    rows = [
        pq.read_table(
            wh.run_path("runs", r), columns=["run_id", "experiment", "kind", "started_at"]
        ).to_pylist()[0]
        for r in wh.committed_runs()
    ]
    if not rows:
        raise WarehouseError(f"no completed run in {wh.root}; run `lmpipe run` first")
    return pd.DataFrame(rows).sort_values(["started_at", "run_id"], ignore_index=True)


def newest_run(wh: Warehouse, kinds: tuple[str, ...] = ()) -> str:
    """The newest committed run (of one of ``kinds``, when given)."""
    runs = _run_index(wh)
    if kinds:
        runs = runs[runs["kind"].isin(kinds)]
        if runs.empty:
            raise WarehouseError(f"no completed {' or '.join(kinds)} run in {wh.root}")
    return str(runs["run_id"].iloc[-1])


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
    results, candidates, pruned = _by_role(_read(wh, "results", run_id))
    epochs = _read(wh, "epochs", run_id)
    tuned = epochs["model_key"].isin(set(candidates["model_key"])) if not epochs.empty else None
    data = RunData(
        run=run,
        corpora=_read(wh, "corpora", run_id),
        splits=_read(wh, "splits", run_id),
        results=results,
        epochs=epochs[~tuned] if tuned is not None else epochs,
        samples=_read(wh, "samples", run_id),
        previous=_by_role(_read(wh, "results", prev_id))[0] if prev_id else None,
        previous_run=_read(wh, "runs", prev_id).iloc[0].to_dict() if prev_id else None,
        candidates=candidates,
        pruned=pruned,
        candidate_epochs=epochs[tuned] if tuned is not None else epochs,
    )
    for c in data.corpora.itertuples(index=False):
        key = (str(c.corpus), str(c.tokenizer))
        vocab_path = wh.vocab_path(c.corpus, c.tokenizer, c.data_key)
        if vocab_path.exists():
            vocab = pq.read_table(vocab_path, columns=["token", "count"]).to_pandas()
            data.vocab[key] = vocab
            data.unk_train_count[key] = int(vocab["count"].iloc[0])  # <unk> has id 0
            data.zipf[key] = _zipf(
                wh.ngrams_dir(c.corpus, c.tokenizer, c.data_key),
                vocab["token"].tolist(),
                c.tokenizer,
            )
        _load_test_scores(wh, data, key)
    return data


def compared_models(results: pd.DataFrame, key: CorpusKey) -> tuple[Any, list[Any]]:
    """The rows the token-level comparison looks at: the best n-gram model by validation
    perplexity (the one the mixtures take) and every neural model, their test rows."""
    res = results[(results["corpus"] == key[0]) & (results["tokenizer"] == key[1])]
    if res.empty or "model_key" not in res:
        return None, []
    valid = res[(res["split"] == "valid") & (res["family"] == "ngram")]
    valid = valid[valid["method"].isin(NORMALIZED) & valid["perplexity"].notna()]
    test = res[res["split"] == "test"]
    ngram = None
    if not valid.empty:
        best_key = valid.sort_values(["perplexity", "model_key"]).iloc[0]["model_key"]
        ngram = (
            test[test["model_key"] == best_key].iloc[0]
            if (test["model_key"] == best_key).any()
            else None
        )
    neural = [r for _, r in test[test["family"] == "neural"].iterrows()]
    return ngram, neural


def _load_test_scores(wh: Warehouse, data: RunData, key: CorpusKey) -> None:
    from lmpipe.lm.warehouse.token_scores import read_token_scores

    ngram, neural = compared_models(data.results, key)
    if ngram is None or not neural:
        return
    scores: dict[str, np.ndarray] = {}
    for row in [ngram, *neural]:
        try:
            ids, s = read_token_scores(wh, key[0], key[1], str(row["model_key"]), "test")
        except WarehouseError:  # a run recorded before token scores existed
            return
        scores[str(row["model_key"])] = s.logprob
        data.test_ids[key] = ids
    data.test_scores[key] = scores


def _by_role(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A run's models, its tuning candidates and its pruned n-gram models (``role``; runs
    older than the column have only models)."""
    if results.empty or "role" not in results:
        return results, results.iloc[0:0], results.iloc[0:0]
    role = results["role"]
    final = ~role.isin(("candidate", "pruned"))
    return tuple(
        results[m].reset_index(drop=True) for m in (final, role == "candidate", role == "pruned")
    )


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
