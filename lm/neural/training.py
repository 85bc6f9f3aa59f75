"""Train one recurrent language model: d2l's loop (truncated BPTT over sequential or random
windows, gradient clipping) plus what a long run needs — Adam/AdamW, learning-rate decay on a
validation plateau or a cosine schedule, an optional moving average of the weights
(``lmpipe.lm.neural.averaging``), early stopping, a wall-clock budget, divergence detection, an
atomic checkpoint after every epoch with exact resumption, and the weights of the best
validation perplexity kept and returned.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmpipe.lm.errors import ConfigError, TrainingError
from lmpipe.lm.neural.averaging import WeightAverage
from lmpipe.lm.neural.batching import batches, num_batches
from lmpipe.lm.neural.checkpoint import (
    FORMAT,
    CheckpointError,
    capture_rng,
    checkpoint_path,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from lmpipe.lm.neural.config import TrainConfig, resumable_changes
from lmpipe.lm.neural.device import bf16_autocast_supported, resolve_device
from lmpipe.lm.neural.evaluation import evaluate, perplexity
from lmpipe.lm.neural.factory import build_model
from lmpipe.lm.neural.models import LanguageModel, State, count_parameters, detach_state
from lmpipe.lm.neural.output_loss import LinearCrossEntropy

EpochCallback = Callable[[dict[str, Any]], None]


EXPLODED_LOSS_FACTOR = 10.0


def _exp(x: float) -> float:
    """exp that says ``inf`` instead of raising OverflowError (a perplexity is printed, not
    computed with)."""
    return math.exp(x) if x < 709.0 else math.inf


class TrainingDiverged(TrainingError):
    """The loss or gradient norm became NaN/inf; the last good checkpoint (if any) is kept."""

    def __init__(self, message: str, epoch: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class TrainResult:
    """``stopped``: ``epochs`` | ``time budget`` | ``early stopping``. ``tokens_per_second``
    counts training tokens over training time (validation excluded), all epochs."""

    best_epoch: int
    best_valid_perplexity: float
    epochs_run: int
    wall_seconds: float
    tokens_per_second: float
    parameters: int
    stopped: str
    resumed_from_epoch: int
    history: list[dict[str, Any]] = field(repr=False)


def make_optimizer(config: TrainConfig, model: LanguageModel) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def learning_rate(
    config: TrainConfig, step: int, planned: int | None, spent: float, scale: float
) -> float:
    """The learning rate of update ``step`` (0-based): ``lr`` warmed up linearly over the first
    ``warmup`` updates, then under ``schedule``: ``plateau`` multiplies it by ``scale`` (the
    product of ``lr_decay`` over the epochs without improvement so far); ``cosine`` decays it
    from ``lr`` to ``lr * min_lr`` along half a cosine over the planned updates (``epochs`` x
    batches), or over the time budget when only ``max_minutes`` is given (``spent``: its used
    fraction). Loshchilov & Hutter 2017 (SGDR), without restarts."""
    lr = config.lr * min(1.0, (step + 1) / config.warmup) if config.warmup else config.lr
    if config.schedule == "plateau":
        return lr * scale
    progress = step / planned if planned else spent
    floor = config.min_lr
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def clip_gradients(params: list[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Scale gradients so that their global L2 norm is at most ``max_norm`` (None: leave them);
    returns the norm before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if max_norm is not None:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch (CPU and CUDA); return the batch iterator's generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _check_resumable(
    ckpt: dict[str, Any], config: TrainConfig, vocab_size: int, fingerprint: str, path: Path
) -> None:
    if ckpt["vocab_fingerprint"] != fingerprint or ckpt["vocab_size"] != vocab_size:
        raise CheckpointError(f"cannot resume {path}: it was trained on another vocabulary")
    old, new = ckpt["config"], config.as_dict()
    free = resumable_changes(new)
    changed = sorted(k for k in new if k not in free and old.get(k) != new[k])
    if changed:
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed)
        raise CheckpointError(f"cannot resume {path} with a different configuration ({diff})")


def _diverged(
    what: str, value: float, epoch: int, batch: int, config: TrainConfig, ckpt: Path | None
) -> TrainingDiverged:
    kept = (
        f"last good checkpoint: epoch {epoch - 1} in {ckpt}"
        if ckpt and epoch > 1
        else "no checkpoint kept"
    )
    clip = f"clip={config.clip}" if config.clip is not None else "no clipping (set clip, e.g. 1.0)"
    msg = (
        f"training diverged in epoch {epoch}, batch {batch}: {what} became {value}; "
        f"lower the learning rate (lr={config.lr:g}) or clip gradients ({clip}); {kept}"
    )
    return TrainingDiverged(msg, epoch, ckpt if epoch > 1 else None)


def _flat(h: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, steps, dim) features and (batch, steps) targets as rows for the loss; a model
    whose features are a transposed view of a step-major tensor (the from-scratch ones) is read
    step-major, so that nothing is copied (the mean loss is the same)."""
    if not h.is_contiguous() and h.transpose(0, 1).is_contiguous():
        return h.transpose(0, 1).flatten(0, 1), y.t().flatten()
    return h.flatten(0, 1), y.flatten()


def train(
    config: TrainConfig,
    train_stream: np.ndarray,
    valid_stream: np.ndarray,
    vocab_size: int,
    *,
    vocab_fingerprint: str,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    threads: int | None = None,
) -> tuple[LanguageModel, TrainResult]:
    """Train ``config.arch`` on ``train_stream``, select on ``valid_stream`` (exact evaluation);
    return the model with the best validation perplexity and a summary.

    With ``checkpoint_dir`` a checkpoint is written there after every epoch (before
    ``on_epoch`` is called); ``resume=True`` continues from it (or starts afresh if there is
    none) and, on CPU, ends with exactly the weights of an uninterrupted run.
    """
    wall_start = time.perf_counter()
    device = resolve_device(config.device, threads)
    window = config.window  # seq_len, or the transformer's context
    if num_batches(len(train_stream), config.batch_size, window) < 1:
        what = "context" if window != config.seq_len else "seq-len"
        raise ConfigError(
            f"the training split ({len(train_stream)} tokens) is too short for one batch of "
            f"batch_size x {what} = {config.batch_size} x {window} tokens; lower "
            f"--batch-size or --{what}"
        )
    if len(valid_stream) == 0:
        raise ValueError("the validation stream is empty")
    rng = seed_everything(config.seed)
    model = build_model(config, vocab_size).to(device)
    optimizer = make_optimizer(config, model)
    params = [p for p in model.parameters() if p.requires_grad]
    # validation, early stopping and the model returned see the averaged weights (if any)
    average = WeightAverage(params, config.ema) if config.ema else None
    ckpt_file = checkpoint_path(checkpoint_dir) if checkpoint_dir is not None else None

    epoch, best_epoch, bad_epochs, elapsed_before, step, lr_scale = 0, 0, 0, 0.0, 0, 1.0
    best_ppl = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = []
    if resume and ckpt_file is not None and ckpt_file.exists():
        ckpt = load_checkpoint(ckpt_file)
        _check_resumable(ckpt, config, vocab_size, vocab_fingerprint, ckpt_file)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        restore_rng(ckpt["rng"], rng)
        epoch, best_epoch, bad_epochs = ckpt["epoch"], ckpt["best_epoch"], ckpt["bad_epochs"]
        best_ppl, best_state = ckpt["best_valid_perplexity"], ckpt["best_model"]
        elapsed_before, history = ckpt["elapsed_seconds"], ckpt["history"]
        step, lr_scale = ckpt["step"], ckpt["lr_scale"]
        if average is not None:
            average.load_state_dict(ckpt["average"])
    resumed_from = epoch
    per_epoch = num_batches(len(train_stream), config.batch_size, window)
    planned = config.epochs * per_epoch if config.epochs is not None else None

    # A loss this far above a uniform guess's (ln V nats) has exploded, finite or not: the
    # weights are ruined even if the loss is still a float (a perplexity of V^10 and more).
    exploded = EXPLODED_LOSS_FACTOR * math.log(vocab_size)
    budget = config.max_minutes * 60.0 if config.max_minutes is not None else math.inf
    # --amp, bf16 matmuls in training only (evaluation stays fp32). On CUDA autocast; on a CPU
    # with native bf16 only the output layer's products, most of the work at 10k words:
    # autocast's bf16 recurrence was no faster there and cost 0.7 % validation perplexity
    # after one PTB epoch, the output layer alone stays within the seeds' noise
    # (lmpipe.lm.neural.output_loss)
    use_amp = config.amp and bf16_autocast_supported(device)
    autocast = use_amp and device.type != "cpu"
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast)
    output_loss = LinearCrossEntropy(bf16=use_amp and not autocast)

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - wall_start

    def stop_reason(out_of_time: bool) -> str | None:
        if config.epochs is not None and epoch >= config.epochs:
            return "epochs"
        if out_of_time or (epoch >= 1 and elapsed() >= budget):  # the first epoch always runs
            return "time budget"
        if config.patience and bad_epochs >= config.patience:
            return "early stopping"
        return None

    out_of_time = False
    while (stopped := stop_reason(out_of_time)) is None:
        epoch += 1
        epoch_start = time.perf_counter()
        # leave time for this epoch's validation, estimated by the previous one
        deadline = budget - (history[-1]["valid_seconds"] if history else 0.0)
        lr = learning_rate(config, step, planned, elapsed() / budget, lr_scale)
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        norm_sum, norm_max, steps, tokens = 0.0, 0.0, 0, 0
        state: State | None = None
        for x, y in batches(train_stream, config.batch_size, window, config.sampling, rng):
            if steps and elapsed() >= deadline:
                out_of_time = True
                break
            # x, y: (batch, seq_len)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            # random sampling: windows are unrelated, start each fresh (d2l); sequential: carry
            state = None if config.sampling == "random" else detach_state(state)
            with amp:
                h, state = model.features(x, state)  # (batch, seq_len, dim)
                weight, bias = model.output_layer()  # (vocab, dim), (vocab,)
                rows, targets = _flat(h, y)  # (batch * seq_len, dim), (batch * seq_len,)
                loss = output_loss(rows, weight, bias, targets)
            if not torch.isfinite(loss) or loss.item() > exploded:
                raise _diverged("the loss", loss.item(), epoch, steps + 1, config, ckpt_file)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step, planned, elapsed() / budget, lr_scale)
            norm = clip_gradients(params, config.clip).item()
            if not math.isfinite(norm):
                raise _diverged("the gradient norm", norm, epoch, steps + 1, config, ckpt_file)
            optimizer.step()
            if average is not None:
                average.update()
            loss_sum += loss.detach() * y.numel()
            norm_sum, norm_max = norm_sum + norm, max(norm_max, norm)
            steps, tokens, step = steps + 1, tokens + y.numel(), step + 1
        train_seconds = time.perf_counter() - epoch_start

        valid_start = time.perf_counter()
        with average.applied() if average is not None else nullcontext():
            valid_ppl = perplexity(
                evaluate(model, valid_stream, config.eval_window, config.eval_stride)
            )
            improved = valid_ppl < best_ppl
            if improved:
                best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
        valid_seconds = time.perf_counter() - valid_start
        if improved:
            best_ppl, best_epoch, bad_epochs = valid_ppl, epoch, 0
        else:
            bad_epochs += 1
            if config.schedule == "plateau":
                lr_scale *= config.lr_decay
        metrics = {
            "epoch": epoch,
            "train_perplexity": _exp(loss_sum.item() / tokens),
            "valid_perplexity": valid_ppl,
            "tokens_per_second": tokens / train_seconds,
            "learning_rate": lr,
            "grad_norm": norm_sum / steps,
            "grad_norm_max": norm_max,
            "seconds": time.perf_counter() - epoch_start,
            "train_seconds": train_seconds,
            "valid_seconds": valid_seconds,
            "tokens": tokens,
            "batches": steps,
            "complete": not out_of_time,
        }
        history.append(metrics)
        if ckpt_file is not None:
            save_checkpoint(
                ckpt_file,
                {
                    "format": FORMAT,
                    "config": config.as_dict(),
                    "vocab_fingerprint": vocab_fingerprint,
                    "vocab_size": vocab_size,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "best_model": best_state,
                    "optimizer": optimizer.state_dict(),
                    "average": average.state_dict() if average is not None else None,
                    "rng": capture_rng(rng),
                    "best_epoch": best_epoch,
                    "best_valid_perplexity": best_ppl,
                    "bad_epochs": bad_epochs,
                    "elapsed_seconds": elapsed(),
                    "history": history,
                    "step": step,
                    "lr_scale": lr_scale,
                },
            )
        if on_epoch is not None:
            on_epoch(dict(metrics))

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    train_tokens = sum(h["tokens"] for h in history)
    train_time = sum(h["train_seconds"] for h in history)
    return model, TrainResult(
        best_epoch=best_epoch,
        best_valid_perplexity=best_ppl,
        epochs_run=epoch,
        wall_seconds=elapsed(),
        tokens_per_second=train_tokens / train_time if train_time else 0.0,
        parameters=count_parameters(model),
        stopped=stopped,
        resumed_from_epoch=resumed_from,
        history=history,
    )
