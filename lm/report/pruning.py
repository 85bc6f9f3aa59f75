"""Size against perplexity: the highest-order backoff models pruned at each threshold of
``ngram.prune`` (relative-entropy pruning, SRILM's ``ngram -prune``; docs/pruning.md)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lmpipe.lm.report.figures import Figure
from lmpipe.lm.report.load import CorpusKey, RunData
from lmpipe.lm.report.palette import in_model_order, model_color, model_marker
from lmpipe.lm.report.select import Headline, of_corpus, settings_of
from lmpipe.lm.report.text import count, fmt, table


def pruning_curves(data: RunData, key: CorpusKey, column: str) -> pd.DataFrame:
    """Test rows of each pruned method, its unpruned model first (threshold 0): method,
    threshold, n-grams, valid and test ``column``, test bits per byte; by method, threshold."""
    pruned = of_corpus(data.pruned, key)
    if pruned.empty:
        return pd.DataFrame()
    order = int(pruned["n"].max())
    finals = of_corpus(data.results, key)
    finals = finals[(finals["family"] == "ngram") & (finals["n"] == order)]
    rows = []
    for source, is_pruned in ((finals, False), (pruned, True)):
        for _, g in source.groupby("model_key"):
            method = str(g["method"].iloc[0])
            if not is_pruned and method not in set(pruned["method"]):
                continue
            by_split = {r["split"]: r for _, r in g.iterrows()}
            test, valid = by_split.get("test"), by_split.get("valid")
            if test is None:
                continue
            rows.append(
                {
                    "method": method,
                    "threshold": float(settings_of(test).get("prune", 0.0)) if is_pruned else 0.0,
                    "ngrams": int(test["parameters"]),
                    "valid": valid[column] if valid is not None else float("nan"),
                    "test": test[column],
                    "bits_per_byte": test["bits_per_byte"],
                    "n": order,
                }
            )
    df = pd.DataFrame(rows)
    rank = {m: i for i, m in enumerate(in_model_order(df["method"]))}
    return df.sort_values(
        ["method", "threshold"], key=lambda s: s.map(rank) if s.name == "method" else s
    ).reset_index(drop=True)


def pruning_section(
    data: RunData, key: CorpusKey, hl: Headline, fp: str, figs: list[Figure]
) -> list[str]:
    curves = pruning_curves(data, key, hl.column)
    if curves.empty:
        return []
    order = int(curves["n"].iloc[0])
    rows = []
    for method, g in curves.groupby("method", sort=False):
        base = g[g["threshold"] == 0.0]
        full_size = int(base["ngrams"].iloc[0]) if not base.empty else None
        full_ppl = float(base["test"].iloc[0]) if not base.empty else None
        for r in g.itertuples(index=False):
            rows.append(
                [
                    str(method),
                    "none" if r.threshold == 0 else f"{r.threshold:g}",
                    count(r.ngrams),
                    f"{100 * r.ngrams / full_size:.1f} %" if full_size else "–",
                    fmt(r.valid),
                    fmt(r.test),
                    fmt(r.bits_per_byte, 4),
                    f"{100 * (r.test / full_ppl - 1):+.2f} %" if full_ppl else "–",
                ]
            )
    name = f"prune-{key[0]}-{key[1]}.png"
    figs.append(Figure(name, "prune", *key))
    return [
        f"### Pruning: size against {hl.name} ({order}-grams)",
        "",
        "Relative-entropy pruning (Stolcke 1998, as SRILM's `ngram -prune T`) removes each "
        "n-gram whose removal changes the model's distribution by less than T (relative "
        "entropy), and renormalizes the backoff weights; a larger T keeps fewer n-grams.",
        "",
        *table(
            [
                "method",
                "threshold",
                "n-grams",
                "of unpruned",
                f"valid {hl.name.removeprefix('test ')}",
                hl.name,
                "test bits/byte",
                "change",
            ],
            rows,
        ),
        f"![{hl.name} of {key[0]} against the n-grams kept, one line per method]({fp}{name})",
        "",
    ]


def draw_pruning(ax: Any, data: RunData, f: Figure) -> None:
    from lmpipe.lm.report.select import headline

    hl = headline(data, (f.corpus, f.tokenizer))
    curves = pruning_curves(data, (f.corpus, f.tokenizer), hl.column)
    for method, g in curves.groupby("method", sort=False):
        ax.plot(
            g["ngrams"],
            g["test"],
            marker=model_marker(str(method)),
            color=model_color(str(method)),
            label=str(method),
        )
        for r in g.itertuples(index=False):
            ax.annotate(
                "none" if r.threshold == 0 else f"{r.threshold:g}",
                (r.ngrams, r.test),
                textcoords="offset points",
                xytext=(3, 3),
                fontsize=6,
            )
    ax.set_xscale("log")
    ax.set_xlabel("n-grams kept (log scale)")
    ax.set_ylabel(f"{hl.name} (per token)")
    order = int(curves["n"].iloc[0]) if not curves.empty else 0
    ax.set_title(f"{f.corpus} ({f.tokenizer}): pruned {order}-gram models, size against {hl.name}")
