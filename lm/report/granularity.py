"""One corpus under several tokenizers: which unit models it best (docs/tokenizers.md).

Bits per byte divide a split's total bits by its UTF-8 bytes, the same for every tokenizer, so
they compare granularities; the OOV rate and vocabulary size sit beside them because an OOV
position costs only ``<unk>``'s probability, not its spelling: a coarse unit with many OOV
positions looks better than it is."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lmpipe.lm.report.figures import Figure
from lmpipe.lm.report.load import RunData
from lmpipe.lm.report.palette import in_model_order
from lmpipe.lm.report.select import comparable, label, of_corpus
from lmpipe.lm.report.text import count, fmt, table
from lmpipe.lm.tokenize import DISCARDS

FAMILY_RANK = {"ngram": 0, "neural": 1, "mixture": 2}
# one colour per tokenizer (figures name tokenizers, not models)
TOKENIZER_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def tokenizers_of(data: RunData, corpus: str) -> list[str]:
    return [t for c, t in data.keys() if c == corpus]


def granularity_section(data: RunData, corpus: str, fp: str, figs: list[Figure]) -> list[str]:
    """Bits per byte of every model at each tokenization of ``corpus`` (test split), with each
    tokenization's vocabulary size and OOV rate; empty under one tokenizer."""
    toks = tokenizers_of(data, corpus)
    if len(toks) < 2:
        return []
    grid = bits_per_byte_grid(data, corpus)
    vocab, oov = [], []
    for t in toks:
        c = of_corpus(data.corpora, (corpus, t))
        s = of_corpus(data.splits, (corpus, t))
        s = s[s["split"] == "test"]
        vocab.append(count(int(c["vocab_size"].iloc[0])) if not c.empty else "–")
        oov.append(f"{100 * s['oov_rate'].iloc[0]:.2f} %" if not s.empty else "–")
    rows = [["*vocabulary*", *vocab], ["*test OOV rate*", *oov]]
    for model, values in grid.iterrows():
        best = values.min(skipna=True)
        rows.append(
            [str(model)]
            + [
                "–" if pd.isna(v) else (f"**{fmt(v, 4)}**" if v == best else fmt(v, 4))
                for v in values
            ]
        )
    winner = _best_unit(grid)
    lossy = "; ".join(f"{t} drops {DISCARDS[t]}" for t in toks if t in DISCARDS)
    if lossy:
        lossy = (
            f" Not every unit keeps the whole text ({lossy}): its bits per byte are over bytes "
            "it does not model, a lower figure for less work."
        )
    name = f"{fp}granularity-{corpus}.png"
    figs.append(Figure(name, "granularity", corpus, ""))
    return [
        f"## {corpus}: granularity ({', '.join(toks)})",
        "",
        f"Test bits per byte of every model at each tokenization of {corpus} (bold: the best unit "
        f"for that model). {winner} An OOV position costs only `<unk>`'s probability, not the "
        f"spelling of the unit: read a tokenization with a high OOV rate with that in mind.{lossy}",
        "",
        *table(["model", *toks], rows),
        f"![Bits per byte of {corpus} by tokenization]({name})",
        "",
    ]


def bits_per_byte_grid(data: RunData, corpus: str) -> pd.DataFrame:
    """Test bits per byte: one row per model (table order: n-gram methods by order, then
    neural, then mixtures), one column per tokenizer; NaN where a model was not trained."""
    toks = tokenizers_of(data, corpus)
    res = comparable(data.results[data.results["corpus"] == corpus])
    res = res[(res["split"] == "test") & res["bits_per_byte"].notna()]
    if res.empty:
        return pd.DataFrame(columns=toks)
    res = res.assign(label=[label(r) for _, r in res.iterrows()])
    grid = res.pivot_table(index="label", columns="tokenizer", values="bits_per_byte")
    order = _model_order(res)
    return grid.reindex(index=order, columns=toks)


def _model_order(res: pd.DataFrame) -> list[str]:
    models = in_model_order(res["model"])
    rank = {m: i for i, m in enumerate(models)}
    rows = res.drop_duplicates("label")
    keyed = sorted(
        rows.itertuples(index=False),
        key=lambda r: (FAMILY_RANK.get(r.family, 3), rank[r.model], _n(r.n)),
    )
    return [r.label for r in keyed]


def _n(n: Any) -> int:
    return -1 if n is None or pd.isna(n) else int(n)


def _best_unit(grid: pd.DataFrame) -> str:
    if grid.empty or grid.isna().all().all():
        return ""
    model, tok = grid.stack().idxmin()
    return f"The lowest is {model} on {tok} units ({fmt(grid.loc[model, tok], 4)} bits per byte)."


def draw_granularity(ax: Any, data: RunData, f: Figure) -> None:
    """One line per tokenizer across the models (table order): where the lines cross, a unit
    suits one kind of model better than another."""
    grid = bits_per_byte_grid(data, f.corpus)
    x = range(len(grid.index))
    for i, tok in enumerate(grid.columns):
        ax.plot(
            x,
            grid[tok],
            marker="os^Dv<>"[i % 7],
            color=TOKENIZER_COLORS[i % len(TOKENIZER_COLORS)],
            label=tok,
        )
    ax.set_xticks(list(x))
    ax.set_xticklabels(list(grid.index), rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("test bits per byte (lower is better)")
    ax.set_title(f"{f.corpus}: bits per byte of each model at each tokenization")
