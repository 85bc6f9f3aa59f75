"""Step: interpolate stored models of one corpus (their token scores), weights fit on validation.

A mixture is a model of its own: a content key (its components' keys), ``results`` rows
(``family = 'mixture'``, its weights in ``settings_json``) and token scores. Its cost is its
components' (the parameters and training time of each, added up).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from lmpipe.lm.errors import ConfigError
from lmpipe.lm.ingest import IngestResult
from lmpipe.lm.metrics import TokenScores, summarize
from lmpipe.lm.mixture import fit_weights, mix_logprob
from lmpipe.lm.steps.cache import cached, model_key
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.ngram import EVAL_SPLITS
from lmpipe.lm.warehouse.token_scores import (
    has_token_scores,
    read_token_scores,
    write_token_scores,
)

FIT_SPLIT = "valid"


def component_label(result: dict[str, Any]) -> str:
    """A model's short name in a mixture's: ``mkn5``, ``gru``, ``mkn5+gru``."""
    if result.get("family") == "ngram":
        return f"{result['method']}{result['n']}"
    return str(result["model"])


def mix_models(
    home: Home, ing: IngestResult, components: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The linear mixture of ``components`` (results of models evaluated on ``ing``'s splits,
    each with its ``model_key``): weights by EM on validation, then every split scored."""
    if len(components) < 2:
        raise ConfigError("a mixture needs at least two models")
    keys = [str(c["model_key"]) for c in components]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"a model appears twice in the mixture: {', '.join(keys)}")
    splits = [s for s in EVAL_SPLITS if s in ing.splits]
    if FIT_SPLIT not in splits:
        raise ConfigError(f"corpus {ing.corpus!r} has no validation split to fit weights on")
    wh = home.warehouse
    key = model_key("mixture", ing.key, {"components": keys, "fit": FIT_SPLIT})
    out_dir = home.models_dir / "mixture" / key

    def compute() -> dict[str, Any]:
        t0 = time.perf_counter()
        read = {
            split: [read_token_scores(wh, ing.corpus, ing.tokenizer, k, split) for k in keys]
            for split in splits
        }
        fit = fit_weights([s.logprob for _, s in read[FIT_SPLIT]])
        metrics: dict[str, Any] = {}
        files = []
        for split in splits:
            ids, first = read[split][0]
            lp = mix_logprob([s.logprob for _, s in read[split]], fit.weights)
            scores = TokenScores(logprob=lp, oov=first.oov)
            metrics[split] = summarize(scores, ing.splits[split].bytes).as_dict()
            path = write_token_scores(wh, ing.corpus, ing.tokenizer, key, split, ids, scores)
            files.append(str(path))
        weights = [float(w) for w in fit.weights]
        return {
            "family": "mixture",
            "model": "+".join(component_label(c) for c in components),
            "method": "linear",
            "n": None,
            "model_key": key,
            "params": {
                "components": [
                    {
                        "model_key": k,
                        "model": component_label(c),
                        "family": c.get("family"),
                        "weight": w,
                    }
                    for k, c, w in zip(keys, components, weights, strict=True)
                ],
                "weights": weights,
                "fit_split": FIT_SPLIT,
                "em_iterations": fit.iterations,
            },
            "metrics": metrics,
            "parameters": sum(int(c.get("parameters") or 0) for c in components),
            "train_seconds": sum(float(c.get("train_seconds") or 0.0) for c in components),
            "eval_seconds": time.perf_counter() - t0,
            "files": files,
        }

    return cached(
        out_dir,
        compute,
        accept=lambda r: has_token_scores(wh, ing.corpus, ing.tokenizer, key, splits),
    )


def default_mixtures(results: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The mixtures an experiment records for one corpus: the best n-gram model by validation
    perplexity with each neural model, and with all of them together when there are several.
    Only normalized n-gram models qualify (a mixture of unnormalized ones is no distribution),
    and only final neural models (tuning candidates have no test scores)."""
    ngrams = [
        r for r in results
        if r.get("family") == "ngram" and r.get("normalized", True) and "valid" in r["metrics"]
    ]  # fmt: skip
    neural = [
        r for r in results
        if r.get("family") == "neural" and r.get("role", "final") == "final"
        and "valid" in r["metrics"]
    ]  # fmt: skip
    if not ngrams or not neural:
        return []
    best = min(ngrams, key=lambda r: r["metrics"]["valid"]["perplexity"])
    out = [[best, r] for r in neural]
    if len(neural) > 1:
        out.append([best, *neural])
    return out


# What a mixture takes of each component's result: enough to name it, find its token scores and
# add up its cost (not its curves or samples).
COMPONENT_FIELDS = ("family", "model", "method", "n", "model_key", "parameters", "train_seconds")


def component(result: dict[str, Any]) -> dict[str, Any]:
    """A model's result (or a results row) as a mixture's component; ``n`` an int or None."""
    out = {k: result.get(k) for k in COMPONENT_FIELDS}
    n = out["n"]
    out["n"] = int(n) if n is not None and n == n else None  # NaN: a neural row read by pandas
    return out


def mix_run(
    home: Home,
    run_id: str,
    models: Sequence[str] = (),
    corpus: str | None = None,
) -> list[tuple[IngestResult, dict[str, Any]]]:
    """Mixtures of a stored run's models, per corpus of the run (or ``corpus`` alone):
    ``models`` named as mixtures name their parts (``mkn5``, ``gru``) or by model key; none:
    the experiment's default mixtures. Returns the components' results (as the run recorded
    them) and each mixture's, with their ingests."""
    import pyarrow.parquet as pq

    from lmpipe.lm.errors import WarehouseError
    from lmpipe.lm.ingest import stored_ingest
    from lmpipe.lm.ngram.registry import SMOOTHING

    wh = home.warehouse
    if run_id not in wh.committed_runs():
        raise WarehouseError(f"run {run_id!r} is not a completed run in {wh.root}")
    corpora = pq.read_table(wh.run_path("corpora", run_id)).to_pylist()
    rows = [
        r for r in pq.read_table(wh.run_path("results", run_id)).to_pylist()
        if r.get("role", "final") == "final" and r["family"] in ("ngram", "neural")
    ]  # fmt: skip
    if corpus is not None and corpus not in {c["corpus"] for c in corpora}:
        names = ", ".join(sorted({c["corpus"] for c in corpora}))
        raise ConfigError(f"run {run_id} has no corpus {corpus!r}; it has: {names}")
    out = []
    for c in corpora:
        if corpus is not None and c["corpus"] != corpus:
            continue
        mine = [r for r in rows if (r["corpus"], r["tokenizer"]) == (c["corpus"], c["tokenizer"])]
        results: dict[str, dict[str, Any]] = {}
        for r in mine:
            res = results.setdefault(
                str(r["model_key"]),
                {**component(r), "metrics": {}, "role": "final",
                 "normalized": SMOOTHING[r["method"]].normalized if r["family"] == "ngram"
                 else True,
                 "params": json.loads(r["settings_json"] or "{}"),
                 "eval_seconds": r["eval_seconds"], "tokens_per_second": r["tokens_per_second"],
                 "epochs_run": r["epochs"], "device": r["device"]},
            )  # fmt: skip
            res["metrics"][r["split"]] = r
        if models:
            chosen = [_find(results, name, c["corpus"]) for name in models]
            bad = [component_label(r) for r in chosen if not r["normalized"]]
            if bad:
                raise ConfigError(
                    f"{', '.join(bad)}: its scores do not sum to one, so it cannot be mixed"
                )
            groups = [chosen]
        else:
            groups = default_mixtures(list(results.values()))
        if not groups:
            continue
        ing = stored_ingest(wh, c["corpus"], c["tokenizer"], c["data_key"])
        parts_of_all = {str(p["model_key"]): p for parts in groups for p in parts}
        out += [(ing, {k: v for k, v in p.items() if k != "normalized"})
                for p in parts_of_all.values()]  # fmt: skip
        for parts in groups:
            out.append((ing, mix_models(home, ing, [component(p) for p in parts])))
    if not out:
        raise ConfigError(
            f"run {run_id} has nothing to mix: a mixture needs an n-gram and a neural model of "
            "one corpus (or --model twice or more)"
        )
    return out


def _find(results: dict[str, dict[str, Any]], name: str, corpus: str) -> dict[str, Any]:
    if name in results:
        return results[name]
    found = [r for r in results.values() if component_label(r) == name]
    if not found:
        known = ", ".join(sorted({component_label(r) for r in results.values()}))
        raise ConfigError(f"no model {name!r} of {corpus} in the run; it has: {known}")
    return found[0]
