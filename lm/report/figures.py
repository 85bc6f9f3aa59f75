"""The report's figures as PNGs: same data, same bytes (Agg rendering, no software or date
metadata)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmpipe.lm.fileio import atomic_path
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
    nn = test[test["family"] == "neural"]
    for model in in_model_order(nn["model"]):
        ax.axhline(
            nn[nn["model"] == model][hl.column].iloc[0],
            color=model_color(model),
            linestyle="--",
            label=f"{model} (neural)",
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


_DRAW = {"zipf": _draw_zipf, "ngram": _draw_ngram, "curves": _draw_curves}


def draw_figures(data: RunData, figs: list[Figure], out_dir: Path) -> list[Path]:
    """Write each figure as a PNG in ``out_dir``. Same data, same bytes: the PNG carries no
    software or date metadata, and Agg rendering is deterministic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    with plt.rc_context({"figure.dpi": 110, "font.size": 9}):
        for f in figs:
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            _DRAW[f.kind](ax, data, f)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
            fig.tight_layout()
            dest = out_dir / f.name
            with atomic_path(dest) as tmp:
                fig.savefig(tmp, format="png", metadata={"Software": None})
            plt.close(fig)
            paths.append(dest)
    return paths
