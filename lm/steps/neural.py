"""Step: train one neural model (resuming its own checkpoint if a run was killed), evaluate the
best weights on validation and test, and generate samples for the corpus's prefixes."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmpipe.lm.errors import ConfigError
from lmpipe.lm.ingest import IngestResult, load_stream, load_vocab
from lmpipe.lm.metrics import summarize
from lmpipe.lm.neural.config import resumable_changes
from lmpipe.lm.steps.cache import cached, model_key
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.ngram import EVAL_SPLITS
from lmpipe.lm.tokenize import detokenize, get_tokenizer
from lmpipe.lm.vocab import Vocab
from lmpipe.lm.warehouse.token_scores import has_token_scores, write_token_scores

TRAINING_MODES = ("resume", "auto", "fresh")


def neural_result_dir(home: Home, ing: IngestResult, settings: dict[str, Any]) -> Path:
    """A training's folder: keyed by every setting but those that only say when or where it
    stops or runs, so that a longer budget or more epochs find (and extend) the same one."""
    free = resumable_changes(settings)
    identity = {k: v for k, v in settings.items() if k not in free}
    return home.models_dir / "neural" / model_key("neural", ing.key, identity)


def train_neural(
    home: Home,
    ing: IngestResult,
    settings: dict[str, Any],
    generation: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    mode: str = "resume",
    threads: int | None = None,
    splits: tuple[str, ...] = EVAL_SPLITS,
) -> dict[str, Any]:
    """Train one neural model, evaluate the best weights on validation and test, and generate
    samples for the corpus's prefixes.

    ``mode`` says what happens to an earlier training of the same settings (its folder is
    found whatever its epochs, time budget or device): ``resume`` re-uses it when finished and
    continues its checkpoint otherwise (a killed run, or a longer budget: what a flow does);
    ``auto`` re-uses it when finished and starts afresh otherwise; ``fresh`` always starts
    afresh. ``splits`` are evaluated (a tuning candidate is selected on validation alone, so it
    is scored on ``("valid",)`` and generates no samples: test is touched once per final
    model)."""
    from lmpipe.lm import neural

    if mode not in TRAINING_MODES:
        raise ConfigError(f"training mode must be one of {', '.join(TRAINING_MODES)}: {mode!r}")
    if "valid" not in ing.splits:
        raise ConfigError(
            f"corpus {ing.corpus!r} has no validation split; neural training needs one "
            "(give --valid or use a single text split 80/10/10)"
        )
    out_dir = neural_result_dir(home, ing, settings)
    wanted = [s for s in splits if s in ing.splits]
    generation = dict(generation or {})
    done = out_dir / "result.json"
    finished = done.exists() and json.loads(done.read_text(encoding="utf-8")).get("params") == (
        settings
    )
    if mode == "fresh" or (mode == "auto" and not finished):
        done.unlink(missing_ok=True)
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)

    def compute() -> dict[str, Any]:
        vocab = load_vocab(ing.vocab_path)
        train = load_stream(ing.splits["train"].path)
        valid = load_stream(ing.splits["valid"].path)
        cfg = neural.TrainConfig.from_dict(settings)
        epochs: list[dict[str, Any]] = []

        def record(row: dict[str, Any]) -> None:
            epochs.append(dict(row))
            if on_epoch is not None:
                on_epoch(dict(row))

        t0 = time.perf_counter()
        model, outcome = neural.train(
            cfg,
            train,
            valid,
            len(vocab),
            vocab_fingerprint=vocab.fingerprint(),
            checkpoint_dir=out_dir / "checkpoint",
            resume=True,
            on_epoch=record,
            threads=threads,
        )
        train_s = time.perf_counter() - t0
        if len(outcome.history) > len(epochs):  # resumed: earlier epochs come from the checkpoint
            epochs = [dict(r) for r in outcome.history]
        metrics: dict[str, Any] = {}
        files = [str(neural.checkpoint_path(out_dir / "checkpoint"))]
        t1 = time.perf_counter()
        for split in wanted:
            stream = valid if split == "valid" else load_stream(ing.splits[split].path)
            scores = neural.evaluate(model, stream, cfg.eval_window, cfg.eval_stride)
            metrics[split] = summarize(scores, ing.splits[split].bytes).as_dict()
            files.append(
                str(write_token_scores(
                    home.warehouse, ing.corpus, ing.tokenizer, out_dir.name, split, stream, scores
                ))
            )  # fmt: skip
        eval_s = time.perf_counter() - t1
        final = "test" in splits
        samples = _samples(neural, model, vocab, ing, generation) if final else []
        return {
            "family": "neural",
            "model": settings["arch"],
            "method": settings["arch"],
            "n": None,
            "model_key": out_dir.name,
            "params": settings,
            "metrics": metrics,
            "parameters": int(outcome.parameters),
            "train_seconds": train_s,
            "eval_seconds": eval_s,
            "epochs_run": int(outcome.epochs_run),
            "best_epoch": int(outcome.best_epoch),
            "stopped": str(outcome.stopped),
            "tokens_per_second": float(outcome.tokens_per_second),
            "epochs": epochs,
            "samples": samples,
            "device": str(next(model.parameters()).device),
            "files": files,
            "wall_seconds": float(outcome.wall_seconds),
        }

    def accept(stored: dict[str, Any]) -> bool:
        return set(wanted) <= set(stored["metrics"]) and has_token_scores(
            home.warehouse, ing.corpus, ing.tokenizer, out_dir.name, wanted
        )

    return cached(out_dir, compute, params=settings, accept=accept)


def _samples(
    neural: Any, model: Any, vocab: Vocab, ing: IngestResult, gen: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    length = int(gen.get("length", 60))
    seed = int(gen.get("seed", 0))
    tokenize = get_tokenizer(ing.tokenizer, ing.tokenizer_path)
    for prefix in ing.prefixes:
        toks = tokenize(prefix)
        ids = vocab.ids(toks)
        for strategy, kwargs in (
            ("greedy", {"greedy": True}),
            (
                "sample",
                {"temperature": float(gen.get("temperature", 0.8)), "top_k": gen.get("top_k")},
            ),
        ):
            new = neural.generate(model, ids, length, seed=seed, **kwargs)
            out.append(
                {
                    "prefix": prefix,
                    "strategy": strategy,
                    "seed": seed,
                    "text": detokenize(
                        ing.tokenizer, toks + [vocab.token(i) for i in new], ing.tokenizer_path
                    ),
                }
            )
    return out
