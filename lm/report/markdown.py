"""The report's Markdown: a pure function of the data ``load`` read, returning the text and the
figures it links. Nothing here reads the clock, so re-rendering a run gives the same bytes.
Every number printed is a warehouse value or a ratio of two."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from lmpipe.lm.report.commands import train_command
from lmpipe.lm.report.figures import Figure
from lmpipe.lm.report.granularity import granularity_section
from lmpipe.lm.report.load import TOP_NGRAMS, CorpusKey, RunData
from lmpipe.lm.report.markdown_compare import (
    best_component,
    cost_section,
    figure,
    mixture_section,
    weights,
    wins_section,
)
from lmpipe.lm.report.palette import UNNORMALISED, in_model_order
from lmpipe.lm.report.pruning import pruning_section
from lmpipe.lm.report.select import (
    Headline,
    as_n,
    best_of,
    comparable,
    headline,
    label,
    of_corpus,
    ranked,
    settings_of,
    split_has_oov,
)
from lmpipe.lm.report.text import cell, code, count, fmt, table

RESERVED_TOKENS = 4  # <unk>, <s>, </s>, <pad> (lm.vocab.RESERVED)
FAMILY_ORDER = {"ngram": 0, "neural": 1, "mixture": 2}


def render(data: RunData, fig_prefix: str = "") -> tuple[str, list[Figure]]:
    """The report's Markdown and the figures it links (``fig_prefix`` + name)."""
    figs: list[Figure] = []
    out = _header(data)
    if len(data.keys()) > 1:
        out += _cross_corpus(data)
    for corpus in dict.fromkeys(c for c, _ in data.keys()):
        out += granularity_section(data, corpus, fig_prefix, figs)
    for key in data.keys():
        out += _corpus_section(data, key, fig_prefix, figs)
    out += _repro_section(data)
    return "\n".join(out).rstrip() + "\n", figs


def _header(data: RunData) -> list[str]:
    run = data.run
    started = pd.Timestamp(run["started_at"]).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"# Perplexity report: {run['experiment']}",
        "",
        f"Run `{run['run_id']}`, started {started}, {fmt(run['wall_seconds'], 0)} s wall. "
        "Perplexity is exp of the mean negative log-likelihood (natural log) per token over every "
        "token of the split, `</s>` included; bits per byte divide the total bits by "
        "the split's UTF-8 bytes, so character and word models compare fairly. Lower is better.",
        "",
    ]


def _cross_corpus(data: RunData) -> list[str]:
    """Corpora side by side by bits per byte, the one figure comparable across tokenizations."""
    ranked = []
    for key in data.keys():
        res = of_corpus(data.results, key)
        test = of_corpus(data.splits, key)
        test = test[test["split"] == "test"]
        families = ("ngram", "neural", "mixture")
        best = [best_of(res, "bits_per_byte", family) for family in families]
        corpora = of_corpus(data.corpora, key)
        vocab = count(int(corpora["vocab_size"].iloc[0])) if not corpora.empty else "–"
        row = [key[0], key[1], vocab,
               f"{100 * test['oov_rate'].iloc[0]:.2f} %" if not test.empty else "–"]  # fmt: skip
        for b in best:
            row += [label(b), fmt(b["bits_per_byte"], 4)] if b is not None else ["–", "–"]
        ranked.append(
            (min([b["bits_per_byte"] for b in best if b is not None], default=math.inf), row)
        )
    ranked.sort(key=lambda r: r[0])
    return [
        "## Across corpora (test split, by bits per byte)",
        "",
        "Bits per byte count every token, OOV included (so a coarser unit with more `<unk>` "
        "looks better than it is: read it with the OOV rate); lowest first. One corpus under "
        "several tokenizers is a comparison of granularities.",
        "",
        *table(
            [
                "corpus",
                "tokenizer",
                "vocabulary",
                "test OOV rate",
                "best n-gram",
                "n-gram bits/byte",
                "best neural",
                "neural bits/byte",
                "best mixture",
                "mixture bits/byte",
            ],
            [row for _, row in ranked],
        ),
    ]


def _corpus_section(data: RunData, key: CorpusKey, fp: str, figs: list[Figure]) -> list[str]:
    hl = headline(data, key)
    out = [f"## {key[0]} ({key[1]} tokens)", "", *_summary(data, key, hl), hl.note, ""]
    out += _corpus_stats(data, key)
    out += _zipf_section(data, key, fp, figs)
    out += _ngram_section(data, key, hl, fp, figs)
    out += pruning_section(data, key, hl, fp, figs)
    out += _neural_section(data, key, hl, fp, figs)
    out += _tune_section(data, key)
    out += mixture_section(data, key, hl)
    out += wins_section(data, key, fp, figs)
    out += cost_section(data, key, hl, fp, figs)
    out += _samples_section(data, key)
    out += _delta_section(data, key, hl)
    return out


def _summary(data: RunData, key: CorpusKey, hl: Headline) -> list[str]:
    res = of_corpus(data.results, key)
    single = res[res["family"] != "mixture"]
    best = best_of(single, hl.column)
    if best is None:
        return ["No comparable model was evaluated on the test split.", ""]
    line = (
        f"**Best model: {label(best)}**, {hl.name} {fmt(best[hl.column])} "
        f"({fmt(best['bits_per_byte'], 4)} bits per byte over all tokens)"
    )
    rival = best_of(single, hl.column, "neural" if best["family"] == "ngram" else "ngram")
    if rival is not None:
        ratio = 100 * (rival[hl.column] / best[hl.column] - 1)
        line += (
            f"; the best {'neural' if best['family'] == 'ngram' else 'n-gram'} model, "
            f"{label(rival)}, has {fmt(rival[hl.column])}, {fmt(ratio, 1)} % higher "
            f"({fmt(rival['bits_per_byte'], 4)} bits per byte)"
        )
    out = [line + ".", ""]
    mix = best_of(res, hl.column, "mixture")
    if mix is not None:
        part = best_component(res, mix, hl.column)
        gain = ""
        if part is not None:
            pct = 100 * (1 - mix[hl.column] / part[hl.column])
            gain = (
                f", {fmt(pct, 1)} % below its best component, {label(part)}"
                if round(pct, 1) > 0
                else f", no better than its best component, {label(part)}: the others add "
                "nothing it does not know"
            )
        out += [
            f"**Best mixture: {label(mix)}** ({weights(mix)}, fit on validation), "
            f"{hl.name} {fmt(mix[hl.column])}{gain}.",
            "",
        ]
    return out


def _corpus_stats(data: RunData, key: CorpusKey) -> list[str]:
    sp = of_corpus(data.splits, key)
    rows = [
        [
            s.split,
            count(s.lines),
            count(s.tokens),
            count(s.types),
            count(s.oov),
            f"{100 * s.oov_rate:.2f} %",
            count(s.bytes),
        ]
        for s in sp.itertuples(index=False)
    ]
    c = of_corpus(data.corpora, key).iloc[0]
    return [
        "### Corpus",
        "",
        *table(
            ["split", "lines", "tokens (with `</s>`)", "types", "OOV tokens", "OOV rate", "bytes"],
            rows,
        ),
        f"Vocabulary: {count(c['vocab_size'])} entries ({RESERVED_TOKENS} reserved), from the "
        f"training split with min_freq {int(c['min_freq'])}; `<unk>` occurs "
        f"{count(data.unk_train_count.get(key, 0))} times in training. "
        f"Source {code(str(c['origin']))}, "
        f"sha256 `{str(c['sha256'])[:16]}…`.",
        "",
    ]


def _zipf_section(data: RunData, key: CorpusKey, fp: str, figs: list[Figure]) -> list[str]:
    z = data.zipf.get(key)
    if z is None or not z.top:
        return []
    name = figure(figs, "zipf", key)
    rows = [
        [str(i + 1)]
        + [
            f"{code(top[i][0])} ({count(top[i][1])})" if i < len(top) else ""
            for top in z.top.values()
        ]
        for i in range(TOP_NGRAMS)
    ]
    return [
        "### Zipf's law and the most frequent n-grams",
        "",
        f"![Zipf plot of {key[0]}: count against rank, orders 1-3, log-log]({fp}{name})",
        "",
        "Most frequent n-grams of the training split (count), sentence markers included:",
        "",
        *table(["rank", *(f"{n}-gram" for n in z.top)], rows),
    ]


def _ngram_section(
    data: RunData, key: CorpusKey, hl: Headline, fp: str, figs: list[Figure]
) -> list[str]:
    res = of_corpus(data.results, key)
    ng = res[res["family"] == "ngram"]
    if ng.empty:
        return []
    shown = comparable(ng)
    out = ["### N-gram models (perplexity)", ""]
    out += _ngram_table(shown, "perplexity")
    if any(split_has_oov(data, key).values()):
        out += [
            "Excluding the OOV positions:",
            "",
            *_ngram_table(shown, "perplexity_excluding_oov"),
        ]
    out += _zero_prob_note(shown)
    if not shown.empty:
        name = figure(figs, "ngram", key)
        out += [
            f"![{hl.name} of {key[0]} against n, one line per smoothing method, neural models "
            f"as horizontal lines]({fp}{name})",
            "",
        ]
    if ng["method"].isin(UNNORMALISED).any():
        out += [
            "Stupid backoff is left out: its scores do not sum to one, so they are not "
            "perplexities (`select * from results where method = 'stupid-backoff'`).",
            "",
        ]
    return out


def _ngram_table(ng: pd.DataFrame, column: str) -> list[str]:
    methods = in_model_order(ng["method"])
    cols = [
        (m, s)
        for m in methods
        for s in ("valid", "test")
        if ((ng["method"] == m) & (ng["split"] == s)).any()
    ]
    by = {(r.method, int(r.n), r.split): getattr(r, column) for r in ng.itertuples(index=False)}
    rows = [
        [str(n)] + [fmt(by.get((m, n, s))) for m, s in cols]
        for n in sorted({int(n) for n in ng["n"]})
    ]
    return table(["n", *(f"{m} {s}" for m, s in cols)], rows)


def _zero_prob_note(rows: pd.DataFrame) -> list[str]:
    """An ``inf`` is explained by its count of zero-probability tokens (docs/design.md §3)."""
    bad = rows[rows["zero_prob"].fillna(0) > 0].sort_values(["model", "n", "split"])
    if bad.empty:
        return []
    parts = [
        f"{label(r)} gives probability 0 to {count(r['zero_prob'])} {r['split']} tokens"
        for _, r in bad.iterrows()
    ]
    return ["`inf`: " + "; ".join(parts) + ".", ""]


def _neural_section(
    data: RunData, key: CorpusKey, hl: Headline, fp: str, figs: list[Figure]
) -> list[str]:
    res = of_corpus(data.results, key)
    nn = res[res["family"] == "neural"]
    if nn.empty:
        return []
    excl = split_has_oov(data, key).get("test", False)
    rows = []
    for model in in_model_order(nn["model"]):
        by_split = {r["split"]: r for _, r in nn[nn["model"] == model].iterrows()}
        t = by_split.get("test")
        if t is None:
            continue
        s = settings_of(t)
        v = by_split.get("valid")
        rows.append(
            [
                model,
                count(s.get("layers")),
                count(s.get("hidden")),
                count(t["parameters"]),
                count(t["epochs"]),
                fmt(t["train_seconds"], 1),
                fmt(t["tokens_per_second"], 0),
                fmt(v["perplexity"]) if v is not None else "–",
                fmt(t["perplexity"]),
                *([fmt(t["perplexity_excluding_oov"])] if excl else []),
                fmt(t["bits_per_byte"], 4),
            ]
        )
    header = [
        "model",
        "layers",
        "hidden",
        "parameters",
        "epochs",
        "train time (s)",
        "tokens/s",
        "valid ppl",
        "test ppl",
        *(["test ppl excl. OOV"] if excl else []),
        "test bits/byte",
    ]
    out = ["### Neural models", "", *table(header, rows), *_zero_prob_note(nn)]
    out += _context_note(nn)
    out += _commands(data, key, nn)
    if not of_corpus(data.epochs, key).empty:
        name = figure(figs, "curves", key)
        out += [
            f"![Learning curves of {key[0]}: train and validation perplexity per epoch]"
            f"({fp}{name})",
            "",
        ]
    return out


def _context_note(nn: pd.DataFrame) -> list[str]:
    """What a bounded-context model sees, since it bounds its perplexity (unlike the recurrent
    models' state, carried over the whole split)."""
    notes = []
    for model in in_model_order(nn["model"]):
        rows = nn[(nn["model"] == model) & (nn["split"] == "test")]
        s = settings_of(rows.iloc[0]) if not rows.empty else {}
        if s.get("arch") == "transformer" and s.get("context"):
            stride = s.get("stride") or max(1, int(s["context"]) // 2)
            notes.append(
                f"{model} predicts each token from at most its {count(s['context'])} previous "
                f"tokens (its context), scored with sliding windows of stride {count(stride)} "
                f"(every token sees at least {count(int(s['context']) - stride + 1)}); the "
                "recurrent models carry their state over the whole split."
            )
    return [" ".join(notes), ""] if notes else []


def _commands(data: RunData, key: CorpusKey, nn: pd.DataFrame) -> list[str]:
    """Each neural row's ``lmpipe train`` command: run it to train the same model again."""
    if data.run.get("kind") not in (None, "benchmark"):
        return []
    config = json.loads(data.run.get("config_json") or "{}")
    c = of_corpus(data.corpora, key).iloc[0]
    lines = []
    for model in in_model_order(nn["model"]):
        row = nn[(nn["model"] == model) & (nn["split"] == "test")]
        if row.empty:
            continue
        settings = settings_of(row.iloc[0])
        try:
            cmd = train_command(key[0], key[1], int(c["min_freq"]), str(c["normalize"]),
                                settings, config)  # fmt: skip
        except (KeyError, ValueError):  # a run of older code: settings today's would refuse
            continue
        lines.append(cmd)
    if not lines:
        return []
    return ["Each row again, with `lmpipe train` (the same settings, so the same model):", "",
            "```bash", *lines, "```", ""]  # fmt: skip


def _tune_section(data: RunData, key: CorpusKey) -> list[str]:
    """The search behind each neural model: every candidate, the rung it reached, its
    validation perplexity and its cost (successive halving, lmpipe.lm.config.TuneConfig)."""
    cand = of_corpus(data.candidates, key)
    if cand.empty:
        return []
    config = json.loads(data.run.get("config_json") or "{}")
    searched = list(config.get("neural", {}).get("tune", {}).get("search", {}))
    final = of_corpus(data.results, key)
    rows = []
    for model in in_model_order(cand["model"]):
        chosen = final[(final["model"] == model) & (final["split"] == "valid")]
        winner = settings_of(chosen.iloc[0]) if not chosen.empty else {}
        mine = cand[cand["model"] == model].sort_values(["epochs", "perplexity"], kind="stable")
        for _, r in mine.iterrows():
            st = settings_of(r)
            picked = winner and all(st.get(k) == winner.get(k) for k in searched)
            rows.append(
                [model, *(cell(str(st.get(k))) for k in searched), count(r["epochs"]),
                 fmt(r["perplexity"]), fmt(r["train_seconds"], 1), "chosen" if picked else ""]
            )  # fmt: skip
    cost = float(cand["train_seconds"].sum())
    return [
        "### Tuning",
        "",
        f"Successive halving on the validation split ({count(len(cand))} candidate trainings, "
        f"{fmt(cost, 0)} s in all); the chosen settings were then trained to the end and scored "
        "on test once.",
        "",
        *table(["model", *searched, "epochs", "valid ppl", "train time (s)", ""], rows),
    ]


def _samples_section(data: RunData, key: CorpusKey) -> list[str]:
    sm = of_corpus(data.samples, key)
    if sm.empty:
        return []
    out = ["### Generated text", ""]
    for prefix in dict.fromkeys(sm["prefix"]):  # prefixes in the order the run used them
        out.append(f"Prefix “{cell(str(prefix))}”:")
        out.append("")
        rows = sm[sm["prefix"] == prefix]
        for model in in_model_order(rows["model"]):
            for s in rows[rows["model"] == model].sort_values("strategy").itertuples(index=False):
                out.append(f"- **{s.model}**, {s.strategy} (seed {s.seed}): {cell(str(s.text))}")
        out.append("")
    return out


def _delta_section(data: RunData, key: CorpusKey, hl: Headline) -> list[str]:
    """Each model's headline figure against the previous run of the experiment: the changed
    ones in a table, the unchanged ones named."""
    out = ["### Change against the previous run", ""]
    if data.previous is None or data.previous_run is None:
        return [*out, "No earlier run of this experiment.", ""]
    prev_run = data.previous_run
    out += [
        f"Previous run: `{prev_run['run_id']}` (code version `{prev_run['code_version']}`, "
        f"{_setup_change(prev_run, data.run)}); {hl.name}.",
        "",
    ]
    prev = comparable(of_corpus(data.previous, key))
    before_of = {
        (r.model, as_n(r.n)): getattr(r, hl.column)
        for r in prev[prev["split"] == "test"].itertuples(index=False)
    }
    changed, unchanged = [], []
    for r in _in_table_order(ranked(of_corpus(data.results, key), hl.column)):
        before = before_of.get((r["model"], as_n(r["n"])))
        if before is None:
            continue
        after = r[hl.column]
        change = 0.0 if after == before else after - before  # inf == inf is no change
        # "same" when the change does not show at the printed precision
        if round(change, 3) == 0:
            unchanged.append(label(r))
        else:
            verdict = "better" if change < 0 else "worse"
            changed.append([label(r), fmt(before), fmt(after), f"{change:+,.3f}", verdict])
    if changed:
        out += table(["model", "before", "now", "change", "verdict"], changed)
    if unchanged:
        out += [f"Unchanged: {', '.join(unchanged)}.", ""]
    return out if changed or unchanged else [*out, "No model in common with it.", ""]


def _setup_change(before: dict[str, Any], now: dict[str, Any]) -> str:
    """What may explain a change: whether the code and the configuration are those of now."""
    differ = [
        what
        for what, col in (("code", "code_version"), ("configuration", "config_json"))
        if before[col] != now[col]
    ]
    return f"different {' and '.join(differ)}" if differ else "the same code and configuration"


def _in_table_order(results: pd.DataFrame) -> list[Any]:
    """Rows as the tables list them: n-gram methods, then by order n, then neural models."""
    rank = {m: i for i, m in enumerate(in_model_order(results["model"]))}
    rows = [r for _, r in results.iterrows()]
    return sorted(
        rows,
        key=lambda r: (FAMILY_ORDER.get(r["family"], 3), rank[r["model"]], as_n(r["n"]) or 0),
    )


def _repro_section(data: RunData) -> list[str]:
    run = data.run
    env = json.loads(run["environment_json"] or "{}")
    config = json.loads(run["config_json"] or "{}")
    packages = ("python", "torch", "numpy", "pandas", "pyarrow", "duckdb", "prefect")
    devices = sorted(
        {
            str(settings_of(r).get("device"))
            for _, r in data.results.iterrows()
            if r["family"] == "neural"
        }
    )
    seeds = _seeds(config)
    return [
        "## Reproducibility",
        "",
        f"- code version: `{run['code_version']}`",
        "- packages: " + ", ".join(f"{k} {env[k]}" for k in packages if k in env),
        f"- machine: {env.get('platform', '?')}, {env.get('cpu_count', '?')} CPUs, "
        f"CUDA available: {'yes' if env.get('cuda') else 'no'}",
        f"- neural device setting: {', '.join(devices) if devices else '–'}",
        "- seeds: " + (", ".join(f"{k} = {v}" for k, v in seeds) if seeds else "–"),
        "",
        "<details><summary>Configuration of the run</summary>",
        "",
        "```json",
        json.dumps(config, indent=2, sort_keys=True),
        "```",
        "",
        "</details>",
        "",
    ]


def _seeds(config: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every ``seed`` key of the configuration, with its dotted path."""
    if not isinstance(config, dict):
        return []
    out: list[tuple[str, Any]] = []
    for k in sorted(config):
        p = f"{path}.{k}" if path else k
        out += [(p, config[k])] if k == "seed" else _seeds(config[k], p)
    return out
