"""Training: clipping, resumption equal to an uninterrupted run, divergence, budget, plateau."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import lmpipe.lm.neural.training as training
from lmpipe.lm.neural import (
    CheckpointError,
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    checkpoint_path,
    clip_gradients,
    load_checkpoint,
    load_model,
    train,
)

FP = "fingerprint-1"
VOCAB = 12  # the vocabulary of conftest.make_stream


def config(**kw) -> TrainConfig:
    base = dict(
        arch="lstm",
        embed=8,
        hidden=16,
        layers=2,
        dropout=0.2,
        epochs=2,
        seq_len=6,
        batch_size=4,
        sampling="sequential",
        optimizer="adam",
        lr=0.01,
        clip=1.0,
        seed=5,
        device="cpu",
        eval_window=32,
        # pinned: these tests are about the plateau schedule and untied weights, whatever the
        # defaults (lmpipe.lm.neural.config) are
        tied=False,
        schedule="plateau",
        embed_dropout=0.0,
        patience=None,
    )
    return TrainConfig(**(base | kw))


def run(cfg: TrainConfig, streams, **kw):
    train_stream, valid_stream = streams
    return train(cfg, train_stream, valid_stream, VOCAB, vocab_fingerprint=FP, **kw)


def test_clipping_bounds_the_global_norm() -> None:
    params = [torch.nn.Parameter(torch.zeros(3, 4)), torch.nn.Parameter(torch.zeros(5))]
    params[0].grad = torch.full((3, 4), 2.0)
    params[1].grad = torch.full((5,), -3.0)
    before = math.sqrt(12 * 4 + 5 * 9)
    assert clip_gradients(params, 1.5).item() == pytest.approx(before)
    after = torch.sqrt(sum((p.grad**2).sum() for p in params)).item()
    assert after == pytest.approx(1.5, rel=1e-5)
    assert clip_gradients(params, 10.0).item() == pytest.approx(1.5, rel=1e-5)  # below: unchanged
    assert torch.sqrt(sum((p.grad**2).sum() for p in params)).item() == pytest.approx(1.5, rel=1e-5)


@pytest.mark.parametrize(
    ("arch", "sampling"),
    [("lstm", "sequential"), ("gru-scratch", "random"), ("transformer", "random")],
)
def test_resume_equals_uninterrupted(tmp_path: Path, streams, arch: str, sampling: str) -> None:
    own = {"transformer": {"tied": True, "embed": None, "heads": 2, "context": 6, "warmup": 3}}
    cfg = config(
        arch=arch, sampling=sampling, layers=1 if "scratch" in arch else 2, **own.get(arch, {})
    )
    full, full_result = run(cfg, streams, checkpoint_dir=tmp_path / "full")

    class Killed(Exception):
        pass

    def kill_after_first(metrics: dict) -> None:
        if metrics["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        run(cfg, streams, checkpoint_dir=tmp_path / "cut", on_epoch=kill_after_first)
    torch.manual_seed(12345)  # the resumed process starts from other global RNG states
    np.random.seed(1)
    resumed, result = run(cfg, streams, checkpoint_dir=tmp_path / "cut", resume=True)
    assert result.resumed_from_epoch == 1 and result.epochs_run == 2
    assert result.best_valid_perplexity == full_result.best_valid_perplexity
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    last_full = load_checkpoint(checkpoint_path(tmp_path / "full"))["model"]
    last_cut = load_checkpoint(checkpoint_path(tmp_path / "cut"))["model"]
    assert all(torch.equal(last_full[k], last_cut[k]) for k in last_full)


def test_resume_after_more_epochs_and_refuses_other_config(tmp_path: Path, streams) -> None:
    full, _ = run(config(), streams)
    run(config(epochs=1), streams, checkpoint_dir=tmp_path)
    resumed, result = run(config(epochs=2), streams, checkpoint_dir=tmp_path, resume=True)
    assert all(
        torch.equal(a, b)
        for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True)
    )
    with pytest.raises(CheckpointError, match="lr"):
        run(config(lr=0.02), streams, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="vocabulary"):
        train(
            config(),
            streams[0],
            streams[1],
            VOCAB,
            vocab_fingerprint="other",
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_checkpoint_is_atomic_and_loads_the_best_model(tmp_path: Path, streams) -> None:
    seen: list[dict] = []
    model, result = run(config(epochs=3), streams, checkpoint_dir=tmp_path, on_epoch=seen.append)
    assert [m["epoch"] for m in seen] == [1, 2, 3]
    assert set(seen[0]) >= {
        "epoch",
        "train_perplexity",
        "valid_perplexity",
        "tokens_per_second",
        "learning_rate",
        "grad_norm",
        "seconds",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary left
    loaded, cfg, meta = load_model(checkpoint_path(tmp_path), vocab_fingerprint=FP)
    assert cfg == config(epochs=3) and meta["best_epoch"] == result.best_epoch
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )
    assert result.best_valid_perplexity == min(m["valid_perplexity"] for m in seen)
    assert result.stopped == "epochs" and result.parameters > 0 and result.tokens_per_second > 0


def test_divergence_stops_with_one_line_and_keeps_last_checkpoint(
    tmp_path: Path, streams, monkeypatch
) -> None:
    calls = {"n": 0}
    real = training.clip_gradients

    def exploding(params, max_norm):
        calls["n"] += 1
        norm = real(params, max_norm)
        return norm if calls["n"] <= n_first_epoch else torch.tensor(float("nan"))

    n_first_epoch = len(
        list(training.batches(streams[0], 4, 6, "sequential", np.random.default_rng(5)))
    )
    monkeypatch.setattr(training, "clip_gradients", exploding)
    with pytest.raises(TrainingDiverged) as err:
        run(config(epochs=3), streams, checkpoint_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "epoch 2" in msg and "learning rate" in msg and "clip" in msg
    assert err.value.epoch == 2 and err.value.checkpoint == checkpoint_path(tmp_path)
    assert load_checkpoint(checkpoint_path(tmp_path))["epoch"] == 1


def test_real_divergence_at_huge_learning_rate(streams) -> None:
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        run(
            config(
                arch="rnn-relu",
                layers=1,
                dropout=0.0,
                optimizer="sgd",
                lr=1e12,
                clip=None,
                epochs=1,
            ),
            streams,
        )


def test_plateau_decays_lr_and_early_stopping_keeps_best(streams, monkeypatch) -> None:
    ppls = iter([5.0, 6.0, 7.0, 4.0])
    monkeypatch.setattr(training, "perplexity", lambda scores: next(ppls))
    seen: list[dict] = []
    best_only, _ = run(config(epochs=1, lr_decay=0.5, patience=2), streams)
    ppls = iter([5.0, 6.0, 7.0, 4.0])
    model, result = run(config(epochs=10, lr_decay=0.5, patience=2), streams, on_epoch=seen.append)
    assert result.stopped == "early stopping" and result.epochs_run == 3 and result.best_epoch == 1
    assert [m["learning_rate"] for m in seen] == [0.01, 0.01, 0.005]
    assert all(
        torch.equal(a, b)
        for a, b in zip(best_only.state_dict().values(), model.state_dict().values(), strict=True)
    )


def test_time_budget_stops_but_trains_at_least_one_batch(streams) -> None:
    _, result = run(config(epochs=None, max_minutes=1e-9), streams)
    assert result.stopped == "time budget" and result.epochs_run == 1
    assert result.history[0]["batches"] == 1 and math.isfinite(result.best_valid_perplexity)
    _, result = run(config(epochs=None, max_minutes=0.0005), streams)
    assert result.stopped == "time budget" and result.epochs_run >= 1


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="one layer"):
        TrainConfig(arch="rnn-scratch", layers=2)
    with pytest.raises(ConfigError, match="embed == hidden"):
        TrainConfig(tied=True, embed=8, hidden=16)
    with pytest.raises(ConfigError, match="epochs, max_minutes"):
        TrainConfig(epochs=None)
    with pytest.raises(ConfigError, match="unknown"):
        TrainConfig.from_dict({"arch": "gru", "hiden": 3})
