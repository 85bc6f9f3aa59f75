"""Counting at scale: windows cut in batches and shards, spilling DuckDB, and the sharded flow on a
2-worker Dask cluster. Every path must give exactly the single-process counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmpipe.lm.ngram import count_ngrams, stream_table
from lmpipe.lm.ngram import windows as windows_mod
from lmpipe.lm.ngram.counting import count_shard, merge_shards, shard_ranges
from lmpipe.lm.ngram.windows import ngram_windows
from lmpipe.lm.vocab import BOS, EOS

ORDER = 5


def random_stream(seed: int, sentences: int, vocab: int = 40) -> np.ndarray:
    """Sentences of 0..11 words (an empty line is just ``</s>``), ids from the first word id."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for length in rng.integers(0, 12, sentences):
        out.extend(rng.integers(4, 4 + vocab, length).tolist())
        out.append(EOS)
    return np.asarray(out, dtype=np.int32)


def reference(stream: np.ndarray, n: int) -> Counter[tuple[int, ...]]:
    """Every window of ``<s> w1 .. wm </s>``, one ``<s>`` per sentence (the counts of
    docs/reference-figures.md)."""
    out: Counter[tuple[int, ...]] = Counter()
    sent = [BOS]
    if n == 1:
        out[(BOS,)] = int((stream == EOS).sum())
    for tok in stream.tolist():
        sent.append(tok)
        if len(sent) >= n:
            out[tuple(sent[-n:])] += 1
        if tok == EOS:
            sent = [BOS]
    return out


def as_counter(batches: list[pa.RecordBatch] | pa.Table, n: int) -> Counter[tuple[int, ...]]:
    table = pa.Table.from_batches(batches) if isinstance(batches, list) else batches
    grams = np.column_stack([table[f"w{k}"].to_numpy() for k in range(1, n + 1)])
    counts = table["count"].to_numpy() if "count" in table.column_names else np.ones(len(grams))
    out: Counter[tuple[int, ...]] = Counter()
    for g, c in zip(map(tuple, grams.tolist()), counts.tolist(), strict=True):
        out[g] += int(c)
    return out


def sorted_counts(path: Path, n: int) -> pa.Table:
    keys = [(f"w{k}", "ascending") for k in range(1, n + 1)]
    return pq.read_table(path).sort_by(keys)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A token file of ~12k ids in row groups of 997 rows: shards and batches cut sentences."""
    path = tmp_path_factory.mktemp("scale") / "tokens.parquet"
    pq.write_table(stream_table(random_stream(7, 2000)), path, row_group_size=997)
    return path


@pytest.mark.parametrize("batch_rows", [1, 5, 64])
def test_windows_cut_anywhere_are_exact(monkeypatch: pytest.MonkeyPatch, batch_rows: int) -> None:
    monkeypatch.setattr(windows_mod, "BATCH_ROWS", batch_rows)
    stream = random_stream(1, 40)
    table = stream_table(stream)
    rng = np.random.default_rng(batch_rows)
    for n in range(1, 8):
        cuts = sorted({0, stream.size, *rng.integers(0, stream.size, 6).tolist()})
        batches = [
            b
            for a, z in zip(cuts[:-1], cuts[1:], strict=True)
            for b in ngram_windows(table, n, a, z)
        ]
        assert as_counter(batches, n) == reference(stream, n)


def test_shards_merge_to_the_whole_count(tmp_path: Path, tokens: Path) -> None:
    whole = count_ngrams(tokens, ORDER, tmp_path / "whole", prune=(0, 1))
    stream = pq.read_table(tokens, columns=["id"])["id"].to_numpy()
    ranges = shard_ranges(tokens, 3)
    assert ranges[0][0] == 0 and ranges[-1][1] == stream.size and len(ranges) == 3
    for o in whole:
        parts = [
            count_shard(tokens, o.n, a, b, tmp_path / "parts" / f"{o.n}-{i}.parquet")
            for i, (a, b) in enumerate(ranges)
        ]
        merged = merge_shards(
            parts, o.n, tmp_path / "merged" / f"{o.n}.parquet", prune=int(o.n > 1)
        )
        assert (merged.distinct, merged.kept, merged.tokens, merged.count_of_counts) == (
            o.distinct,
            o.kept,
            o.tokens,
            o.count_of_counts,
        )
        assert sorted_counts(merged.path, o.n).equals(sorted_counts(o.path, o.n))
    assert as_counter(pq.read_table(whole[0].path), 1) == reference(stream, 1)  # prune 0 keeps all
    pruned = {g: c for g, c in reference(stream, 3).items() if c > 1}
    assert as_counter(pq.read_table(whole[2].path), 3) == pruned


def test_spilling_connection_counts_alike(tmp_path: Path, tokens: Path) -> None:
    spill = tmp_path / "spill"
    low = count_ngrams(tokens, 3, tmp_path / "low", memory_limit=64 << 20, spill_dir=spill)
    default = count_ngrams(tokens, 3, tmp_path / "default")
    assert spill.is_dir()
    for a, b in zip(low, default, strict=True):
        assert sorted_counts(a.path, a.n).equals(sorted_counts(b.path, b.n))


@pytest.mark.flow
def test_sharded_flow_on_dask_equals_single_process(
    prefect_harness: None, tmp_path: Path, tokens: Path
) -> None:
    from prefect_dask import DaskTaskRunner

    from lmpipe.flows.counting import count_ngrams_sharded

    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "dashboard_address": None}
    )
    out = tmp_path / "sharded"
    got = count_ngrams_sharded.with_options(task_runner=runner)(
        str(tokens), ORDER, str(out), shards=4, memory_limit=256 << 20
    )
    single = count_ngrams(tokens, ORDER, tmp_path / "single")
    assert [g["n"] for g in got] == list(range(1, ORDER + 1))
    for g, s in zip(got, single, strict=True):
        assert (g["distinct"], g["tokens"], tuple(g["count_of_counts"])) == (
            s.distinct,
            s.tokens,
            s.count_of_counts,
        )
        assert sorted_counts(Path(g["path"]), s.n).equals(sorted_counts(s.path, s.n))
    assert not list(out.glob(".shards-*")), "shard files are removed after the merge"
