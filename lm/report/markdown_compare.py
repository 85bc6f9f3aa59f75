"""The report's sections that compare the families of one corpus: the mixtures and what each
gains over its best component, where each family wins by token frequency, and quality against
cost. Pure functions of the data ``load`` read, like the rest of ``markdown``."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from lmpipe.lm.report.figures import Figure
from lmpipe.lm.report.load import CorpusKey, RunData
from lmpipe.lm.report.palette import in_model_order
from lmpipe.lm.report.select import Headline, label, of_corpus, ranked, settings_of
from lmpipe.lm.report.text import cell, code, count, fmt, table

TOP_TOKENS = 8  # positions listed where one family most out-predicts the other
CONTEXT = {"char": 24}  # tokens of context shown before such a position (default 8 words)


def weights(mix: Any) -> str:
    """A mixture's weights as its report shows them: ``mkn5 0.41, gru 0.59``."""
    parts = settings_of(mix).get("components", [])
    return "weights " + ", ".join(f"{p['model']} {p['weight']:.2f}" for p in parts)


def best_component(res: pd.DataFrame, mix: Any, column: str) -> Any:
    """The best of a mixture's components (by ``column`` on the same split)."""
    keys = [p["model_key"] for p in settings_of(mix).get("components", [])]
    rows = res[res["model_key"].isin(keys) & (res["split"] == mix["split"])]
    return None if rows.empty else rows.sort_values(column).iloc[0]


def mixture_section(data: RunData, key: CorpusKey, hl: Headline) -> list[str]:
    """Each mixture with its weights and what it gains over its best component."""
    res = of_corpus(data.results, key)
    mx = res[res["family"] == "mixture"]
    if mx.empty:
        return []
    rows = []
    for _, t in ranked(mx, hl.column).iterrows():
        v = mx[(mx["model_key"] == t["model_key"]) & (mx["split"] == "valid")]
        part = best_component(res, t, hl.column)
        rows.append(
            [
                label(t),
                cell(weights(t).removeprefix("weights ")),
                fmt(v.iloc[0][hl.column]) if not v.empty else "–",
                fmt(t[hl.column]),
                label(part) if part is not None else "–",
                f"{fmt(100 * (1 - t[hl.column] / part[hl.column]), 1)} %" if part is not None
                else "–",
                fmt(t["bits_per_byte"], 4),
            ]
        )  # fmt: skip
    valid_name = hl.name.replace("test", "valid")
    return [
        "### Mixtures",
        "",
        "Linear interpolation p = Σ λ_j p_j of the best n-gram model (by validation perplexity) "
        "with each neural model, and with all of them, on exactly the same tokens; the weights "
        "maximise the validation likelihood (EM, as SRILM's compute-best-mix), so test is not "
        "looked at. A mixture's gain over its best component is what the models know that the "
        "others do not.",
        "",
        *table(
            ["mixture", "weights", valid_name, hl.name, "best component", "gain", "test bits/byte"],
            rows,
        ),  # fmt: skip
    ]


def wins_section(data: RunData, key: CorpusKey, fp: str, figs: list[Figure]) -> list[str]:
    """Where each neural model beats the best n-gram model, by training frequency of the
    token, and the test positions where either most out-predicts the other."""
    from lmpipe.lm.report.compare import bucket_gains, frequency_buckets, top_positions
    from lmpipe.lm.report.load import compared_models

    scores = data.test_scores.get(key)
    ngram, neural = compared_models(data.results, key)
    if not scores or ngram is None or key not in data.vocab:
        return []
    ids = data.test_ids[key]
    counts = data.vocab[key]["count"].to_numpy()
    buckets = frequency_buckets(ids, counts)
    lp_ng = scores[str(ngram["model_key"])]
    header = ["model"] + [f"{b.name} ({_count_range(b.low, b.high)}; {count(int(b.mask.sum()))} "
                          "tokens)" for b in buckets]  # fmt: skip
    rows = []
    for r in sorted(neural, key=lambda r: in_model_order([x["model"] for x in neural]).index(
            r["model"])):  # fmt: skip
        gains = bucket_gains(buckets, lp_ng, scores[str(r["model_key"])])
        rows.append(
            [str(r["model"])] + [f"{g.mean_gain:+.3f} ({100 * g.b_wins:.0f} %)" for g in gains]
        )
    name = figure(figs, "wins", key)
    best = min(neural, key=lambda r: r["perplexity"])
    lp_nn = scores[str(best["model_key"])]
    out = [
        f"### Where each family wins ({label(ngram)} against the neural models)",
        "",
        "Mean difference ln p(neural) − ln p(n-gram) per test token, in nats (positive: the "
        "neural model predicts better), and in brackets the share of tokens it predicts better; "
        "tokens are grouped by how often they occur in training, in thirds of the test split.",
        "",
        *table(header, rows),
        f"![mean log-probability gain of each neural model over {label(ngram)} by training "
        f"frequency of the token]({fp}{name})",
        "",
    ]
    for title, a, b in (
        (f"{best['model']} most out-predicts {label(ngram)}", lp_ng, lp_nn),
        (f"{label(ngram)} most out-predicts {best['model']}", lp_nn, lp_ng),
    ):
        out += [f"Test positions where {title}:", ""]
        out += _positions_table(data, key, top_positions(a, b, TOP_TOKENS), lp_ng, lp_nn,
                                str(best["model"]), label(ngram))  # fmt: skip
    return out


def _count_range(low: int, high: int) -> str:
    return f"seen {count(low)}×" if low == high else f"seen {count(low)}–{count(high)}×"


def _positions_table(
    data: RunData,
    key: CorpusKey,
    positions: Any,
    lp_ng: Any,
    lp_nn: Any,
    nn_name: str,
    ng_name: str,
) -> list[str]:
    from lmpipe.lm.report.compare import context
    from lmpipe.lm.report.load import spell

    tokens = data.vocab[key]["token"].tolist()
    ids = data.test_ids[key]
    width = CONTEXT.get(key[1], 8)
    rows = []
    for pos in positions:
        before, at = context(ids, int(pos), width)
        shown = cell(spell(key[1], [tokens[i] for i in before]))
        rows.append(
            [count(int(pos)), f"…{shown}" if shown else "", code(spell(key[1], [tokens[at]])),
             _prob(lp_nn[pos]), _prob(lp_ng[pos])]
        )  # fmt: skip
    return table(["position", "context", "token", f"p {nn_name}", f"p {ng_name}"], rows)


def _prob(logprob: float) -> str:
    """A probability with three significant digits however small: 0.0790, 2.3e-05."""
    p = math.exp(logprob)
    return fmt(p, 4) if p >= 1e-3 or p == 0 else f"{p:.1e}"


def cost_section(
    data: RunData, key: CorpusKey, hl: Headline, fp: str, figs: list[Figure]
) -> list[str]:
    """Quality against cost: every model's test figure against its size and training time."""
    res = ranked(of_corpus(data.results, key), hl.column)
    if res.empty or res["parameters"].fillna(0).max() <= 0:
        return []
    size, time_ = figure(figs, "size", key), figure(figs, "time", key)
    return [
        "### At what cost",
        "",
        "Every model of the corpus by its size (n-grams stored, or parameters; a mixture counts "
        "its components') and by its training time (a mixture's: its components'). The "
        "frontier is the models that no other beats on both.",
        "",
        f"![{hl.name} of {key[0]} against model size]({fp}{size})",
        "",
        f"![{hl.name} of {key[0]} against training time]({fp}{time_})",
        "",
    ]


def figure(figs: list[Figure], kind: str, key: CorpusKey) -> str:
    fig = Figure(f"{kind}-{key[0]}-{key[1]}.png", kind, *key)
    figs.append(fig)
    return fig.name
