"""The Markdown report of a run: a pure function of what the warehouse holds for it.

``load_run`` reads the run's rows (and the previous run of the same experiment, for deltas);
``render`` turns them into Markdown text and a list of figures to draw; ``draw_figures`` writes
the PNGs. Nothing here reads the clock, so re-rendering a run yields the same bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from lm.errors import WarehouseError
from lm.warehouse import Warehouse

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
]
MODEL_ORDER = ["mle", "add-k", "witten-bell", "absolute", "kn", "mkn", "katz", "stupid-backoff",
               "rnn-scratch", "gru-scratch", "lstm-scratch", "rnn", "rnn-relu", "gru", "lstm"]


def model_color(model: str) -> str:
    """One colour per model name across every figure of every report."""
    idx = MODEL_ORDER.index(model) if model in MODEL_ORDER else sum(map(ord, model))
    return PALETTE[idx % len(PALETTE)]


@dataclass
class RunData:
    run: dict[str, Any]
    corpora: pd.DataFrame
    splits: pd.DataFrame
    results: pd.DataFrame
    epochs: pd.DataFrame
    samples: pd.DataFrame
    previous: pd.DataFrame | None
    previous_run_id: str | None
    zipf: dict[tuple[str, str], dict[int, pd.DataFrame]] = field(default_factory=dict)


def newest_run(wh: Warehouse) -> str:
    runs = wh.committed_runs()
    if not runs:
        raise WarehouseError(f"no completed run in {wh.root}; run `lmpipe run` first")
    table = pd.concat([pq.read_table(wh.run_path("runs", r)).to_pandas() for r in runs])
    return str(table.sort_values("started_at").iloc[-1]["run_id"])


def load_run(wh: Warehouse, run_id: str) -> RunData:
    if run_id not in wh.committed_runs():
        raise WarehouseError(
            f"run {run_id!r} is not a completed run in {wh.root}; see `lmpipe sql \"select run_id "
            "from runs\"`"
        )

    def read(ds: str, rid: str) -> pd.DataFrame:
        p = wh.run_path(ds, rid)
        return pq.read_table(p).to_pandas() if p.exists() else pd.DataFrame()

    run = read("runs", run_id).iloc[0].to_dict()
    prev_id = _previous_run(wh, run)
    data = RunData(
        run=run,
        corpora=read("corpora", run_id),
        splits=read("splits", run_id),
        results=read("results", run_id),
        epochs=read("epochs", run_id),
        samples=read("samples", run_id),
        previous=read("results", prev_id) if prev_id else None,
        previous_run_id=prev_id,
    )
    for _, c in data.corpora.iterrows():
        data.zipf[(c["corpus"], c["tokenizer"])] = _zipf_tables(wh, c["corpus"], c["tokenizer"], c["data_key"])
    return data


def _previous_run(wh: Warehouse, run: dict[str, Any]) -> str | None:
    best = None
    for rid in wh.committed_runs():
        if rid == run["run_id"]:
            continue
        r = pq.read_table(wh.run_path("runs", rid), columns=["experiment", "started_at"]).to_pylist()[0]
        if r["experiment"] == run["experiment"] and r["started_at"] < run["started_at"]:
            if best is None or r["started_at"] > best[1]:
                best = (rid, r["started_at"])
    return best[0] if best else None


def _zipf_tables(wh: Warehouse, corpus: str, tokenizer: str, key: str) -> dict[int, pd.DataFrame]:
    """Counts of orders 1..3 sorted by frequency, with readable tokens (empty if not counted)."""
    d = wh.ngrams_dir(corpus, tokenizer, key)
    vocab_path = wh.vocab_path(corpus, tokenizer, key)
    if not d.exists() or not vocab_path.exists():
        return {}
    tokens = pq.read_table(vocab_path, columns=["token"]).column("token").to_pylist()
    out: dict[int, pd.DataFrame] = {}
    for n in (1, 2, 3):
        p = d / f"n={n}" / "ngrams.parquet"
        if not p.exists():
            continue
        df = pq.read_table(p).to_pandas()
        df = df.sort_values(["count"] + [f"w{i}" for i in range(1, n + 1)], ascending=[False] + [True] * n)
        df = df.reset_index(drop=True)
        head = df.head(10).copy()
        head["ngram"] = [
            _join(tokenizer, [tokens[int(row[f"w{i}"])] for i in range(1, n + 1)])
            for _, row in head.iterrows()
        ]
        out[n] = pd.DataFrame({"count": df["count"].to_numpy()}).assign(
            top=pd.Series(head["ngram"].tolist())
        )
    return out


def _join(tokenizer: str, toks: list[str]) -> str:
    shown = [t.replace(" ", "␣") if tokenizer == "char" else t for t in toks]
    return ("" if tokenizer == "char" else " ").join(shown)


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Figure:
    name: str
    kind: str
    corpus: str
    tokenizer: str


def fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _normalized(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["method"] != "stupid-backoff"]


def render(data: RunData, fig_prefix: str = "") -> tuple[str, list[Figure]]:
    run = data.run
    res = data.results
    figs: list[Figure] = []
    started = pd.Timestamp(run["started_at"]).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# Perplexity report: {run['experiment']}",
        "",
        f"Run `{run['run_id']}`, started {started}, {fmt(run['wall_seconds'], 0)} s wall. "
        "Perplexity is exp of the mean negative log-likelihood over every token of the split, "
        "`</s>` included (DESIGN §3); bits per byte divide the total bits by the split's UTF-8 "
        "bytes (each line plus its newline), so char and word models compare fairly. "
        "Lower is better.",
        "",
    ]
    keys = [(c, t) for c, t in data.corpora[["corpus", "tokenizer"]].itertuples(index=False)]
    if len(keys) > 1:
        out += ["## Across corpora (test split, by bits per byte)", ""]
        rows = []
        for c, t in keys:
            best = _best(res, c, t)
            if best is not None:
                rows.append([c, t, _label(best), fmt(best["perplexity"]), fmt(best["bits_per_byte"], 3)])
        out += [_table(["corpus", "tokenizer", "best model", "test perplexity", "bits/byte"], rows), ""]
    for c, t in keys:
        out += _corpus_section(data, c, t, fig_prefix, figs)
    out += _repro_section(data)
    return "\n".join(out).rstrip() + "\n", figs


def _label(row: Any) -> str:
    return f"{row['method']} n={int(row['n'])}" if row["family"] == "ngram" else str(row["model"])


def _best(res: pd.DataFrame, corpus: str, tokenizer: str, family: str | None = None) -> Any:
    r = _normalized(res)
    r = r[(r["corpus"] == corpus) & (r["tokenizer"] == tokenizer) & (r["split"] == "test")]
    if family:
        r = r[r["family"] == family]
    r = r[r["perplexity"].notna()]
    if r.empty:
        return None
    return r.sort_values(["perplexity", "model"]).iloc[0]


def _corpus_section(data: RunData, corpus: str, tokenizer: str, fp: str, figs: list[Figure]) -> list[str]:
    res = data.results[(data.results["corpus"] == corpus) & (data.results["tokenizer"] == tokenizer)]
    out = [f"## {corpus} ({tokenizer} tokens)", ""]
    best, best_ng = _best(data.results, corpus, tokenizer), _best(data.results, corpus, tokenizer, "ngram")
    if best is not None:
        line = (f"**Best model: {_label(best)}**, test perplexity {fmt(best['perplexity'])} "
                f"({fmt(best['bits_per_byte'], 3)} bits per byte)")
        if best_ng is not None and best["family"] != "ngram":
            gain = 100 * (1 - best["perplexity"] / best_ng["perplexity"])
            line += f", {fmt(gain, 1)} % below the best n-gram ({_label(best_ng)}: {fmt(best_ng['perplexity'])})"
        elif best_ng is not None:
            line += ", an n-gram model"
        out += [line + ".", ""]
    # corpus statistics
    sp = data.splits[(data.splits["corpus"] == corpus) & (data.splits["tokenizer"] == tokenizer)]
    out += ["### Corpus", "", _table(
        ["split", "lines", "tokens (with </s>)", "types", "OOV tokens", "OOV rate", "bytes"],
        [[s["split"], fmt(int(s["lines"])), fmt(int(s["tokens"])), fmt(int(s["types"])), fmt(int(s["oov"])),
          f"{100 * s['oov_rate']:.2f} %", fmt(int(s["bytes"]))] for _, s in sp.iterrows()],
    ), ""]
    crow = data.corpora[(data.corpora["corpus"] == corpus) & (data.corpora["tokenizer"] == tokenizer)].iloc[0]
    out += [f"Vocabulary: {fmt(int(crow['vocab_size']))} entries (min_freq {int(crow['min_freq'])}, "
            "4 reserved); source `" + str(crow["origin"]) + "`, sha256 `" + str(crow["sha256"])[:16] + "…`.", ""]
    zipf = data.zipf.get((corpus, tokenizer), {})
    if zipf:
        name = f"zipf-{corpus}-{tokenizer}.png"
        figs.append(Figure(name, "zipf", corpus, tokenizer))
        out += ["### Zipf's law", "", f"![Zipf plot for {corpus}]({fp}{name})", ""]
        tops = [[str(i + 1)] + [f"`{z['top'][i]}` ({fmt(int(z['count'][i]))})" if i < len(z) and isinstance(z['top'][i], str) else "" for z in zipf.values()] for i in range(10)]
        out += [_table(["rank"] + [f"{n}-gram" for n in zipf], tops), ""]
    # n-gram table
    ng = res[res["family"] == "ngram"]
    if not ng.empty:
        methods = [m for m in MODEL_ORDER if m in set(ng["method"])]
        header = ["n"] + [f"{m} {s}" for m in methods for s in ("valid", "test")]
        rows = []
        for n in sorted(ng["n"].unique()):
            row = [str(int(n))]
            for m in methods:
                for s in ("valid", "test"):
                    v = ng[(ng["method"] == m) & (ng["n"] == n) & (ng["split"] == s)]
                    row.append(fmt(float(v["perplexity"].iloc[0])) if not v.empty else "–")
            rows.append(row)
        name = f"ngram-{corpus}-{tokenizer}.png"
        figs.append(Figure(name, "ngram", corpus, tokenizer))
        out += ["### N-gram models (perplexity)", "", _table(header, rows), "",
                f"![Perplexity against n for {corpus}]({fp}{name})", ""]
        if "stupid-backoff" in methods:
            out += ["Stupid backoff does not give normalised probabilities: its figures are not perplexities and are left out of every comparison.", ""]
    nn = res[(res["family"] == "neural")]
    if not nn.empty:
        rows = []
        for model in [m for m in MODEL_ORDER if m in set(nn["model"])]:
            v = nn[(nn["model"] == model) & (nn["split"] == "valid")]
            t = nn[(nn["model"] == model) & (nn["split"] == "test")]
            if t.empty:
                continue
            t = t.iloc[0]
            settings = json.loads(t["settings_json"])
            rows.append([
                model, str(settings.get("layers", "")), str(settings.get("hidden", "")),
                fmt(int(t["parameters"])), str(int(t["epochs"])) if pd.notna(t["epochs"]) else "–",
                fmt(float(t["train_seconds"]), 1), fmt(float(t["tokens_per_second"]), 0),
                fmt(float(v["perplexity"].iloc[0])) if not v.empty else "–", fmt(float(t["perplexity"])),
                fmt(float(t["bits_per_byte"]), 3),
            ])
        out += ["### Neural models", "", _table(
            ["model", "layers", "hidden", "parameters", "epochs", "train s", "tokens/s", "valid ppl",
             "test ppl", "test bits/byte"], rows), ""]
        ep = data.epochs[(data.epochs["corpus"] == corpus) & (data.epochs["tokenizer"] == tokenizer)]
        if not ep.empty:
            name = f"curves-{corpus}-{tokenizer}.png"
            figs.append(Figure(name, "curves", corpus, tokenizer))
            out += [f"![Learning curves for {corpus}]({fp}{name})", ""]
    sm = data.samples[(data.samples["corpus"] == corpus) & (data.samples["tokenizer"] == tokenizer)] if not data.samples.empty else data.samples
    if not sm.empty:
        out += ["### Generated text", ""]
        for _, s in sm.iterrows():
            text = str(s["text"]).replace("\n", " ⏎ ")
            out.append(f"- **{s['model']}**, {s['strategy']} (seed {int(s['seed'])}), prefix “{s['prefix']}”: {text}")
        out.append("")
    out += _delta_section(data, corpus, tokenizer)
    return out


def _delta_section(data: RunData, corpus: str, tokenizer: str) -> list[str]:
    if data.previous is None or data.previous.empty:
        return ["### Change against the previous run", "", "No earlier run of this experiment.", ""]
    cur = data.results[(data.results["corpus"] == corpus) & (data.results["tokenizer"] == tokenizer) & (data.results["split"] == "test")]
    prev = data.previous[(data.previous["corpus"] == corpus) & (data.previous["tokenizer"] == tokenizer) & (data.previous["split"] == "test")]
    rows = []
    for _, r in _normalized(cur).iterrows():
        p = prev[(prev["method"] == r["method"]) & (prev["n"].fillna(-1) == (r["n"] if pd.notna(r["n"]) else -1))]
        if p.empty:
            continue
        before, after = float(p["perplexity"].iloc[0]), float(r["perplexity"])
        delta = after - before
        mark = "same" if abs(delta) < 1e-9 else ("better" if delta < 0 else "worse")
        rows.append([_label(r), fmt(before, 3), fmt(after, 3), f"{delta:+.3f}", mark])
    out = ["### Change against the previous run", "", f"Previous run: `{data.previous_run_id}` (test perplexity).", ""]
    out += [_table(["model", "before", "now", "change", ""], rows) if rows else "No model in common.", ""]
    return out


def _repro_section(data: RunData) -> list[str]:
    run = data.run
    env = json.loads(run["environment_json"] or "{}")
    cfg = json.dumps(json.loads(run["config_json"] or "{}"), indent=2, sort_keys=True)
    return [
        "## Reproducibility", "",
        f"- code version: `{run['code_version']}`",
        "- packages: " + ", ".join(f"{k} {env[k]}" for k in ("python", "torch", "numpy", "pandas", "pyarrow", "duckdb", "prefect") if k in env),
        f"- machine: {env.get('platform', '?')}, {env.get('cpu_count', '?')} CPUs, CUDA {'yes' if env.get('cuda') else 'no'}",
        "", "Configuration (seeds included):", "", "```json", cfg, "```", "",
    ]


# ----------------------------------------------------------------------------- figures


def draw_figures(data: RunData, figs: list[Figure], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lm.fileio import atomic_path

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "svg.hashsalt": "lmpipe"})
    paths = []
    for f in figs:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        res = data.results[(data.results["corpus"] == f.corpus) & (data.results["tokenizer"] == f.tokenizer)]
        if f.kind == "ngram":
            ng = _normalized(res[(res["family"] == "ngram") & (res["split"] == "test")])
            for m in [m for m in MODEL_ORDER if m in set(ng["method"])]:
                d = ng[ng["method"] == m].sort_values("n")
                ax.plot(d["n"], d["perplexity"], marker="o", color=model_color(m), label=m)
            for _, r in res[(res["family"] == "neural") & (res["split"] == "test")].iterrows():
                ax.axhline(r["perplexity"], color=model_color(r["model"]), linestyle="--", label=f"{r['model']} (neural)")
            ax.set_yscale("log")
            ax.set_xlabel("n-gram order n")
            ax.set_ylabel("test perplexity (log scale)")
            ax.set_title(f"{f.corpus} ({f.tokenizer}): perplexity against n")
            ax.xaxis.get_major_locator().set_params(integer=True)
        elif f.kind == "curves":
            ep = data.epochs[(data.epochs["corpus"] == f.corpus) & (data.epochs["tokenizer"] == f.tokenizer)]
            for model in [m for m in MODEL_ORDER if m in set(ep["model"])]:
                d = ep[ep["model"] == model].sort_values("epoch")
                ax.plot(d["epoch"], d["train_perplexity"], color=model_color(model), linestyle=":", label=f"{model} train")
                ax.plot(d["epoch"], d["valid_perplexity"], color=model_color(model), marker="o", label=f"{model} valid")
            ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel("perplexity (log scale)")
            ax.set_title(f"{f.corpus} ({f.tokenizer}): learning curves")
        elif f.kind == "zipf":
            for n, z in data.zipf[(f.corpus, f.tokenizer)].items():
                counts = z["count"].to_numpy()
                ax.plot(range(1, len(counts) + 1), counts, label=f"{n}-grams", color=PALETTE[n - 1])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("rank (log scale)")
            ax.set_ylabel("frequency in the training split (log scale)")
            ax.set_title(f"{f.corpus} ({f.tokenizer}): Zipf's law, orders 1-3")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        dest = out_dir / f.name
        with atomic_path(dest) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
        plt.close(fig)
        paths.append(dest)
    return paths


def report_dir(reports_root: Path, data: RunData) -> Path:
    date = pd.Timestamp(data.run["started_at"]).strftime("%Y-%m-%d")
    return reports_root / str(data.run["experiment"]) / f"{date}-{data.run['run_id']}"


def write_report(wh: Warehouse, reports_root: Path, run_id: str) -> Path:
    """Render ``run_id`` from the warehouse into ``reports/<experiment>/<date>-<run_id>/`` and
    point ``reports/<experiment>/latest.md`` at the newest run. Returns the report's path."""
    from lm.fileio import atomic_write_text

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


def newest_run_of(wh: Warehouse, experiment: str) -> str | None:
    best = None
    for rid in wh.committed_runs():
        r = pq.read_table(wh.run_path("runs", rid), columns=["experiment", "started_at"]).to_pylist()[0]
        if r["experiment"] == experiment and (best is None or r["started_at"] > best[1]):
            best = (rid, r["started_at"])
    return best[0] if best else None
