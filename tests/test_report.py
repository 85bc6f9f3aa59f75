"""The report: every number in it checked against the warehouse rows it comes from.

``build_warehouse`` writes a small warehouse by hand (no Prefect, no training): two runs of the
``default`` experiment over ``timemachine`` (closed vocabulary) and ``jaychou`` (OOV tokens in
valid and test, ``<unk>`` never in training), and a later run of another experiment.
``tests/test_sql.py`` queries the same warehouse.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmpipe.lm import report as rep
from lmpipe.lm.report import text as rep_text
from lmpipe.lm.warehouse import Warehouse, rebuild_database, write_parquet

EXPERIMENT = "default"
PREV, CUR, OTHER = "20260101-000000-aaaaaa", "20260102-000000-bbbbbb", "20260103-000000-cccccc"
CORPORA = {
    # corpus: (data key, vocabulary tokens after the 4 reserved ones, OOV tokens in valid/test)
    "timemachine": ("k-tm", ["e", "t", " ", "a", "|"], 0),
    "jaychou": ("k-jc", ["我", "的", "你", " "], 40),
}
NGRAM_METHODS = ("mle", "add-k", "mkn", "stupid-backoff")
NEURAL = {"gru": 88_585, "lstm": 113_417}  # architecture: parameters
SPLIT_TOKENS = {"train": 1000, "valid": 200, "test": 250}


def _ppl(corpus: str, model: str, n: int | None, split: str, run: str) -> float:
    """Made-up but distinct perplexities, shaped so that the report has decisions to make:
    on jaychou an n-gram wins on full perplexity and a neural model once OOVs are excluded."""
    base = {"timemachine": 6.0, "jaychou": 150.0}[corpus]
    if model == "mle" and n == 3:
        return math.inf
    if n is not None:
        value = (
            base
            * {"mle": 1.3, "add-k": 1.5, "mkn": 1.0, "stupid-backoff": 0.5}[model]
            * (1 + 1 / n)
        )
    else:
        value = base * {"gru": 0.9, "lstm": 0.95}[model] * (1.5 if corpus == "jaychou" else 1.0)
    value *= 1.05 if split == "test" else 1.0
    # the previous run: mkn was worse, gru better, the rest the same
    if run == PREV:
        value *= {"mkn": 1.02, "gru": 0.98}.get(model, 1.0)
    return value + 0.123456


def _excl(corpus: str, family: str, ppl: float) -> float:
    if CORPORA[corpus][2] == 0:
        return ppl
    return ppl * (0.8 if family == "ngram" else 0.5)


def _result_row(
    corpus: str, family: str, model: str, n: int | None, split: str, run: str
) -> dict[str, Any]:
    ppl = _ppl(corpus, model, n, split, run)
    tokens = SPLIT_TOKENS[split]
    nbytes = tokens * (3 if corpus == "jaychou" else 1)
    nats = math.log(ppl) * tokens
    neural = family == "neural"
    return {
        "experiment": EXPERIMENT,
        "corpus": corpus,
        "tokenizer": "char",
        "family": family,
        "model": model,
        "method": model,
        "n": n,
        "split": split,
        "tokens": tokens,
        "oov": CORPORA[corpus][2],
        "oov_rate": CORPORA[corpus][2] / tokens,
        "zero_prob": 7 if math.isinf(ppl) else 0,
        "nats": nats,
        "perplexity": ppl,
        "perplexity_excluding_oov": _excl(corpus, family, ppl),
        "bits_per_token": nats / math.log(2) / tokens,
        "bits_per_byte": nats / math.log(2) / nbytes,
        "bytes": nbytes,
        "parameters": NEURAL[model] if neural else None,
        "train_seconds": 12.34 if neural else 0.5,
        "eval_seconds": 0.2,
        "tokens_per_second": 54321.0 if neural else None,
        "epochs": 3 if neural else None,
        "model_key": f"{corpus}-{model}-{n}",
        "settings_json": json.dumps(
            {"layers": 1, "hidden": 128, "device": "cpu"} if neural else {}
        ),
    }


MIX_WEIGHTS = (0.4, 0.6)  # mkn n=3, gru


def _mixture_row(corpus: str, split: str, run: str) -> dict[str, Any]:
    """The mixture of mkn n=3 and gru, 3 % below the better of the two."""
    ngram = _result_row(corpus, "ngram", "mkn", 3, split, run)
    gru = _result_row(corpus, "neural", "gru", None, split, run)
    best = min(ngram, gru, key=lambda r: r["perplexity"])
    ppl = 0.97 * best["perplexity"]
    tokens, nbytes = best["tokens"], best["bytes"]
    nats = math.log(ppl) * tokens
    parts = [(ngram, "mkn3", MIX_WEIGHTS[0]), (gru, "gru", MIX_WEIGHTS[1])]
    return {
        **best,
        "family": "mixture",
        "model": "mkn3+gru",
        "method": "linear",
        "n": None,
        "nats": nats,
        "perplexity": ppl,
        "perplexity_excluding_oov": 0.97
        * min(ngram["perplexity_excluding_oov"], gru["perplexity_excluding_oov"]),
        "bits_per_token": nats / math.log(2) / tokens,
        "bits_per_byte": nats / math.log(2) / nbytes,
        "parameters": NEURAL["gru"] + 1000,
        "train_seconds": gru["train_seconds"] + ngram["train_seconds"],
        "tokens_per_second": None,
        "epochs": None,
        "model_key": f"{corpus}-mix",
        "settings_json": json.dumps(
            {
                "components": [
                    {"model_key": r["model_key"], "model": name, "family": r["family"],
                     "weight": w}
                    for r, name, w in parts
                ],
                "weights": list(MIX_WEIGHTS),
            }
        ),
    }  # fmt: skip


def fake_scores(corpus: str) -> dict[str, np.ndarray]:
    """Made-up test-split log-probabilities of mkn n=3, gru and lstm (a fixed seed)."""
    rng = np.random.default_rng(7)
    n = SPLIT_TOKENS["test"]
    return {
        model: np.log(rng.uniform(0.01, 0.9, n)) for model in ("mkn-3", "gru-None", "lstm-None")
    }


def fake_ids(corpus: str) -> np.ndarray:
    """The test split's ids: the corpus's own tokens (4..), with an EOS every 10 tokens."""
    words = CORPORA[corpus][1]
    ids = 4 + np.arange(SPLIT_TOKENS["test"]) % len(words)
    ids[9::10] = 2
    return ids.astype(np.int32)


def _write_token_scores(wh: Warehouse, corpus: str) -> None:
    from lmpipe.lm.metrics import TokenScores
    from lmpipe.lm.warehouse.token_scores import write_token_scores

    ids = fake_ids(corpus)
    for model, lp in fake_scores(corpus).items():
        scores = TokenScores(logprob=lp, oov=np.zeros(lp.size, dtype=bool))
        write_token_scores(wh, corpus, "char", f"{corpus}-{model}", "test", ids, scores)


def _write_content(wh: Warehouse, corpus: str) -> None:
    """Vocabulary and n-gram counts of orders 1..3 (ids 4.. are the corpus's own tokens)."""
    key, words, _ = CORPORA[corpus]
    tokens = ["<unk>", "<s>", "</s>", "<pad>", *words]
    vocab = pa.table(
        {
            "id": pa.array(range(len(tokens)), pa.int32()),
            "token": tokens,
            "count": pa.array([0, 0, 0, 0, *range(50, 50 - len(words), -1)], pa.int64()),
        }
    )
    write_parquet(vocab, wh.vocab_path(corpus, "char", key))
    for n in (1, 2, 3):
        grams = [[(i + j) % len(tokens) for j in range(n)] for i in range(1, len(tokens))]
        counts = [100 // (i + 1) + (5 if i == 2 else 0) for i in range(len(grams))]  # a tie at 1/2
        cols = {f"w{j + 1}": pa.array([g[j] for g in grams], pa.int32()) for j in range(n)}
        write_parquet(
            pa.table({**cols, "count": pa.array(counts, pa.int64())}),
            wh.ngrams_dir(corpus, "char", key) / f"n={n}" / "ngrams.parquet",
        )


def _write_run(
    wh: Warehouse, run: str, experiment: str, started: datetime, corpora: list[str]
) -> None:
    rows: dict[str, list[dict[str, Any]]] = {
        d: [] for d in ("corpora", "splits", "results", "epochs", "samples")
    }
    for corpus in corpora:
        key, words, oov = CORPORA[corpus]
        rows["corpora"].append(
            {
                "corpus": corpus,
                "tokenizer": "char",
                "data_key": key,
                "origin": f"/data/{corpus}.txt",
                "sha256": "ab" * 32,
                "normalize": "none",
                "min_freq": 1,
                "vocab_size": len(words) + 4,
                "replaced_bytes": 0,
            }
        )
        for split, tokens in SPLIT_TOKENS.items():
            n_oov = 0 if split == "train" else oov
            rows["splits"].append(
                {
                    "corpus": corpus,
                    "tokenizer": "char",
                    "split": split,
                    "lines": tokens // 10,
                    "tokens": tokens,
                    "types": len(words) + 1,
                    "oov": n_oov,
                    "oov_rate": n_oov / tokens,
                    "bytes": tokens * 3,
                }
            )
        for split in ("valid", "test"):
            rows["results"] += [
                _result_row(corpus, "ngram", m, n, split, run)
                for m in NGRAM_METHODS
                for n in (1, 2, 3)
            ]
            rows["results"] += [_result_row(corpus, "neural", m, None, split, run) for m in NEURAL]
            rows["results"].append(_mixture_row(corpus, split, run))
        for model in NEURAL:
            base = {
                "corpus": corpus,
                "tokenizer": "char",
                "model": model,
                "model_key": f"{corpus}-{model}",
            }
            rows["epochs"] += [
                {
                    **base,
                    "epoch": e,
                    "train_perplexity": 40.0 / e,
                    "valid_perplexity": 45.0 / e + 1,
                    "learning_rate": 0.004,
                    "grad_norm": 1.0,
                    "tokens_per_second": 5e4,
                    "seconds": 2.0,
                }
                for e in (1, 2, 3)
            ]
            rows["samples"] += [
                {
                    **base,
                    "prefix": prefix,
                    "strategy": strategy,
                    "seed": 0,
                    "text": f"{prefix} | {model} {strategy}\nnext line",
                }
                for prefix in (f"{corpus} a", f"{corpus} b")
                for strategy in ("greedy", "sample")
            ]
    counts = {d: wh.write_run_rows(d, run, r) for d, r in rows.items()}
    config = {"name": experiment, "neural": {"seed": 0, "device": "cpu"}, "generation": {"seed": 3}}
    wh.commit_run(
        run,
        {
            "experiment": experiment,
            "kind": "benchmark",
            "started_at": started,
            "finished_at": started + timedelta(seconds=90),
            "wall_seconds": 90.0,
            "status": "completed",
            "config_json": json.dumps(config),
            "code_version": "0.1.0+test",
            "environment_json": json.dumps(
                {"python": "3.11.7", "duckdb": "2.0.1", "platform": "Linux-x", "cpu_count": 2}
            ),
            "row_counts_json": json.dumps(counts),
        },
    )


def build_warehouse(home: Path) -> Warehouse:
    """The warehouse of two ``default`` runs and one later run of another experiment."""
    wh = Warehouse.at_home(home)
    for corpus in CORPORA:
        _write_content(wh, corpus)
    _write_token_scores(wh, "timemachine")
    day = datetime(2026, 1, 1, 8, 30, tzinfo=UTC)
    _write_run(wh, PREV, EXPERIMENT, day, list(CORPORA))
    _write_run(wh, CUR, EXPERIMENT, day + timedelta(days=1), list(CORPORA))
    _write_run(wh, OTHER, "ngram-timemachine", day + timedelta(days=2), ["timemachine"])
    rebuild_database(wh)
    return wh


# --------------------------------------------------------------------------- Markdown parsing


def section(md: str, heading: str) -> str:
    """From ``heading`` to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = md.index(heading + "\n")
    rest = md[start + len(heading) + 1 :]
    stop = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: stop.start()] if stop else rest


def tables(md: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in ``md`` as a list of {header: cell}."""
    out, block = [], []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            block.append(
                [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            )
        elif block:
            out.append([dict(zip(block[0], r, strict=True)) for r in block[2:]])
            block = []
    return out


def num(cell: str) -> float:
    return math.inf if cell == "inf" else float(cell.replace(",", "").removesuffix(" %"))


def rows_of(wh: Warehouse, dataset: str, run: str) -> list[dict[str, Any]]:
    return pq.read_table(wh.run_path(dataset, run)).to_pylist()


def result(
    wh: Warehouse, run: str, corpus: str, model: str, n: int | None, split: str
) -> dict[str, Any]:
    (row,) = [
        r
        for r in rows_of(wh, "results", run)
        if (r["corpus"], r["model"], r["n"], r["split"]) == (corpus, model, n, split)
    ]
    return row


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    return build_warehouse(tmp_path_factory.mktemp("report") / "home")


@pytest.fixture(scope="module")
def md(wh: Warehouse) -> str:
    text, _ = rep.render(rep.load_run(wh, CUR))
    return text


# --------------------------------------------------------------------------- numbers


def test_corpus_statistics_are_the_split_rows(wh, md):
    for corpus in CORPORA:
        (table,) = tables(section(section(md, f"## {corpus} (char tokens)"), "### Corpus"))
        rows = {r["split"]: r for r in rows_of(wh, "splits", CUR) if r["corpus"] == corpus}
        assert [t["split"] for t in table] == ["train", "valid", "test"]
        for t in table:
            r = rows[t["split"]]
            assert [
                num(t[c]) for c in ("lines", "tokens (with `</s>`)", "types", "OOV tokens", "bytes")
            ] == [r["lines"], r["tokens"], r["types"], r["oov"], r["bytes"]]
            assert num(t["OOV rate"]) == pytest.approx(100 * r["oov_rate"], abs=0.005)


def test_ngram_tables_are_the_result_rows_without_stupid_backoff(wh, md):
    for corpus, (_, _, oov) in CORPORA.items():
        found = tables(
            section(section(md, f"## {corpus} (char tokens)"), "### N-gram models (perplexity)")
        )
        columns = ["perplexity", "perplexity_excluding_oov"] if oov else ["perplexity"]
        assert len(found) == len(columns)  # the excluding-OOV table exactly where a split has OOVs
        for table, column in zip(found, columns, strict=True):
            assert [r["n"] for r in table] == ["1", "2", "3"]
            assert set(table[0]) == {"n"} | {
                f"{m} {s}" for m in ("mle", "add-k", "mkn") for s in ("valid", "test")
            }
            for r in table:
                for header, cell in r.items():
                    if header != "n":
                        model, split = header.rsplit(" ", 1)
                        expected = result(wh, CUR, corpus, model, int(r["n"]), split)[column]
                        assert num(cell) == pytest.approx(expected, abs=5e-4), (
                            corpus,
                            header,
                            r["n"],
                        )
    assert "inf" in md and "mle n=3 gives probability 0 to 7 test tokens" in md


def test_neural_table_is_the_result_rows(wh, md):
    for corpus, (_, _, oov) in CORPORA.items():
        (table,) = tables(section(section(md, f"## {corpus} (char tokens)"), "### Neural models"))
        assert [r["model"] for r in table] == ["gru", "lstm"]
        for r in table:
            test, valid = (result(wh, CUR, corpus, r["model"], None, s) for s in ("test", "valid"))
            settings = json.loads(test["settings_json"])
            assert (num(r["layers"]), num(r["hidden"])) == (settings["layers"], settings["hidden"])
            assert (num(r["parameters"]), num(r["epochs"])) == (test["parameters"], test["epochs"])
            assert num(r["train time (s)"]) == pytest.approx(test["train_seconds"], abs=0.05)
            assert num(r["tokens/s"]) == pytest.approx(test["tokens_per_second"], abs=0.5)
            assert num(r["valid ppl"]) == pytest.approx(valid["perplexity"], abs=5e-4)
            assert num(r["test ppl"]) == pytest.approx(test["perplexity"], abs=5e-4)
            assert num(r["test bits/byte"]) == pytest.approx(test["bits_per_byte"], abs=5e-5)
            assert ("test ppl excl. OOV" in r) == bool(oov)
            if oov:
                assert num(r["test ppl excl. OOV"]) == pytest.approx(
                    test["perplexity_excluding_oov"], abs=5e-4
                )


def test_most_frequent_ngrams_are_the_stored_counts(wh, md):
    (table,) = tables(
        section(
            section(md, "## timemachine (char tokens)"),
            "### Zipf's law and the most frequent n-grams",
        )
    )
    key, words, _ = CORPORA["timemachine"]
    tokens = ["<unk>", "<s>", "</s>", "<pad>", *words]
    for n in (1, 2, 3):
        stored = pq.read_table(
            wh.ngrams_dir("timemachine", "char", key) / f"n={n}" / "ngrams.parquet"
        ).to_pylist()
        stored.sort(key=lambda g: (-g["count"], *(g[f"w{j}"] for j in range(1, n + 1))))
        expected = [
            "`{}` ({:,})".format(
                "".join(tokens[g[f"w{j}"]] for j in range(1, n + 1)).replace(" ", "␣"), g["count"]
            )
            for g in stored[: rep.TOP_NGRAMS]
        ]
        assert [r[f"{n}-gram"] for r in table][: len(expected)] == expected


def _headline_best(
    wh: Warehouse, corpus: str, column: str, family: str | None = None
) -> dict[str, Any]:
    rows = [
        r
        for r in rows_of(wh, "results", CUR)
        if r["corpus"] == corpus
        and r["split"] == "test"
        and r["method"] != "stupid-backoff"
        and (r["family"] == family if family else r["family"] != "mixture")
    ]
    return min(rows, key=lambda r: r[column])


def _label(row: dict[str, Any]) -> str:
    return f"{row['method']} n={row['n']}" if row["family"] == "ngram" else row["model"]


def test_summary_names_the_best_model_by_the_stated_headline(wh, md):
    # jaychou has OOVs that <unk> never saw in training: ranked excluding them, where a neural
    # model wins although an n-gram model has the lowest full perplexity
    assert _headline_best(wh, "jaychou", "perplexity")["family"] == "ngram"
    for corpus, column, name in (
        ("timemachine", "perplexity", "test perplexity"),
        ("jaychou", "perplexity_excluding_oov", "test perplexity excluding OOV"),
    ):
        text = section(md, f"## {corpus} (char tokens)")
        best = _headline_best(wh, corpus, column)
        rival = _headline_best(
            wh, corpus, column, "ngram" if best["family"] == "neural" else "neural"
        )
        m = re.search(
            rf"\*\*Best model: (.+?)\*\*, {name} ([\d.,]+) \(([\d.]+) bits per byte over all "
            r"tokens\); the best (?:n-gram|neural) model, (.+?), has ([\d.,]+), ([\d.]+) % higher",
            text,
        )
        assert m, text[:600]
        assert (m.group(1), m.group(4)) == (_label(best), _label(rival))
        assert num(m.group(2)) == pytest.approx(best[column], abs=5e-4)
        assert num(m.group(3)) == pytest.approx(best["bits_per_byte"], abs=5e-5)
        assert num(m.group(5)) == pytest.approx(rival[column], abs=5e-4)
        assert num(m.group(6)) == pytest.approx(100 * (rival[column] / best[column] - 1), abs=0.05)
    assert "ranked by **perplexity excluding the OOV positions**" in section(
        md, "## jaychou (char tokens)"
    )
    assert "ranked by **test perplexity**" in section(md, "## timemachine (char tokens)")


def test_cross_corpus_table_compares_bits_per_byte(wh, md):
    (table,) = tables(section(md, "## Across corpora (test split, by bits per byte)"))
    assert [r["corpus"] for r in table] == sorted(
        CORPORA, key=lambda c: _headline_best(wh, c, "bits_per_byte")["bits_per_byte"]
    )
    corpora = {r["corpus"]: r for r in rows_of(wh, "corpora", CUR)}
    for r in table:
        assert num(r["vocabulary"]) == corpora[r["corpus"]]["vocab_size"]
        ng, nn = (_headline_best(wh, r["corpus"], "bits_per_byte", f) for f in ("ngram", "neural"))
        assert (r["best n-gram"], r["best neural"]) == (_label(ng), _label(nn))
        assert num(r["n-gram bits/byte"]) == pytest.approx(ng["bits_per_byte"], abs=5e-5)
        assert num(r["neural bits/byte"]) == pytest.approx(nn["bits_per_byte"], abs=5e-5)


def test_changes_against_the_previous_run_are_marked(wh, md):
    text = section(
        section(md, "## timemachine (char tokens)"), "### Change against the previous run"
    )
    assert (
        f"Previous run: `{PREV}` (code version `0.1.0+test`, the same code and configuration)"
        in text
    )
    (table,) = tables(text)
    verdicts = {}
    for r in table:
        model, _, n = r["model"].partition(" n=")
        before, now = (
            result(wh, run, "timemachine", model, int(n) if n else None, "test")["perplexity"]
            for run in (PREV, CUR)
        )
        assert (num(r["before"]), num(r["now"])) == (
            pytest.approx(before, abs=5e-4),
            pytest.approx(now, abs=5e-4),
        )
        assert num(r["change"]) == pytest.approx(now - before, abs=5e-4)
        verdicts[r["model"]] = r["verdict"]
    assert verdicts == {
        "mkn n=1": "better",
        "mkn n=2": "better",
        "mkn n=3": "better",
        "gru": "worse",
        "mkn3+gru": "worse",  # 3 % below the better of its two
    }
    # the rest did not move (mle n=3 is inf in both runs); stupid backoff is in no comparison
    assert "Unchanged: mle n=1, mle n=2, mle n=3, add-k n=1, add-k n=2, add-k n=3, lstm." in text


def test_first_run_has_no_previous_and_samples_are_escaped(wh):
    text, _ = rep.render(rep.load_run(wh, PREV))
    assert "No earlier run of this experiment." in text
    # the run of another experiment started after CUR, which is no run of its experiment
    assert "No earlier run of this experiment." in rep.render(rep.load_run(wh, OTHER))[0]
    samples = section(section(text, "## jaychou (char tokens)"), "### Generated text")
    assert "- **gru**, greedy (seed 0): jaychou a \\| gru greedy ⏎ next line" in samples
    assert samples.index("Prefix “jaychou a”") < samples.index("Prefix “jaychou b”")


def test_reproducibility_block(md):
    repro = section(md, "## Reproducibility")
    assert "`0.1.0+test`" in repro and "python 3.11.7" in repro and "duckdb 2.0.1" in repro
    assert "generation.seed = 3, neural.seed = 0" in repro and "neural device setting: cpu" in repro
    assert '"name": "default"' in repro


# --------------------------------------------------------------------------- files and figures


def _digests(reports: Path) -> dict[str, str]:
    """sha256 of the current run's report, figures and latest.md."""
    files = [
        *(reports / EXPERIMENT / f"2026-01-02-{CUR}").iterdir(),
        reports / EXPERIMENT / "latest.md",
    ]
    return {
        p.relative_to(reports).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(files)
    }


@pytest.fixture(scope="module")
def reports(wh: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    assert rep.write_report(wh, root, CUR) == root / EXPERIMENT / f"2026-01-02-{CUR}" / "report.md"
    return root


def test_rewrite_is_byte_identical_and_links_resolve(wh, reports):
    first = _digests(reports)
    assert {"default/latest.md", f"default/2026-01-02-{CUR}/ngram-jaychou-char.png"} <= set(first)
    # zipf, ngram, curves, size and time of each corpus; wins of timemachine (its token scores)
    assert sum(name.endswith(".png") for name in first) == 11
    for name in first:
        (reports / name).unlink()
    rep.write_report(wh, reports, CUR)
    assert _digests(reports) == first
    for md_path in (
        reports / EXPERIMENT / f"2026-01-02-{CUR}" / "report.md",
        reports / EXPERIMENT / "latest.md",
    ):
        links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md_path.read_text(encoding="utf-8"))
        assert len(links) == 11 and all((md_path.parent / link).is_file() for link in links)


def test_an_unchanged_figure_is_copied_from_the_previous_report_and_a_changed_one_drawn(
    wh, tmp_path, monkeypatch
):
    """A re-run whose figure inputs are the same (new run id, same rows) copies every PNG from
    the previous run's folder, byte for byte; one changed perplexity draws them again."""
    import dataclasses

    from lmpipe.lm.report import figures

    data = rep.load_run(wh, CUR)
    _, figs = rep.render(data)
    first = tmp_path / "first"
    rep.draw_figures(data, figs, first)
    manifest = json.loads((first / figures.FIGURE_MANIFEST).read_text(encoding="utf-8"))
    assert sorted(manifest) == sorted(f.name for f in figs)

    drawn: list[list[str]] = []
    monkeypatch.setattr(figures, "_draw_all", lambda d, fs, out: drawn.append([f.name for f in fs]))
    rerun = dataclasses.replace(
        data,
        run={**data.run, "run_id": "20260104-000000-dddddd"},
        results=data.results.assign(run_id="20260104-000000-dddddd"),
    )
    again = tmp_path / "again"
    rep.draw_figures(rerun, figs, again, reuse_from=first)
    assert drawn == []
    for f in figs:
        assert (again / f.name).read_bytes() == (first / f.name).read_bytes()

    results = data.results.copy()
    results.loc[results.index[0], "perplexity"] *= 1.01
    changed = tmp_path / "changed"
    rep.draw_figures(dataclasses.replace(data, results=results), figs, changed, reuse_from=first)
    assert drawn == [[f.name for f in figs]]
    assert json.loads((changed / figures.FIGURE_MANIFEST).read_text()).keys() == manifest.keys()


def test_latest_points_at_the_newest_run_of_the_experiment(wh, reports, monkeypatch):
    latest = (reports / EXPERIMENT / "latest.md").read_text(encoding="utf-8")
    assert f"Run `{CUR}`" in latest and rep.newest_run(wh) == OTHER
    monkeypatch.setattr(rep, "draw_figures", lambda *a, **k: [])  # only the Markdown matters here
    rep.write_report(wh, reports, PREV)  # an older run's report leaves latest.md alone
    assert (reports / EXPERIMENT / f"2026-01-01-{PREV}" / "report.md").exists()
    assert (reports / EXPERIMENT / "latest.md").read_text(encoding="utf-8") == latest


def test_latest_is_the_report_with_its_figures_linked_into_the_run_folder(wh, reports):
    """latest.md is the run's report relinked (not rendered twice): the same text as a render
    with the folder as figure prefix, and every figure it shows exists from its own folder."""
    import re

    latest = (reports / EXPERIMENT / "latest.md").read_text(encoding="utf-8")
    folder = f"2026-01-02-{CUR}"
    want, _ = rep.render(rep.load_run(wh, CUR), fig_prefix=folder + "/")
    assert latest == want
    targets = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", latest)
    assert len(targets) >= 6 and all(t.startswith(folder + "/") for t in targets)
    assert all((reports / EXPERIMENT / t).is_file() for t in targets)


def test_figures_are_labelled_with_one_colour_per_model(wh):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = rep.load_run(wh, CUR)
    _, figs = rep.render(data)
    assert {f.kind for f in figs} == {"zipf", "ngram", "curves", "wins", "size", "time"}
    seen: dict[str, str] = {}
    for f in figs:
        fig, ax = plt.subplots()
        rep._DRAW[f.kind](ax, data, f)
        assert f.corpus in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
        for line in ax.get_lines():
            model = line.get_label().split(" ")[0]
            if f.kind in ("ngram", "curves"):
                assert line.get_color() == rep.model_color(model)
                seen.setdefault(model, line.get_color())
                assert seen[model] == line.get_color()
        if f.kind == "zipf":
            assert ax.get_xscale() == ax.get_yscale() == "log"
        if f.kind == "ngram":
            labels = {line.get_label() for line in ax.get_lines()}
            assert {"mle", "add-k", "mkn", "gru (neural)", "lstm (neural)"} <= labels
            assert "stupid-backoff" not in labels
        plt.close(fig)
    assert set(seen) >= {"mkn", "gru", "lstm"}


def test_model_colours_are_distinct_and_stable():
    colours = [rep.model_color(m) for m in rep.MODEL_ORDER]
    assert len(set(colours)) == len(colours)
    assert rep.model_color("my-model") == rep.model_color("my-model")


def test_the_best_mixture_is_in_the_headline_with_its_gain(wh, md):
    for corpus, column in (("timemachine", "perplexity"), ("jaychou", "perplexity_excluding_oov")):
        text = section(md, f"## {corpus} (char tokens)")
        mix = _headline_best(wh, corpus, column, "mixture")
        part = min(
            (
                result(wh, CUR, corpus, "mkn", 3, "test"),
                result(wh, CUR, corpus, "gru", None, "test"),
            ),
            key=lambda r: r[column],
        )
        m = re.search(
            r"\*\*Best mixture: (.+?)\*\* \(weights mkn3 ([\d.]+), gru ([\d.]+), fit on "
            r"validation\), test perplexity(?: excluding OOV)? ([\d.,]+), ([\d.]+) % below its "
            r"best component, (.+?)\.",
            text,
        )
        assert m, text[:900]
        assert m.group(1) == "mkn3+gru" and (num(m.group(2)), num(m.group(3))) == MIX_WEIGHTS
        assert num(m.group(4)) == pytest.approx(mix[column], abs=5e-4)
        assert num(m.group(5)) == pytest.approx(100 * (1 - mix[column] / part[column]), abs=0.05)
        assert m.group(6) == _label(part)
        (table,) = tables(section(text, "### Mixtures"))
        assert [r["mixture"] for r in table] == ["mkn3+gru"]
        assert table[0]["weights"] == "mkn3 0.40, gru 0.60" and table[0]["gain"] == "3.0 %"


def test_where_each_family_wins_is_computed_from_the_token_scores(wh, md):
    text = section(md, "### Where each family wins (mkn n=3 against the neural models)")
    (buckets, *positions) = tables(text)
    scores = fake_scores("timemachine")
    ids = fake_ids("timemachine")
    counts = np.array([0, 0, 0, 0, 50, 49, 48, 47, 46])[ids]  # the vocabulary's training counts
    headers = [h for h in buckets[0] if h != "model"]
    seen = 0
    for h in headers:
        m = re.fullmatch(
            r"(rare|medium|frequent) \(seen ([\d,]+)(?:–([\d,]+))?×; ([\d,]+) tokens\)", h
        )
        assert m, h
        low, high = int(m.group(2)), int(m.group(3) or m.group(2))
        mask = (counts >= low) & (counts <= high)
        assert mask.sum() == num(m.group(4))
        seen += int(mask.sum())
        for row in buckets:
            diff = scores[f"{row['model']}-None"][mask] - scores["mkn-3"][mask]
            gain, share = re.fullmatch(r"([+-][\d.]+) \((\d+) %\)", row[h]).groups()
            assert float(gain) == pytest.approx(diff.mean(), abs=5e-4)
            assert int(share) == round(100 * (diff > 0).mean())
    assert seen == SPLIT_TOKENS["test"]  # the buckets cover every test token once
    # the positions where gru (the better neural model) most out-predicts mkn n=3, and back
    diff = scores["gru-None"] - scores["mkn-3"]
    for table, order in zip(positions, (np.argsort(-diff), np.argsort(diff)), strict=True):
        assert [int(num(r["position"])) for r in table] == order[: len(table)].tolist()
        for r in table:
            pos = int(num(r["position"]))
            assert float(r["p gru"]) == pytest.approx(
                math.exp(scores["gru-None"][pos]), rel=0.03, abs=5e-5
            )
            assert float(r["p mkn n=3"]) == pytest.approx(
                math.exp(scores["mkn-3"][pos]), rel=0.03, abs=5e-5
            )


def test_text_from_a_corpus_or_a_model_is_never_markup(wh):
    """A sample or prefix holding HTML, an image link, emphasis or a carriage return is shown
    literally: no live HTML, no remote image, no broken table row."""
    data = rep.load_run(wh, CUR)
    evil = "<script>alert(1)</script> ![x](http://example.com/x.png) *bold* a\rb | c"
    data.samples.loc[data.samples.index[0], "text"] = evil
    data.samples.loc[data.samples.index[0], "prefix"] = "<img src=x>"
    text, _ = rep.render(data)
    assert "<script>" not in text and "<img" not in text
    assert "![x](http" not in text and "*bold*" not in text
    assert "\r" not in text
    assert "&lt;script&gt;" in text and "a␍b \\| c" in text
    for bad, shown in (("a\x00b", "a␀b"), ("tab\there", "tab␉here"), ("x\x7f", "x␡")):
        assert rep_text.cell(bad) == shown and rep_text.code(bad) == f"`{shown}`"


def test_the_ui_artifacts_hold_every_figure_embedded_and_the_files_text(wh, reports):
    import base64

    from lmpipe.lm.report.artifacts import IMAGE_LINK, report_artifacts

    path = reports / EXPERIMENT / f"2026-01-02-{CUR}" / "report.md"
    text = path.read_text(encoding="utf-8")
    arts = report_artifacts(path, EXPERIMENT, CUR)
    assert [a.key for a in arts] == [
        "ppl-report-default",
        "ppl-report-default-timemachine-char",
        "ppl-report-default-jaychou-char",
    ]
    linked = [m.group(2) for m in IMAGE_LINK.finditer(text)]
    embedded = [m.group(2) for a in arts for m in IMAGE_LINK.finditer(a.markdown)]
    assert len(embedded) == len(linked) == 11
    assert all(e.startswith("data:image/png;base64,") for e in embedded)  # no relative link
    for name, uri in zip(linked, embedded, strict=True):
        assert base64.b64decode(uri.split(",", 1)[1]) == (path.parent / name).read_bytes()
    # the same text otherwise: each artifact, images put back as links, is a part of the file
    names = iter(linked)  # the artifacts hold the file's sections in its order
    for a in arts:
        back = IMAGE_LINK.sub(lambda m, it=names: f"![{m.group(1)}]({next(it)})", a.markdown)
        for part in back.split("\n## ")[1:]:
            assert "## " + part.rstrip("\n") in text
    assert (
        "## timemachine (char tokens)" in arts[1].markdown and "## jaychou" not in arts[1].markdown
    )
    assert arts[1].markdown.startswith("# Perplexity report: default\n")
    size = sum(len(a.markdown) for a in arts)
    assert size < 2_000_000


def test_the_table_artifact_has_one_row_per_model_with_the_columns_scanned_first(wh):
    from lmpipe.tasks.publish import table_rows

    rows = table_rows(rep.load_run(wh, CUR).results)
    assert list(rows[0]) == ["corpus", "tokenizer", "family", "model", "n", "valid ppl",
                             "test ppl", "test bits/byte", "parameters", "train s"]  # fmt: skip
    gru = next(r for r in rows if r["corpus"] == "timemachine" and r["model"] == "gru")
    assert gru["test ppl"] == round(
        result(wh, CUR, "timemachine", "gru", None, "test")["perplexity"], 3
    )
    assert gru["valid ppl"] == round(
        result(wh, CUR, "timemachine", "gru", None, "valid")["perplexity"], 3
    )
    assert len(rows) == len(rows_of(wh, "results", CUR)) // 2  # valid and test on one row


def test_special_tokens_are_never_bare_html(md):
    """A bare ``</s>`` or ``<unk>`` is an HTML tag to GitHub's and the Prefect UI's Markdown, which
    drop it ("tokens (with )"): the report writes them only inside code spans."""
    outside_code = re.sub(r"`[^`\n]*`", "", md.split("<details>")[0])
    assert re.findall(r"</?(?:s|unk|pad)>", outside_code) == []
    assert "tokens (with `</s>`)" in md
