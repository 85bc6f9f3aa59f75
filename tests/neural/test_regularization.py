"""The regularization small corpora need, each a setting: locked dropout on embeddings, between
layers and before the output; weight decay (AdamW); tied weights; warm-up and cosine or plateau
schedules; early stopping that restores the best weights; exploding losses stopped."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_train import FP, VOCAB, config, run

from lmpipe.lm.errors import ConfigError
from lmpipe.lm.neural import TorchRNNLM, TrainConfig, TrainingDiverged, train
from lmpipe.lm.neural.models_torch import LockedDropout
from lmpipe.lm.neural.training import learning_rate, make_optimizer


def test_locked_dropout_draws_one_mask_per_sequence_and_feature():
    torch.manual_seed(0)
    drop = LockedDropout(0.5).train()
    out = drop(torch.ones(7, 3, 5))  # (steps, batch, features)
    for t in range(1, 7):
        assert torch.equal(out[t], out[0])  # the same mask at every time step
    assert set(out.unique().tolist()) == {0.0, 2.0}  # kept values scaled by 1 / (1 - p)
    assert not torch.equal(out[0, 0], out[0, 1]) or not torch.equal(out[0, 1], out[0, 2])
    assert torch.equal(drop.eval()(torch.ones(7, 3, 5)), torch.ones(7, 3, 5))


@pytest.mark.parametrize("setting", ["embed_dropout", "dropout", "weight_drop"])
def test_each_dropout_acts_in_training_only(setting):
    torch.manual_seed(0)
    model = TorchRNNLM(VOCAB, "gru", 8, 8, layers=2, **{setting: 0.5})
    ids = torch.randint(4, VOCAB, (2, 6))
    model.eval()
    a, _ = model(ids)
    b, _ = model(ids)
    assert torch.equal(a, b)
    model.train()
    c, _ = model(ids)
    assert not torch.allclose(a, c)
    plain = TorchRNNLM(VOCAB, "gru", 8, 8, layers=2)
    plain.load_state_dict(model.state_dict())
    plain.train()
    assert torch.equal(plain(ids)[0], a)  # no dropout set: training changes nothing


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_weight_drop_is_one_mask_on_the_recurrent_weights_per_forward_pass(cell):
    torch.manual_seed(0)
    model = TorchRNNLM(VOCAB, cell, 8, 8, layers=1, weight_drop=0.5).train()
    ids = torch.randint(4, VOCAB, (2, 6))
    kept = model.rnn[0].weight_hh_l0.detach().clone()
    torch.manual_seed(7)
    out, _ = model(ids)
    assert torch.equal(model.rnn[0].weight_hh_l0, kept)  # the parameter itself is untouched
    out.sum().backward()
    assert model.rnn[0].weight_hh_l0.grad.abs().sum() > 0
    torch.manual_seed(7)  # the same draw, made by hand: the plain model with dropped weights
    dropped = torch.nn.functional.dropout(kept, 0.5)
    plain = TorchRNNLM(VOCAB, cell, 8, 8, layers=1)
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        plain.rnn[0].weight_hh_l0.copy_(dropped)
    assert torch.allclose(plain.eval()(ids)[0], out, atol=1e-6)
    with pytest.raises(ConfigError, match="weight_drop"):
        TrainConfig(arch="rnn-scratch", tied=False, weight_drop=0.5)


def test_tied_weights_share_one_tensor_and_weight_decay_uses_adamw():
    cfg = TrainConfig(arch="lstm", embed=8, hidden=8, tied=True, optimizer="adamw",
                      weight_decay=0.1)  # fmt: skip
    model = TorchRNNLM(VOCAB, "lstm", 8, 8, tied=True)
    assert model.decoder.weight is model.embedding.weight
    opt = make_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["weight_decay"] == 0.1


def test_learning_rate_schedules_by_hand():
    lr = TrainConfig(lr=1.0, warmup=4, schedule="plateau")
    assert [learning_rate(lr, s, None, 0.0, 1.0) for s in range(6)] == [
        0.25, 0.5, 0.75, 1.0, 1.0, 1.0,
    ]  # fmt: skip
    assert learning_rate(lr, 10, None, 0.0, 0.25) == 0.25  # two plateaus of lr_decay 0.5
    cos = TrainConfig(lr=2.0, schedule="cosine", min_lr=0.0)
    assert learning_rate(cos, 0, 10, 0.0, 1.0) == 2.0
    assert learning_rate(cos, 5, 10, 0.0, 1.0) == pytest.approx(1.0)
    assert learning_rate(cos, 10, 10, 0.0, 1.0) == pytest.approx(0.0)
    floor = TrainConfig(lr=2.0, schedule="cosine", min_lr=0.1)
    assert learning_rate(floor, 10, 10, 0.0, 1.0) == pytest.approx(0.2)
    assert learning_rate(floor, 99, 10, 0.0, 1.0) == pytest.approx(0.2)  # never below the floor
    # only a time budget: the schedule follows the fraction of it spent
    assert learning_rate(floor, 7, None, 0.5, 1.0) == pytest.approx(0.2 + 1.8 * 0.5)
    # warm-up and cosine together: the warm-up factor times the cosine factor
    both = TrainConfig(lr=1.0, warmup=2, schedule="cosine", min_lr=0.0)
    assert learning_rate(both, 0, 4, 0.0, 1.0) == pytest.approx(0.5 * 1.0)
    assert learning_rate(both, 2, 4, 0.0, 1.0) == pytest.approx(0.5)


def test_cosine_schedule_is_applied_per_update_and_resumes_exactly(tmp_path: Path, streams):
    cfg = config(schedule="cosine", warmup=3, epochs=3, lr=0.02, embed_dropout=0.1)
    rates: list[float] = []
    full, _ = run(cfg, streams, checkpoint_dir=tmp_path / "full", on_epoch=rates.append)
    lrs = [r["learning_rate"] for r in rates]  # each epoch's first update
    assert lrs[0] == pytest.approx(0.02 / 3) and lrs[1] > lrs[2]

    _killed_after_epoch_2(cfg, streams, tmp_path / "cut")
    resumed, _ = run(cfg, streams, checkpoint_dir=tmp_path / "cut", resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_early_stopping_restores_the_best_epochs_weights(streams):
    seen: list[dict] = []
    cfg = config(epochs=12, patience=2, lr=0.05, optimizer="sgd")
    model, result = run(cfg, streams, on_epoch=seen.append)
    best = min(seen, key=lambda r: r["valid_perplexity"])
    assert result.best_epoch == best["epoch"]
    from lmpipe.lm.neural import evaluate, perplexity

    again = perplexity(evaluate(model, streams[1], cfg.eval_window))
    assert again == pytest.approx(best["valid_perplexity"], rel=1e-12)


def test_a_finite_but_exploding_loss_is_divergence(streams):
    """A loss ten times a uniform guess's (a perplexity of V^10) has ruined the weights even
    while it is a number: stopped as divergence, not left to overflow later."""
    cfg = config(optimizer="sgd", lr=1e9, clip=None, epochs=3)
    with pytest.raises(TrainingDiverged, match="lower the learning rate") as e:
        train(cfg, *streams, VOCAB, vocab_fingerprint=FP)
    assert "\n" not in str(e.value)
    assert 10 * math.log(VOCAB) < 1e3  # the bound is far below float overflow


@pytest.mark.parametrize("arch", ["lstm", "rnn-scratch"])
def test_amp_on_cpu_is_a_bf16_output_layer_and_evaluates_in_fp32(streams, arch, monkeypatch):
    """On a CPU with native bf16, --amp computes the output layer's products in bf16 (the
    recurrence and the softmax stay fp32): a different but close training; without native bf16
    it is exactly the fp32 training."""
    from lmpipe.lm.neural import device as device_module
    from lmpipe.lm.neural import evaluate, perplexity, training

    made: list[bool] = []  # the bf16 flag of each training's loss

    class Spy(training.LinearCrossEntropy):
        def __init__(self, bf16: bool = False) -> None:
            made.append(bf16)
            super().__init__(bf16)

    monkeypatch.setattr(training, "LinearCrossEntropy", Spy)
    scratch = {"embed": None, "layers": 1, "dropout": 0.0} if arch == "rnn-scratch" else {}
    _, fp32 = run(config(arch=arch, epochs=1, **scratch), streams)
    for native in (True, False):
        monkeypatch.setattr(training, "bf16_autocast_supported", lambda d, n=native: n)
        cfg = config(arch=arch, amp=True, epochs=1, **scratch)
        model, result = run(cfg, streams)
        assert made[-1] is native
        if native:
            assert result.best_valid_perplexity != fp32.best_valid_perplexity
            assert result.best_valid_perplexity == pytest.approx(fp32.best_valid_perplexity, 0.05)
        else:
            assert result.best_valid_perplexity == fp32.best_valid_perplexity
        assert all(p.dtype == torch.float32 for p in model.parameters())
        again = perplexity(evaluate(model, streams[1], cfg.eval_window))  # fp32
        assert again == pytest.approx(result.best_valid_perplexity, rel=1e-12)
    assert isinstance(device_module.bf16_autocast_supported(torch.device("cpu")), bool)


def test_weight_average_by_hand():
    from lmpipe.lm.neural.averaging import WeightAverage

    w = torch.nn.Parameter(torch.zeros(2))
    avg = WeightAverage([w], decay=0.1)  # below the ramp (2/11, 3/12, ...): d = 0.1 throughout
    with torch.no_grad():
        w.fill_(10.0)
    avg.update()
    assert avg.average[0].tolist() == pytest.approx([9.0, 9.0])  # 0 + 0.9 * (10 - 0)
    with torch.no_grad():
        w.fill_(0.0)
    avg.update()
    assert avg.average[0].tolist() == pytest.approx([0.9, 0.9])  # 9 + 0.9 * (0 - 9)
    with avg.applied():
        assert w.tolist() == pytest.approx([0.9, 0.9])
    assert w.tolist() == [0.0, 0.0]  # its own weights back after the block

    ramped = WeightAverage([w], decay=0.99)  # the first update's d is 2/11, not 0.99
    with torch.no_grad():
        w.fill_(11.0)
    ramped.update()
    assert ramped.average[0].tolist() == pytest.approx([9.0, 9.0])  # 11 * (1 - 2/11)


def test_weight_average_is_what_is_validated_kept_and_resumed(tmp_path: Path, streams):
    from lmpipe.lm.neural import evaluate, perplexity

    cfg = config(epochs=3, lr=0.02, ema=0.9)
    seen: list[dict] = []
    full, result = run(cfg, streams, checkpoint_dir=tmp_path / "full", on_epoch=seen.append)
    kept = perplexity(evaluate(full, streams[1], cfg.eval_window))
    assert kept == pytest.approx(result.best_valid_perplexity, rel=1e-12)
    plain, plain_result = run(config(epochs=3, lr=0.02), streams)
    assert result.best_valid_perplexity != plain_result.best_valid_perplexity
    assert [r["train_perplexity"] for r in seen] == pytest.approx(
        [r["train_perplexity"] for r in plain_result.history], rel=1e-12
    )  # the same updates: only the weights validated and kept differ

    _killed_after_epoch_2(cfg, streams, tmp_path / "cut")
    resumed, again = run(cfg, streams, checkpoint_dir=tmp_path / "cut", resume=True)
    assert again.best_valid_perplexity == result.best_valid_perplexity
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class _Killed(Exception):
    pass


def _killed_after_epoch_2(cfg: TrainConfig, streams, checkpoint_dir: Path) -> None:
    """A training of ``cfg`` stopped by an exception right after epoch 2's checkpoint."""

    def kill(metrics: dict) -> None:
        if metrics["epoch"] == 2:
            raise _Killed

    with pytest.raises(_Killed):
        run(cfg, streams, checkpoint_dir=checkpoint_dir, on_epoch=kill)
