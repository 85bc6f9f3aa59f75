"""Linear mixtures (lm.mixture, lm.steps.mixture) and per-token scores as data: weights worked
out by hand, the stored token scores summing to each results row's nats, and a mixture's rows
and files in the warehouse."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from lmpipe.lm.errors import ConfigError
from lmpipe.lm.mixture import fit_weights, mix_logprob
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.ingest import ingest_corpus
from lmpipe.lm.steps.mixture import default_mixtures, mix_models
from lmpipe.lm.steps.neural import train_neural
from lmpipe.lm.steps.ngram import evaluate_ngram
from lmpipe.lm.warehouse.token_scores import read_token_scores


def test_em_finds_the_weight_worked_out_by_hand():
    # log L(l) = ln(0.6 l + 0.2 (1-l)) + ln(0.2 l + 0.4 (1-l)); dL/dl = 0 at l = 3/4, where the
    # two tokens get 0.5 and 0.25
    a, b = np.log([0.6, 0.2]), np.log([0.2, 0.4])
    fit = fit_weights([a, b], tol=1e-12)
    assert fit.weights == pytest.approx([0.75, 0.25], abs=1e-6)
    assert np.exp(mix_logprob([a, b], fit.weights)) == pytest.approx([0.5, 0.25], abs=1e-6)
    assert fit.heldout_logprob == pytest.approx(math.log(0.5 * 0.25), abs=1e-9)


def test_symmetric_models_share_the_weight_and_a_dominated_one_gets_none():
    a, b = np.log([0.5, 0.1]), np.log([0.1, 0.5])
    assert fit_weights([a, b]).weights == pytest.approx([0.5, 0.5])
    better, worse = np.log([0.8, 0.6]), np.log([0.2, 0.3])
    assert fit_weights([better, worse], tol=1e-10).weights[1] == pytest.approx(0.0, abs=1e-6)


def test_a_zero_probability_is_covered_by_the_other_model():
    a = np.array([math.log(0.5), -math.inf])
    b = np.array([math.log(0.25), math.log(0.5)])
    fit = fit_weights([a, b], tol=1e-12)
    mixed = mix_logprob([a, b], fit.weights)
    assert np.isfinite(mixed).all()
    # with l on a: ln(0.5 l + 0.25 (1-l)) + ln(0.5 (1-l)) is largest at l = 0 (d/dl < 0 there);
    # EM approaches a boundary optimum slowly, so the weight is near 0 and the likelihood at it
    assert fit.weights == pytest.approx([0.0, 1.0], abs=1e-3)
    assert fit.heldout_logprob == pytest.approx(math.log(0.25 * 0.5), abs=1e-3)
    # every model giving 0 stays 0
    assert mix_logprob([a, a], [0.5, 0.5])[1] == -math.inf


def test_mixing_streams_of_different_lengths_is_refused():
    with pytest.raises(ValueError, match="different lengths"):
        fit_weights([np.zeros(3), np.zeros(4)])
    with pytest.raises(ValueError, match="at least two"):
        fit_weights([np.zeros(3)])
    with pytest.raises(ValueError, match="summing to 1"):
        mix_logprob([np.zeros(2), np.zeros(2)], [0.7, 0.7])


@pytest.fixture
def evaluated(tmp_path, corpora_dir):
    """A slice of The Time Machine: a unigram, a trigram and a small GRU, evaluated."""
    text = (corpora_dir / "timemachine.txt").read_text(encoding="utf-8").splitlines()[:800]
    path = tmp_path / "tm.txt"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    home = Home(tmp_path / "home")
    ing = ingest_corpus(home, {"name": "tm", "path": str(path)}, "char", {"min_freq": 1})
    uni = evaluate_ngram(home, ing, "mkn", 1)
    tri = evaluate_ngram(home, ing, "mkn", 3)
    gru = train_neural(
        home, ing,
        {"arch": "gru", "hidden": 16, "epochs": 1, "seq_len": 16, "batch_size": 8,
         "tied": True, "dropout": 0.0, "embed_dropout": 0.0, "embed": None, "device": "cpu",
         "layers": 1, "lr": 0.004, "clip": 1.0, "optimizer": "adam", "weight_decay": 0.0,
         "schedule": "cosine", "warmup": 0, "lr_decay": 1.0, "min_lr": 0.05, "patience": 3,
         "sampling": "sequential", "seed": 0, "amp": False, "eval_window": 256,
         "max_minutes": None},
    )  # fmt: skip
    return home, ing, {"uni": uni, "tri": tri, "gru": gru}


def test_stored_token_scores_sum_to_each_models_nats(evaluated):
    home, ing, models = evaluated
    for result in models.values():
        for split in ("valid", "test"):
            ids, scores = read_token_scores(
                home.warehouse, "tm", "char", result["model_key"], split
            )
            m = result["metrics"][split]
            assert len(ids) == m["tokens"]
            assert -scores.logprob.sum() == pytest.approx(m["nats"], rel=1e-6)
            stream = pq.read_table(ing.splits[split].path, columns=["id"]).column("id")
            assert ids.tolist() == stream.to_pylist()  # position by position, the split's stream


def test_a_mixture_is_at_least_as_good_as_each_component_on_validation(evaluated):
    home, ing, models = evaluated
    mix = mix_models(home, ing, [models["tri"], models["gru"]])
    assert mix["family"] == "mixture" and mix["model"] == "mkn3+gru"
    weights = mix["params"]["weights"]
    assert sum(weights) == pytest.approx(1.0) and all(0 < w < 1 for w in weights)
    # (mkn's nats are KenLM's float32 sentence sums: equal to the stored scores' to 1e-7)
    best = min(models["tri"]["metrics"]["valid"]["nats"], models["gru"]["metrics"]["valid"]["nats"])
    assert mix["metrics"]["valid"]["nats"] <= best * (1 + 1e-7)
    # the mixture's own token scores: the weighted sum of its components' probabilities
    _, mixed = read_token_scores(home.warehouse, "tm", "char", mix["model_key"], "test")
    _, tri = read_token_scores(home.warehouse, "tm", "char", models["tri"]["model_key"], "test")
    _, gru = read_token_scores(home.warehouse, "tm", "char", models["gru"]["model_key"], "test")
    expect = weights[0] * np.exp(tri.logprob) + weights[1] * np.exp(gru.logprob)
    assert np.exp(mixed.logprob) == pytest.approx(expect, rel=1e-12)
    assert -mixed.logprob.sum() == pytest.approx(mix["metrics"]["test"]["nats"], rel=1e-12)
    # computed once: asked again, the stored result
    assert mix_models(home, ing, [models["tri"], models["gru"]])["cached"] is True


def test_the_default_mixtures_take_the_best_ngram_by_validation(evaluated):
    _, _, models = evaluated
    second = {**models["gru"], "model": "lstm", "model_key": "other"}
    mixes = default_mixtures([models["uni"], models["tri"], models["gru"], second])
    assert [[r["model_key"] for r in m] for m in mixes] == [
        [models["tri"]["model_key"], models["gru"]["model_key"]],
        [models["tri"]["model_key"], "other"],
        [models["tri"]["model_key"], models["gru"]["model_key"], "other"],
    ]
    assert default_mixtures([models["uni"], models["tri"]]) == []  # no neural model: none


def test_a_mixture_refuses_a_model_twice_or_alone(evaluated):
    home, ing, models = evaluated
    with pytest.raises(ConfigError, match="twice"):
        mix_models(home, ing, [models["tri"], models["tri"]])
    with pytest.raises(ConfigError, match="at least two"):
        mix_models(home, ing, [models["tri"]])


def test_token_scores_are_a_view(evaluated):
    from lmpipe.lm.warehouse import read_only_connection

    home, _, models = evaluated
    con: duckdb.DuckDBPyConnection = read_only_connection(home.warehouse)
    rows = con.execute(
        "SELECT model_key, split, count(*), sum(logprob) FROM token_scores "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    by = {(k, s): (n, total) for k, s, n, total in rows}
    for result in models.values():
        for split in ("valid", "test"):
            n, total = by[(result["model_key"], split)]
            assert n == result["metrics"][split]["tokens"]
            assert -total == pytest.approx(result["metrics"][split]["nats"], rel=1e-6)
