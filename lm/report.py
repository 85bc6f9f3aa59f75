"""The Markdown report of a run: a pure function of what the warehouse holds for it.

``load_run`` reads the run's rows (and the previous run of the same experiment, for deltas);
``render`` turns them into Markdown text and the list of figures it links; ``draw_figures``
writes those PNGs; ``write_report`` does all three into ``reports/<experiment>/<date>-<run_id>/``.
Nothing here reads the clock and every figure is drawn without timestamps, so re-writing a
run's report yields the same bytes. Every number printed is a warehouse value or a ratio of two.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lmpipe.lm.errors import WarehouseError
from lmpipe.lm.fileio import atomic_path, atomic_write_text
from lmpipe.lm.warehouse import Warehouse

CorpusKey = tuple[str, str]  # (corpus, tokenizer)

# --------------------------------------------------------------------------- colours

# One fixed colour per model name, so a model looks the same in every figure of every report.
# n-gram methods get warm/earthy colours, neural architectures cool ones.
MODEL_COLORS: dict[str, str] = {
    "mle": "#7f7f7f",
    "add-k": "#bcbd22",
    "witten-bell": "#8c564b",
    "absolute": "#e377c2",
    "kn": "#ff7f0e",
    "mkn": "#d62728",
    "katz": "#17becf",
    "stupid-backoff": "#c7c7c7",
    "rnn-scratch": "#c5b0d5",
    "gru-scratch": "#98df8a",
    "lstm-scratch": "#aec7e8",
    "rnn": "#9467bd",
    "rnn-relu": "#393b79",
    "gru": "#2ca02c",
    "lstm": "#1f77b4",
}
MODEL_ORDER = list(MODEL_COLORS)
_MARKERS = "osD^vP*X<>"
_FALLBACK = ["#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d"]
# Zipf lines are orders, not models: greys keep them apart from every model colour.
ORDER_STYLES = {1: ("#111111", "-"), 2: ("#555555", "--"), 3: ("#999999", ":")}
TOP_NGRAMS = 10
ZIPF_POINTS = 400
UNNORMALISED = {"stupid-backoff"}  # scores that are not probabilities: never compared
RESERVED_TOKENS = 4  # <unk>, <s>, </s>, <pad> (lm.vocab.RESERVED)


def model_color(model: str) -> str:
    """The colour of ``model`` in every figure; unknown names get a stable hashed colour."""
    return MODEL_COLORS.get(model) or _FALLBACK[zlib.crc32(model.encode()) % len(_FALLBACK)]


def _in_model_order(models: Any) -> list[str]:
    """Distinct model names in the order every table and legend uses (then by name)."""
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    return sorted(set(models), key=lambda m: (rank.get(m, len(rank)), m))


def model_marker(model: str) -> str:
    """A marker per model as well, for lines that overlap and for readers without colour."""
    i = MODEL_ORDER.index(model) if model in MODEL_ORDER else zlib.crc32(model.encode())
    return _MARKERS[i % len(_MARKERS)]


# --------------------------------------------------------------------------- loading


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
    # training count of <unk> per corpus: 0 means no model could learn it (DESIGN §3)
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
        p = ngrams_dir / f"n={n}" / "ngrams.parquet"
        if not p.exists():
            continue
        ids = [f"w{i}" for i in range(1, n + 1)]
        df = pq.read_table(p, columns=[*ids, "count"]).to_pandas()
        # ties broken by token ids so that the table is the same on every rewrite
        df = df.sort_values(["count", *ids], ascending=[False] + [True] * n, ignore_index=True)
        counts[n] = df["count"].to_numpy()
        top[n] = [
            (_spell(tokenizer, [tokens[int(i)] for i in row[:-1]]), int(row[-1]))
            for row in df.head(TOP_NGRAMS)[[*ids, "count"]].itertuples(index=False)
        ]
    return Zipf(counts, top)


def _spell(tokenizer: str, toks: list[str]) -> str:
    """An n-gram as readers see it: characters joined (a space shown as ␣), words spaced."""
    if tokenizer == "char":
        return "".join(t.replace(" ", "␣") for t in toks)
    return " ".join(toks)


# --------------------------------------------------------------------------- formatting


@dataclass(frozen=True)
class Figure:
    """A PNG that the report links: which plot of which corpus, under which file name."""

    name: str
    kind: str
    corpus: str
    tokenizer: str


def fmt(x: Any, digits: int = 3) -> str:
    """A measured value as the report prints it: thousands separators, fixed decimals,
    ``inf`` for an infinite perplexity, ``–`` for a missing value."""
    if x is None or pd.isna(x):
        return "–"
    return "inf" if math.isinf(x) else f"{float(x):,.{digits}f}"


def count(x: Any) -> str:
    """A count (pandas stores a nullable integer column as float: print it as an integer)."""
    return "–" if x is None or pd.isna(x) else f"{int(x):,}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def _code(text: str) -> str:
    """Inline code that survives backticks and pipes inside ``text`` (Markdown tables)."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _of(df: pd.DataFrame, key: CorpusKey) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["corpus"] == key[0]) & (df["tokenizer"] == key[1])]


def _comparable(results: pd.DataFrame) -> pd.DataFrame:
    return results[~results["method"].isin(UNNORMALISED)]


def _label(row: Any) -> str:
    return f"{row['method']} n={int(row['n'])}" if row["family"] == "ngram" else str(row["model"])


def _settings(row: Any) -> dict[str, Any]:
    return json.loads(row["settings_json"] or "{}")


# --------------------------------------------------------------------------- headline


@dataclass(frozen=True)
class Headline:
    """Which test figure ranks the models of one corpus, and why."""

    column: str  # "perplexity" or "perplexity_excluding_oov"
    name: str
    note: str


def headline(data: RunData, key: CorpusKey) -> Headline:
    """Excluding OOV positions when the test split has OOVs that no model could learn (<unk>
    never in training: an n-gram model still gives it mass, a neural model almost none, so the
    full figure would favour n-grams for a reason that is no merit); the full perplexity
    otherwise (DESIGN §3)."""
    test = _of(data.splits, key)
    test_oov = int(test[test["split"] == "test"]["oov"].sum()) if not test.empty else 0
    if test_oov and data.unk_train_count.get(key, 0) == 0:
        return Headline(
            "perplexity_excluding_oov",
            "test perplexity excluding OOV",
            f"The test split has {count(test_oov)} out-of-vocabulary tokens and `<unk>` never "
            "occurs in training, so n-gram models give it probability mass and neural models "
            "almost none: models are ranked by **perplexity excluding the OOV positions**. Full "
            "perplexities and bits per byte (which count every token) are in the tables.",
        )
    note = "Models are ranked by **test perplexity** (every token, `</s>` included)."
    if test_oov:
        note += " `<unk>` occurs in training, so every model has learned its probability."
    return Headline("perplexity", "test perplexity", note)


def _ranked(results: pd.DataFrame, column: str, family: str | None = None) -> pd.DataFrame:
    """Comparable test rows, best first (ties by model name and n, for a stable order)."""
    r = _comparable(results[results["split"] == "test"])
    if family:
        r = r[r["family"] == family]
    r = r[r[column].notna()]
    return r.sort_values([column, "model", "n"], na_position="first", kind="stable")


def _best(results: pd.DataFrame, column: str, family: str | None = None) -> Any:
    r = _ranked(results, column, family)
    return None if r.empty else r.iloc[0]


# --------------------------------------------------------------------------- rendering


def render(data: RunData, fig_prefix: str = "") -> tuple[str, list[Figure]]:
    """The report's Markdown and the figures it links (``fig_prefix`` + name)."""
    figs: list[Figure] = []
    out = _header(data)
    if len(data.keys()) > 1:
        out += _cross_corpus(data)
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
        res = _of(data.results, key)
        test = _of(data.splits, key)
        test = test[test["split"] == "test"]
        best = [_best(res, "bits_per_byte", family) for family in ("ngram", "neural")]
        row = [key[0], key[1], f"{100 * test['oov_rate'].iloc[0]:.2f} %" if not test.empty else "–"]
        for b in best:
            row += [_label(b), fmt(b["bits_per_byte"], 4)] if b is not None else ["–", "–"]
        ranked.append(
            (min([b["bits_per_byte"] for b in best if b is not None], default=math.inf), row)
        )
    ranked.sort(key=lambda r: r[0])
    return [
        "## Across corpora (test split, by bits per byte)",
        "",
        "Bits per byte count every token, OOV included; lowest first.",
        "",
        *_table(
            [
                "corpus",
                "tokenizer",
                "test OOV rate",
                "best n-gram",
                "n-gram bits/byte",
                "best neural",
                "neural bits/byte",
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
    out += _neural_section(data, key, hl, fp, figs)
    out += _samples_section(data, key)
    out += _delta_section(data, key, hl)
    return out


def _summary(data: RunData, key: CorpusKey, hl: Headline) -> list[str]:
    res = _of(data.results, key)
    best = _best(res, hl.column)
    if best is None:
        return ["No comparable model was evaluated on the test split.", ""]
    line = (
        f"**Best model: {_label(best)}**, {hl.name} {fmt(best[hl.column])} "
        f"({fmt(best['bits_per_byte'], 4)} bits per byte over all tokens)"
    )
    rival = _best(res, hl.column, "neural" if best["family"] == "ngram" else "ngram")
    if rival is not None:
        ratio = 100 * (rival[hl.column] / best[hl.column] - 1)
        line += (
            f"; the best {'neural' if best['family'] == 'ngram' else 'n-gram'} model, "
            f"{_label(rival)}, has {fmt(rival[hl.column])}, {fmt(ratio, 1)} % higher "
            f"({fmt(rival['bits_per_byte'], 4)} bits per byte)"
        )
    return [line + ".", ""]


def _corpus_stats(data: RunData, key: CorpusKey) -> list[str]:
    sp = _of(data.splits, key)
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
    c = _of(data.corpora, key).iloc[0]
    return [
        "### Corpus",
        "",
        *_table(
            ["split", "lines", "tokens (with </s>)", "types", "OOV tokens", "OOV rate", "bytes"],
            rows,
        ),
        f"Vocabulary: {count(c['vocab_size'])} entries ({RESERVED_TOKENS} reserved), from the "
        f"training split with min_freq {int(c['min_freq'])}; `<unk>` occurs "
        f"{count(data.unk_train_count.get(key, 0))} times in training. Source `{c['origin']}`, "
        f"sha256 `{str(c['sha256'])[:16]}…`.",
        "",
    ]


def _zipf_section(data: RunData, key: CorpusKey, fp: str, figs: list[Figure]) -> list[str]:
    z = data.zipf.get(key)
    if z is None or not z.top:
        return []
    name = _figure(figs, "zipf", key)
    rows = [
        [str(i + 1)]
        + [
            f"{_code(top[i][0])} ({count(top[i][1])})" if i < len(top) else ""
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
        *_table(["rank", *(f"{n}-gram" for n in z.top)], rows),
    ]


def _figure(figs: list[Figure], kind: str, key: CorpusKey) -> str:
    fig = Figure(f"{kind}-{key[0]}-{key[1]}.png", kind, *key)
    figs.append(fig)
    return fig.name


def _split_has_oov(data: RunData, key: CorpusKey) -> dict[str, bool]:
    return {s.split: s.oov > 0 for s in _of(data.splits, key).itertuples(index=False)}


def _ngram_section(
    data: RunData, key: CorpusKey, hl: Headline, fp: str, figs: list[Figure]
) -> list[str]:
    res = _of(data.results, key)
    ng = res[res["family"] == "ngram"]
    if ng.empty:
        return []
    shown = _comparable(ng)
    out = ["### N-gram models (perplexity)", ""]
    out += _ngram_table(shown, "perplexity")
    if any(_split_has_oov(data, key).values()):
        out += [
            "Excluding the OOV positions:",
            "",
            *_ngram_table(shown, "perplexity_excluding_oov"),
        ]
    out += _zero_prob_note(shown)
    if not shown.empty:
        name = _figure(figs, "ngram", key)
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
    methods = _in_model_order(ng["method"])
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
    return _table(["n", *(f"{m} {s}" for m, s in cols)], rows)


def _zero_prob_note(rows: pd.DataFrame) -> list[str]:
    """An ``inf`` is explained by its count of zero-probability tokens (DESIGN §3)."""
    bad = rows[rows["zero_prob"].fillna(0) > 0].sort_values(["model", "n", "split"])
    if bad.empty:
        return []
    parts = [
        f"{_label(r)} gives probability 0 to {count(r['zero_prob'])} {r['split']} tokens"
        for _, r in bad.iterrows()
    ]
    return ["`inf`: " + "; ".join(parts) + ".", ""]


def _neural_section(
    data: RunData, key: CorpusKey, hl: Headline, fp: str, figs: list[Figure]
) -> list[str]:
    res = _of(data.results, key)
    nn = res[res["family"] == "neural"]
    if nn.empty:
        return []
    excl = _split_has_oov(data, key).get("test", False)
    rows = []
    for model in _in_model_order(nn["model"]):
        by_split = {r["split"]: r for _, r in nn[nn["model"] == model].iterrows()}
        t = by_split.get("test")
        if t is None:
            continue
        s = _settings(t)
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
    out = ["### Neural models", "", *_table(header, rows), *_zero_prob_note(nn)]
    if not _of(data.epochs, key).empty:
        name = _figure(figs, "curves", key)
        out += [
            f"![Learning curves of {key[0]}: train and validation perplexity per epoch]"
            f"({fp}{name})",
            "",
        ]
    return out


def _samples_section(data: RunData, key: CorpusKey) -> list[str]:
    sm = _of(data.samples, key)
    if sm.empty:
        return []
    out = ["### Generated text", ""]
    for prefix in dict.fromkeys(sm["prefix"]):  # prefixes in the order the run used them
        out.append(f"Prefix “{_cell(str(prefix))}”:")
        out.append("")
        rows = sm[sm["prefix"] == prefix]
        for model in _in_model_order(rows["model"]):
            for s in rows[rows["model"] == model].sort_values("strategy").itertuples(index=False):
                out.append(f"- **{s.model}**, {s.strategy} (seed {s.seed}): {_cell(str(s.text))}")
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
    prev = _comparable(_of(data.previous, key))
    before_of = {
        (r.model, _n(r.n)): getattr(r, hl.column)
        for r in prev[prev["split"] == "test"].itertuples(index=False)
    }
    changed, unchanged = [], []
    for r in _in_table_order(_ranked(_of(data.results, key), hl.column)):
        before = before_of.get((r["model"], _n(r["n"])))
        if before is None:
            continue
        after = r[hl.column]
        change = 0.0 if after == before else after - before  # inf == inf is no change
        # "same" when the change does not show at the printed precision
        if round(change, 3) == 0:
            unchanged.append(_label(r))
        else:
            verdict = "better" if change < 0 else "worse"
            changed.append([_label(r), fmt(before), fmt(after), f"{change:+,.3f}", verdict])
    if changed:
        out += _table(["model", "before", "now", "change", "verdict"], changed)
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
    rank = {m: i for i, m in enumerate(_in_model_order(results["model"]))}
    rows = [r for _, r in results.iterrows()]
    return sorted(rows, key=lambda r: (r["family"] == "neural", rank[r["model"]], _n(r["n"]) or 0))


def _n(n: Any) -> int | None:
    return None if n is None or pd.isna(n) else int(n)


def _repro_section(data: RunData) -> list[str]:
    run = data.run
    env = json.loads(run["environment_json"] or "{}")
    config = json.loads(run["config_json"] or "{}")
    packages = ("python", "torch", "numpy", "pandas", "pyarrow", "duckdb", "prefect")
    devices = sorted(
        {
            str(_settings(r).get("device"))
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
    out = []
    for k in sorted(config):
        p = f"{path}.{k}" if path else k
        out += [(p, config[k])] if k == "seed" else _seeds(config[k], p)
    return out


# --------------------------------------------------------------------------- figures


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
    test = _ranked(_of(data.results, key), hl.column)
    ng = test[test["family"] == "ngram"]
    for m in _in_model_order(ng["method"]):
        d = ng[ng["method"] == m].sort_values("n")
        ax.plot(d["n"], d[hl.column], marker=model_marker(m), color=model_color(m), label=m)
    nn = test[test["family"] == "neural"]
    for model in _in_model_order(nn["model"]):
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
    ep = _of(data.epochs, (f.corpus, f.tokenizer))
    for model in _in_model_order(ep["model"]):
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


# --------------------------------------------------------------------------- files


def report_dir(reports_root: Path, data: RunData) -> Path:
    date = pd.Timestamp(data.run["started_at"]).strftime("%Y-%m-%d")
    return reports_root / str(data.run["experiment"]) / f"{date}-{data.run['run_id']}"


def write_report(wh: Warehouse, reports_root: Path, run_id: str) -> Path:
    """Render ``run_id`` from the warehouse into ``reports/<experiment>/<date>-<run_id>/`` and,
    when it is the experiment's newest run, ``reports/<experiment>/latest.md`` (the same text,
    its figure links going into the run's folder). Returns the report's path."""
    data = load_run(wh, run_id)
    out_dir = report_dir(reports_root, data)
    text, figs = render(data)
    draw_figures(data, figs, out_dir)
    path = out_dir / "report.md"
    atomic_write_text(path, text)
    if newest_run_of(wh, str(data.run["experiment"])) == run_id:
        latest, _ = render(data, fig_prefix=out_dir.name + "/")
        atomic_write_text(out_dir.parent / "latest.md", latest)
    return path
