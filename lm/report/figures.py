"""The report's figures as PNGs: same data, same bytes (Agg rendering, no software or date
metadata).

Drawing is most of a report's cost (12 figures of the default run: 3.3 s on 2 cores), and an
unchanged nightly re-run draws the same figures again. So each report folder keeps a manifest
(``figures.json``: each figure's name and the digest of what it is drawn from), and a figure
whose digest equals the one in the previous run's folder is copied from there, not drawn.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import shutil
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmpipe.lm.fileio import atomic_path, atomic_write_text, sha256_text
from lmpipe.lm.report.load import RunData
from lmpipe.lm.report.palette import (
    ORDER_STYLES,
    ZIPF_POINTS,
    in_model_order,
    model_color,
    model_marker,
)
from lmpipe.lm.report.select import headline, of_corpus, ranked
from lmpipe.lm.report.text import count
from lmpipe.lm.version import code_version

FIGURE_MANIFEST = "figures.json"


@dataclass(frozen=True)
class Figure:
    """A PNG that the report links: which plot of which corpus, under which file name."""

    name: str
    kind: str
    corpus: str
    tokenizer: str


def _draw_zipf(ax: Any, data: RunData, f: Figure) -> None:
    for n, counts in data.zipf[(f.corpus, f.tokenizer)].counts.items():
        # a few hundred log-spaced ranks draw the same curve as a million n-grams, much faster
        ranks = np.unique(np.geomspace(1, len(counts), ZIPF_POINTS).astype(np.int64))
        colour, style = ORDER_STYLES[n]
        ax.plot(
            ranks,
            counts[ranks - 1],
            color=colour,
            linestyle=style,
            label=f"{n}-grams ({count(len(counts))} distinct)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rank (1 = most frequent, log scale)")
    ax.set_ylabel("count in the training split (log scale)")
    ax.set_title(f"{f.corpus} ({f.tokenizer}): Zipf's law, orders 1-3")


def _draw_ngram(ax: Any, data: RunData, f: Figure) -> None:
    key = (f.corpus, f.tokenizer)
    hl = headline(data, key)
    test = ranked(of_corpus(data.results, key), hl.column)
    ng = test[test["family"] == "ngram"]
    for m in in_model_order(ng["method"]):
        d = ng[ng["method"] == m].sort_values("n")
        ax.plot(d["n"], d[hl.column], marker=model_marker(m), color=model_color(m), label=m)
    for family, style in (("neural", "--"), ("mixture", "-.")):
        rows = test[test["family"] == family]
        for model in in_model_order(rows["model"]):
            ax.axhline(
                rows[rows["model"] == model][hl.column].iloc[0],
                color=model_color(model),
                linestyle=style,
                label=f"{model} ({family})",
            )
    _perplexity_axis(ax, test[hl.column], hl.name)
    ax.set_xlabel("n-gram order n")
    ax.set_title(f"{f.corpus} ({f.tokenizer}): {hl.name} against n")
    ax.set_xticks(sorted({int(n) for n in ng["n"]}))


def _perplexity_axis(ax: Any, values: pd.Series, name: str) -> None:
    """Label the y axis; make it logarithmic when the perplexities span a decade or more, with
    ticks labelled 200, 300, 500 rather than 2×10²: perplexities read as plain numbers."""
    from matplotlib.ticker import LogFormatter

    finite = values.replace([math.inf, -math.inf], np.nan).dropna()
    log = not finite.empty and finite.max() >= 10 * finite.min()
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.5)))
    ax.set_ylabel(f"{name} (per token{', log scale' if log else ''})")


def _draw_curves(ax: Any, data: RunData, f: Figure) -> None:
    ep = of_corpus(data.epochs, (f.corpus, f.tokenizer))
    for model in in_model_order(ep["model"]):
        d = ep[ep["model"] == model].sort_values("epoch")
        colour, marker = model_color(model), model_marker(model)
        ax.plot(
            d["epoch"], d["train_perplexity"], color=colour, linestyle=":", label=f"{model} train"
        )
        ax.plot(
            d["epoch"], d["valid_perplexity"], color=colour, marker=marker, label=f"{model} valid"
        )
    _perplexity_axis(ax, pd.concat([ep["train_perplexity"], ep["valid_perplexity"]]), "perplexity")
    ax.set_xlabel("epoch")
    ax.set_title(f"{f.corpus} ({f.tokenizer}): learning curves (dotted: train, solid: valid)")
    ax.set_xticks(sorted({int(e) for e in ep["epoch"]}))


def _draw_wins(ax: Any, data: RunData, f: Figure) -> None:
    from lmpipe.lm.report.compare import bucket_gains, frequency_buckets
    from lmpipe.lm.report.load import compared_models

    key = (f.corpus, f.tokenizer)
    ngram, neural = compared_models(data.results, key)
    scores = data.test_scores[key]
    buckets = frequency_buckets(data.test_ids[key], data.vocab[key]["count"].to_numpy())
    lp_ng = scores[str(ngram["model_key"])]
    models = in_model_order([r["model"] for r in neural])
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        row = next(r for r in neural if r["model"] == model)
        gains = bucket_gains(buckets, lp_ng, scores[str(row["model_key"])])
        ax.bar(
            np.arange(len(buckets)) + (i - (len(models) - 1) / 2) * width,
            [g.mean_gain for g in gains],
            width,
            color=model_color(model),
            label=model,
        )
    ax.axhline(0.0, color="#333333", linewidth=0.8)
    ax.set_xticks(np.arange(len(buckets)))
    ax.set_xticklabels([f"{b.name}\n(seen {count(b.low)}–{count(b.high)}×)" for b in buckets])
    ax.set_xlabel("test tokens by their count in training (in thirds)")
    ax.set_ylabel(f"mean ln p(neural) − ln p({ngram['method']} n={int(ngram['n'])}), nats")
    ax.set_title(f"{f.corpus} ({f.tokenizer}): where the neural models win (above 0)")


def _draw_cost(ax: Any, data: RunData, f: Figure) -> None:
    """Test figure against size or training time, log x, the frontier as a step line."""
    key = (f.corpus, f.tokenizer)
    hl = headline(data, key)
    column, xlabel = {
        "size": ("parameters", "model size: n-grams stored or parameters (log scale)"),
        "time": ("train_seconds", "training time in seconds (log scale)"),
    }[f.kind]
    test = ranked(of_corpus(data.results, key), hl.column)
    test = test[(test[column].fillna(0) > 0) & np.isfinite(test[hl.column])]
    markers = {"ngram": "o", "neural": "s", "mixture": "D"}
    for family, rows in test.groupby("family", sort=False):
        for model in in_model_order(rows["model"]):
            d = rows[rows["model"] == model]
            ax.scatter(d[column], d[hl.column], color=model_color(model),
                       marker=markers.get(str(family), "o"), label=str(model), s=22)  # fmt: skip
    pts = test.sort_values([column, hl.column])
    frontier_x, frontier_y, best = [], [], math.inf
    for x, y in zip(pts[column], pts[hl.column], strict=True):
        if y < best:
            best = y
            frontier_x.append(x)
            frontier_y.append(y)
    ax.step(frontier_x, frontier_y, where="post", color="#888888", linewidth=0.8,
            label="frontier")  # fmt: skip
    ax.set_xscale("log")
    _perplexity_axis(ax, test[hl.column], hl.name)
    ax.set_xlabel(xlabel)
    ax.set_title(f"{f.corpus} ({f.tokenizer}): {hl.name} against {f.kind}")


_DRAW = {
    "zipf": _draw_zipf,
    "ngram": _draw_ngram,
    "curves": _draw_curves,
    "wins": _draw_wins,
    "size": _draw_cost,
    "time": _draw_cost,
}


def draw_figures(
    data: RunData, figs: list[Figure], out_dir: Path, reuse_from: Path | None = None
) -> list[Path]:
    """Write each figure as a PNG in ``out_dir``, and the manifest of their digests. Same data,
    same bytes: the PNG carries no software or date metadata, and Agg rendering is
    deterministic; so a figure whose digest is in ``reuse_from``'s manifest (the previous run's
    report folder) is copied from there."""
    inputs = _inputs_digest(data)
    earlier = _read_manifest(reuse_from) if reuse_from is not None else {}
    manifest: dict[str, str] = {}
    paths = []
    to_draw = []
    for f in figs:
        digest = manifest[f.name] = sha256_text(inputs, json.dumps(asdict(f), sort_keys=True))
        dest = out_dir / f.name
        source = reuse_from / f.name if reuse_from is not None else None
        if source is not None and earlier.get(f.name) == digest and source.is_file():
            with atomic_path(dest) as tmp:
                shutil.copyfile(source, tmp)
        else:
            to_draw.append(f)
        paths.append(dest)
    if to_draw:
        _draw_all(data, to_draw, out_dir)
    atomic_write_text(out_dir / FIGURE_MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return paths


def _draw_all(data: RunData, figs: list[Figure], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # these build on this module
    from lmpipe.lm.report.granularity import draw_granularity
    from lmpipe.lm.report.pruning import draw_pruning

    draw = {**_DRAW, "granularity": draw_granularity, "prune": draw_pruning}
    with plt.rc_context({"figure.dpi": 110, "font.size": 9}):
        for f in figs:
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            draw[f.kind](ax, data, f)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
            fig.tight_layout()
            with atomic_path(out_dir / f.name) as tmp:
                fig.savefig(tmp, format="png", metadata={"Software": None})
            plt.close(fig)


# What the drawers read of a RunData (``_DRAW``, granularity, pruning and the ``select`` helpers
# they call): a figure's digest covers these, lmpipe's code and matplotlib's version. Not the
# run's identity, its previous run or its samples, which no figure shows.
_FIGURE_INPUTS = (
    "corpora", "splits", "results", "epochs", "pruned", "zipf", "unk_train_count",
    "test_ids", "test_scores", "vocab",
)  # fmt: skip


def _inputs_digest(data: RunData) -> str:
    h = hashlib.sha256()
    h.update(f"{code_version()}\0{version('matplotlib')}\0".encode())
    for name in _FIGURE_INPUTS:
        h.update(name.encode() + b"\0" + _value_bytes(getattr(data, name)))
    return h.hexdigest()


def _value_bytes(v: Any) -> bytes:
    """Bytes that change when ``v`` does (a frame without its run_id: re-used rows of a new
    run are the same data)."""
    if isinstance(v, pd.DataFrame):
        v = v.drop(columns="run_id", errors="ignore")
        head = repr((list(v.columns), [str(t) for t in v.dtypes])).encode()
        try:
            return head + pd.util.hash_pandas_object(v, index=True).to_numpy().tobytes()
        except TypeError:  # a column of lists or dicts
            return head + pickle.dumps(v.to_dict("split"))
    if isinstance(v, np.ndarray):
        return repr((v.dtype.str, v.shape)).encode() + np.ascontiguousarray(v).tobytes()
    if isinstance(v, dict):
        return b"".join(repr(k).encode() + b"\0" + _value_bytes(v[k]) for k in sorted(v, key=repr))
    if hasattr(v, "__dataclass_fields__"):
        return _value_bytes(vars(v))
    if isinstance(v, list | tuple):
        return b"".join(_value_bytes(x) + b"\0" for x in v)
    return repr(v).encode()


def _read_manifest(folder: Path) -> dict[str, str]:
    try:
        loaded = json.loads((folder / FIGURE_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
