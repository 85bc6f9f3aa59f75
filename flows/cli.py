"""The ``lmpipe`` command line (DESIGN section 7).

Every error a user can fix is one line on stderr (``lmpipe: error: ...``) and exit status 2;
anything else is a bug, reported in one line with exit status 1; ``--debug`` shows tracebacks.
Prefect is imported only by the commands that run flows, so ``sql``/``report``/``check`` are quick.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from lmpipe.lm.errors import ConfigError, LmpipeError, WarehouseError

app = typer.Typer(
    name="lmpipe",
    help=(
        "Perplexity benchmarks from unigram to LSTM: n-gram and RNN language models on your "
        "corpora."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

HomeOpt = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="LMPIPE_HOME",
        help="Root for everything a run writes (warehouse, cache, reports).",
        file_okay=False,
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
MemoryLimitOpt = Annotated[
    str | None,
    typer.Option(
        "--memory-limit",
        envvar="LMPIPE_MEMORY_LIMIT",
        help=(
            "DuckDB memory limit for n-gram counting and out-of-core estimation, e.g. 3GB "
            "(default: min(4 GB, half the RAM)); beyond it DuckDB spills to <home>/data/spill."
        ),
    ),
]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        envvar="LMPIPE_NGRAM_ENGINE",
        help=(
            "Where mkn models of order >= 2 are estimated: memory, duckdb (out of core, "
            "bounded by --memory-limit) or auto (duckdb when the model could outgrow the "
            "limit). Results are identical."
        ),
    ),
]

_DEBUG = False
INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT), as shells report it

# Offline, quiet defaults for Prefect (a user's environment still wins).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "lmpipe",
}


def _setup(home: Path, debug: bool, create: bool = False) -> Path:
    """Resolve ``--home``; only commands that write a run create it (a typo in ``lmpipe sql
    --home`` must not leave an empty folder behind)."""
    global _DEBUG
    _DEBUG = _DEBUG or debug
    home = home.expanduser().resolve()
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home


def _prefect_env(home: Path, verbose: bool = True) -> None:
    """Prefect's settings for this process, at the edge (Prefect reads its environment once,
    when it is imported). Without ``verbose`` Prefect's console log is off: its records still go
    to the Prefect API and the UI, the terminal shows lmpipe's progress and one-line errors."""
    for k, v in PREFECT_DEFAULTS.items():
        os.environ.setdefault(k, v)
    if not verbose:
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"
    os.environ.setdefault(
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(home / ".lmpipe" / "prefect-results")
    )


def _call_flow(
    home: Path, module: str, name: str, /, verbose: bool = True, **params: Any
) -> dict[str, Any]:
    """``<module>.<name>(**params)``: a flow (or what runs one), reporting to the configured
    Prefect API or to a temporary server started for it (``flows.server``)."""
    import importlib

    _prefect_env(home, verbose)
    from lmpipe.flows.server import prefect_api

    with prefect_api() as api:
        fn = getattr(importlib.import_module(module), name)
        api.wait_ready()  # the server started while the module was imported
        return fn(**params)


def _step_flow(name: str, home: Path, **params: Any) -> dict[str, Any]:
    """Run the step flow ``flows.steps.<name>`` (``--prefect``)."""
    return _call_flow(home, "lmpipe.flows.steps", name, home=str(home), **params)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"lmpipe: error: {message}", err=True)
    raise typer.Exit(code)


def _emit_json(obj: dict[str, Any]) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
            return str(v)  # JSON has no inf/nan: "inf" keeps the value readable
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    typer.echo(json.dumps(clean(obj), ensure_ascii=False, sort_keys=True))


def _parse_set(values: list[str]) -> dict[str, Any]:
    """``--set neural.hidden=256`` -> {"neural": {"hidden": 256}} (values parsed as TOML)."""
    import tomllib

    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. neural.hidden=256")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


# ----------------------------------------------------------------------------- run


@app.command()
def run(
    config: Annotated[
        Path | None, typer.Option("--config", help="Experiment TOML file.", dir_okay=False)
    ] = None,
    profile: Annotated[
        str, typer.Option("--profile", help="quick (minutes) or full (hours).")
    ] = "quick",
    corpus: Annotated[
        list[str] | None,
        typer.Option("--corpus", help="Corpus name (repeatable); replaces the config's list."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value, e.g. neural.hidden=256 (repeatable)."),
    ] = None,
    runner: Annotated[
        str, typer.Option("--runner", help="Task runner: thread or dask.")
    ] = "thread",
    dask_address: Annotated[
        str | None,
        typer.Option("--dask-address", help="Existing Dask scheduler, e.g. tcp://host:8786."),
    ] = None,
    memory_limit: MemoryLimitOpt = None,
    engine: EngineOpt = "auto",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress display: only the last line.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print Prefect's whole run log too.")
    ] = False,
    home: HomeOpt = Path("."),
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run the perplexity benchmark flow over the experiment's corpora, n values and
    architectures, ending in a report."""
    from lmpipe.lm.config import build_config
    from lmpipe.lm.preflight import check_experiment

    home = _setup(home, debug, create=True)
    overrides = _parse_set(set_ or [])
    if corpus:
        overrides["corpora"] = [{"name": c} for c in corpus]
    cfg = build_config(config, profile, overrides)
    _ngram_env(memory_limit, engine)
    if runner not in ("thread", "dask"):
        raise ConfigError(f"unknown runner {runner!r}; choose thread or dask")
    check_experiment(cfg, home)
    from lmpipe.flows.console import ConsoleProgress
    from lmpipe.tasks.progress import Progress, reporting

    shown = Progress() if quiet or json_out else ConsoleProgress()
    with reporting(shown):
        out = _call_flow(
            home, "lmpipe.flows.benchmark", "run_benchmark",
            cfg=cfg, home=home, runner=runner, dask_address=dask_address,
            verbose=verbose or _DEBUG,
        )  # fmt: skip
    if json_out:
        _emit_json(out)
    else:
        typer.echo(f"run {out['run_id']} done; report: {out['report']}")


# ----------------------------------------------------------------------------- ngram


def _own_corpus_name(path: str) -> str:
    stem = Path(path.split("*")[0] or "corpus").name or "corpus"
    stem = re.sub(r"\.(txt|gz|zip)$", "", stem)
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", stem).strip("._-") or "corpus"
    return name[:60]


def _corpus_spec(
    corpus: str | None,
    train: str | None,
    valid: str | None,
    test: str | None,
    tokenizer: str | None,
) -> tuple[dict[str, Any], str]:
    """The corpus (registry name or explicit files) as a config entry, and its tokenizer."""
    if corpus and (train or test):
        raise ConfigError("give either --corpus NAME or --train/--test files, not both")
    if corpus:
        spec: dict[str, Any] = {"name": corpus}
        if tokenizer is None:
            from lmpipe.lm.corpus import check_name, load_registry

            check_name(corpus)
            entry = load_registry().get(corpus)
            tokenizer = entry.tokenizer if entry else "char"
    elif train and test:
        spec = {"name": _own_corpus_name(train), "train": train, "valid": valid, "test": test}
    else:
        raise ConfigError("give --corpus NAME, or --train FILE and --test FILE")
    from lmpipe.lm.tokenize import get_tokenizer

    tokenizer = tokenizer or "whitespace"
    get_tokenizer(tokenizer)
    return spec, tokenizer


def _ingest_for(
    home: Path,
    corpus: str | None,
    train: str | None,
    valid: str | None,
    test: str | None,
    tokenizer: str | None,
    min_freq: int,
    normalize: str,
    encoding_errors: str,
):
    from lmpipe.lm.pipeline import Home, ingest_corpus

    spec, tokenizer = _corpus_spec(corpus, train, valid, test, tokenizer)
    vocab = {"min_freq": min_freq, "normalize": normalize, "encoding_errors": encoding_errors}
    return Home(home), ingest_corpus(Home(home), spec, tokenizer, vocab)


@app.command()
def ngram(
    order: Annotated[int, typer.Option("--order", help="n-gram order N (1 = unigram).")],
    smoothing: Annotated[
        str,
        typer.Option(
            "--smoothing", help="mle, add-k, witten-bell, absolute, kn, mkn, katz, stupid-backoff."
        ),
    ] = "mkn",
    train: Annotated[
        str | None,
        typer.Option("--train", help="Training text (file, folder or glob; .gz/.zip fine)."),
    ] = None,
    test: Annotated[str | None, typer.Option("--test", help="Test text.")] = None,
    valid: Annotated[
        str | None, typer.Option("--valid", help="Validation text (optional).")
    ] = None,
    corpus: Annotated[
        str | None,
        typer.Option("--corpus", help="A registry corpus and its splits instead of files."),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            help=(
                "char, word or whitespace (default: whitespace for files, the corpus's own "
                "for --corpus)."
            ),
        ),
    ] = None,
    k: Annotated[float, typer.Option("--k", help="add-k's k (1 = Laplace).")] = 1.0,
    discount: Annotated[
        float | None,
        typer.Option("--discount", help="Fixed discount for absolute/kn (default: estimated)."),
    ] = None,
    no_discount_fallback: Annotated[
        bool,
        typer.Option(
            "--no-discount-fallback", help="mkn: fail instead of using KenLM's fallback discounts."
        ),
    ] = False,
    min_freq: Annotated[
        int, typer.Option("--min-freq", help="Keep tokens seen at least this often in training.")
    ] = 1,
    normalize: Annotated[
        str, typer.Option("--normalize", help="none, or d2l (letters and spaces, lower case).")
    ] = "none",
    encoding_errors: Annotated[
        str, typer.Option("--encoding-errors", help="strict (error on bad UTF-8) or replace.")
    ] = "strict",
    arpa: Annotated[
        Path | None, typer.Option("--arpa", help="Write the model as an ARPA file.", dir_okay=False)
    ] = None,
    prefect: Annotated[
        bool,
        typer.Option(
            "--prefect", help="Run as a Prefect flow (visible in the UI) instead of directly."
        ),
    ] = False,
    memory_limit: MemoryLimitOpt = None,
    engine: EngineOpt = "auto",
    home: HomeOpt = Path("."),
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Estimate one n-gram model and score the test (and validation) text, like SRILM's
    ngram -ppl."""
    from datetime import UTC, datetime

    from lmpipe.lm.config import SMOOTHING
    from lmpipe.lm.pipeline import evaluate_ngram
    from lmpipe.lm.record import new_run_id, record_run

    home = _setup(home, debug, create=True)
    if order < 1:
        raise ConfigError(f"--order must be at least 1 (got {order})")
    if smoothing not in SMOOTHING:
        raise ConfigError(f"unknown smoothing {smoothing!r}; choose one of: {', '.join(SMOOTHING)}")
    if k <= 0:
        raise ConfigError(f"--k must be positive (got {k})")
    if encoding_errors not in ("strict", "replace"):
        raise ConfigError(f"--encoding-errors must be strict or replace (got {encoding_errors!r})")
    _check_min_freq(min_freq)
    _ngram_env(memory_limit, engine)
    from lmpipe.lm.ngram.mkn_duckdb import out_of_core_applies

    if engine == "duckdb" and not out_of_core_applies(smoothing, order):
        raise ConfigError(
            f"--engine duckdb estimates mkn models of order 2 or more, not {smoothing} of order "
            f"{order}: drop --engine (it runs in memory)"
        )
    _clean_debris(home)
    params: dict[str, Any] = {}
    if smoothing == "add-k":
        params["k"] = k
    if smoothing in ("absolute", "kn") and discount is not None:
        params["discount"] = discount
    if smoothing == "mkn":
        params["discount_fallback"] = not no_discount_fallback
    if prefect:
        if arpa is not None:
            raise ConfigError(
                "--arpa writes a file outside the warehouse: run it without --prefect"
            )
        spec, tok = _corpus_spec(corpus, train, valid, test, tokenizer)
        vocab = {"min_freq": min_freq, "normalize": normalize, "encoding_errors": encoding_errors}
        result = _step_flow(
            "ngram_flow",
            home,
            corpus=spec,
            tokenizer=tok,
            method=smoothing,
            order=order,
            params=params,
            vocab=vocab,
        )
        _print_scores(_Named(spec["name"], tok), result, result["run_id"], json_out)
        return
    started = datetime.now(UTC)
    h, ing = _ingest_for(
        home, corpus, train, valid, test, tokenizer, min_freq, normalize, encoding_errors
    )
    _note_replaced(ing)
    result = evaluate_ngram(h, ing, smoothing, order, params, arpa_out=arpa)
    run_id = new_run_id(started)
    record_run(
        h.warehouse,
        run_id,
        f"ngram-{ing.corpus}",
        "ngram",
        {
            "order": order,
            "smoothing": smoothing,
            "params": params,
            "corpus": ing.corpus,
            "tokenizer": ing.tokenizer,
        },
        started,
        [ing],
        [(ing, result)],
    )
    _print_scores(ing, result, run_id, json_out, arpa)


class _Named:
    """What the score printer needs of a corpus when a flow did the ingesting."""

    def __init__(self, corpus: str, tokenizer: str) -> None:
        self.corpus, self.tokenizer = corpus, tokenizer


def _ngram_env(memory_limit: str | None, engine: str) -> None:
    """Hand ``--memory-limit`` and ``--engine`` to the n-gram steps (read by lm.pipeline, also
    in Dask workers, which inherit the environment)."""
    from lmpipe.lm.ngram.mkn_duckdb import ENGINES
    from lmpipe.lm.pipeline import parse_size

    if engine not in ENGINES:
        raise ConfigError(f"--engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    os.environ["LMPIPE_NGRAM_ENGINE"] = engine
    if memory_limit is not None:
        os.environ["LMPIPE_MEMORY_LIMIT"] = str(parse_size(memory_limit))


def _check_min_freq(min_freq: int) -> None:
    if min_freq < 1:
        raise ConfigError(
            f"--min-freq must be at least 1 (got {min_freq}); 1 keeps every training token"
        )


def _clean_debris(home: Path) -> None:
    """Remove what a killed run left (temporary files, uncommitted run folders) before writing."""
    from lmpipe.lm.check import clean_debris
    from lmpipe.lm.warehouse import Warehouse

    clean_debris(Warehouse.at_home(home))


def _note_replaced(ing: Any) -> None:
    if ing.replaced:
        typer.echo(
            f"lmpipe: note: corpus {ing.corpus!r}: replaced {ing.replaced} byte(s) that were not "
            "valid UTF-8 with U+FFFD (--encoding-errors replace)",
            err=True,
        )


def _print_scores(
    ing: Any, result: dict[str, Any], run_id: str, json_out: bool, arpa: Path | None = None
) -> None:
    m = result["metrics"]
    main = m.get("test") or m.get("valid")
    if json_out:
        out: dict[str, Any] = {
            "run_id": run_id,
            "corpus": ing.corpus,
            "tokenizer": ing.tokenizer,
            "model": result["model"],
            "n": result.get("n"),
            "perplexity": main["perplexity"],
            "perplexity_excluding_oov": main["perplexity_excluding_oov"],
            "oov": main["oov"],
            "tokens": main["tokens"],
            "zero_prob": main["zero_prob"],
            "bits_per_token": main["bits_per_token"],
            "bits_per_byte": main["bits_per_byte"],
            "test_perplexity": m["test"]["perplexity"] if "test" in m else None,
            "valid_perplexity": m["valid"]["perplexity"] if "valid" in m else None,
            "parameters": result.get("parameters"),
            "train_seconds": result.get("train_seconds"),
            "cached": result.get("cached", False),
            "replaced": getattr(ing, "replaced", 0),
        }
        for key in (
            "engine",
            "epochs_run",
            "tokens_per_second",
            "wall_seconds",
            "best_epoch",
            "stopped",
        ):
            if key in result:
                out["epochs" if key == "epochs_run" else key] = result[key]
        if arpa is not None:
            out["arpa"] = str(arpa)
        _emit_json(out)
        return
    label = f"{result['model']} n={result['n']}" if result.get("n") else result["model"]
    where = " (estimated out of core in DuckDB)" if result.get("engine") == "duckdb" else ""
    typer.echo(f"{ing.corpus} ({ing.tokenizer}), {label}{where}, run {run_id}")
    for split in ("valid", "test"):
        if split in m:
            s = m[split]
            typer.echo(
                f"  {split:5s}: {s['tokens']} tokens, {s['oov']} OOVs, {s['zero_prob']} zeroprobs, "
                f"ppl= {s['perplexity']:.6g} ppl(excl. OOV)= {s['perplexity_excluding_oov']:.6g} "
                f"bits/token= {s['bits_per_token']:.4f} bits/byte= {s['bits_per_byte']:.4f}"
            )
    if arpa is not None:
        typer.echo(f"  ARPA written to {arpa}")


# ----------------------------------------------------------------------------- train


@app.command("train")
def train_cmd(
    arch: Annotated[
        str,
        typer.Option(
            "--arch", help="rnn-scratch, gru-scratch, lstm-scratch, rnn, rnn-relu, gru, lstm."
        ),
    ] = "gru",
    corpus: Annotated[str | None, typer.Option("--corpus", help="A registry corpus.")] = None,
    train: Annotated[
        str | None, typer.Option("--train", help="Training text instead of --corpus.")
    ] = None,
    valid: Annotated[str | None, typer.Option("--valid", help="Validation text.")] = None,
    test: Annotated[str | None, typer.Option("--test", help="Test text.")] = None,
    tokenizer: Annotated[
        str | None, typer.Option("--tokenizer", help="char, word or whitespace.")
    ] = None,
    hidden: Annotated[int, typer.Option("--hidden")] = 256,
    layers: Annotated[int, typer.Option("--layers")] = 1,
    embed: Annotated[int, typer.Option("--embed")] = 128,
    dropout: Annotated[float, typer.Option("--dropout")] = 0.0,
    tied: Annotated[bool, typer.Option("--tied")] = False,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", help="[default: 10; no limit when --max-minutes is given]"),
    ] = None,
    seq_len: Annotated[int, typer.Option("--seq-len")] = 35,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    sampling: Annotated[
        str, typer.Option("--sampling", help="sequential or random.")
    ] = "sequential",
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd, adam or adamw.")] = "adam",
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    clip: Annotated[float, typer.Option("--clip", help="Max global gradient norm.")] = 1.0,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.0,
    lr_decay: Annotated[
        float, typer.Option("--lr-decay", help="LR factor on a validation plateau (1 = off).")
    ] = 1.0,
    patience: Annotated[
        int | None,
        typer.Option("--patience", help="Stop after this many epochs without improvement."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", help="Wall-clock budget.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    min_freq: Annotated[int, typer.Option("--min-freq")] = 1,
    normalize: Annotated[str, typer.Option("--normalize", help="none or d2l.")] = "none",
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the unfinished training of this configuration."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Train again even if this configuration finished before."),
    ] = False,
    prefect: Annotated[
        bool,
        typer.Option(
            "--prefect", help="Run as a Prefect flow (visible in the UI) instead of directly."
        ),
    ] = False,
    home: HomeOpt = Path("."),
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Train one neural language model, evaluate it on validation and test, and store the run."""
    import shutil
    from datetime import UTC, datetime

    from lmpipe.lm.config import ARCHITECTURES
    from lmpipe.lm.pipeline import neural_result_dir, train_neural
    from lmpipe.lm.record import new_run_id, record_run

    home = _setup(home, debug, create=True)
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}"
        )
    if epochs is None and max_minutes is None:
        epochs = 10  # --max-minutes alone: the budget decides when to stop
    settings = {
        "arch": arch,
        "embed": embed,
        "hidden": hidden,
        "layers": layers,
        "dropout": dropout,
        "tied": tied,
        "epochs": epochs,
        "max_minutes": max_minutes,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "sampling": sampling,
        "optimizer": optimizer,
        "lr": lr,
        "clip": clip,
        "weight_decay": weight_decay,
        "lr_decay": lr_decay,
        "patience": patience,
        "seed": seed,
        "device": device,
    }
    _check_train_settings(settings)
    _check_min_freq(min_freq)
    _clean_debris(home)
    if prefect:
        if force:
            raise ConfigError(
                "--force is not available with --prefect (the flow re-uses a finished training)"
            )
        spec, tok = _corpus_spec(corpus, train, valid, test, tokenizer)
        result = _step_flow(
            "train_flow",
            home,
            corpus=spec,
            tokenizer=tok,
            settings=settings,
            vocab={"min_freq": min_freq, "normalize": normalize},
        )
        _print_scores(_Named(spec["name"], tok), result, result["run_id"], json_out)
        return
    started = datetime.now(UTC)
    h, ing = _ingest_for(home, corpus, train, valid, test, tokenizer, min_freq, normalize, "strict")
    out_dir = neural_result_dir(h, ing, settings)
    done = out_dir / "result.json"
    finished = (
        done.exists() and json.loads(done.read_text(encoding="utf-8")).get("params") == settings
    )
    if force or (not resume and not finished):
        # a fresh training: drop the checkpoint and any result of this configuration; --resume
        # instead continues it (also to more epochs or a longer budget than it first had)
        done.unlink(missing_ok=True)
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)

    def progress(row: dict[str, Any]) -> None:
        if not json_out:
            typer.echo(
                f"epoch {row['epoch']:3d}  train ppl {row['train_perplexity']:9.3f}  valid ppl "
                f"{row['valid_perplexity']:9.3f}  lr {row['learning_rate']:.3g}  "
                f"{row['tokens_per_second']:,.0f} tok/s",
                err=True,
            )

    result = train_neural(h, ing, settings, {"length": 60}, on_epoch=progress, resume=True)
    run_id = new_run_id(started)
    record_run(
        h.warehouse,
        run_id,
        f"train-{ing.corpus}",
        "train",
        {"train": settings, "corpus": ing.corpus, "tokenizer": ing.tokenizer},
        started,
        [ing],
        [(ing, result)],
    )
    _print_scores(ing, result, run_id, json_out)


def _check_train_settings(settings: dict[str, Any]) -> None:
    from lmpipe.lm.neural import TrainConfig

    try:
        TrainConfig.from_dict(settings)
    except ConfigError as e:
        raise ConfigError(f"invalid training option: {e}; see `lmpipe train --help`") from None


# ----------------------------------------------------------------------------- generate


@app.command()
def generate(
    run_id: Annotated[str, typer.Option("--run", help="A run that trained a neural model.")],
    prefix: Annotated[str, typer.Option("--prefix", help="Text to continue.")],
    length: Annotated[int, typer.Option("--length", help="Tokens to generate.")] = 100,
    temperature: Annotated[float, typer.Option("--temperature")] = 1.0,
    greedy: Annotated[
        bool, typer.Option("--greedy", help="Always take the most likely token.")
    ] = False,
    top_k: Annotated[int | None, typer.Option("--top-k")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Architecture, when the run trained several.")
    ] = None,
    corpus: Annotated[
        str | None, typer.Option("--corpus", help="Corpus, when the run has several.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    home: HomeOpt = Path("."),
    debug: DebugOpt = False,
) -> None:
    """Continue a prefix with a model trained in a run."""
    from lmpipe.lm.generation import generate_from_run

    home = _setup(home, debug)
    if length < 0:
        raise ConfigError(f"--length must be >= 0 (got {length})")
    if not greedy and temperature <= 0:
        raise ConfigError(f"--temperature must be positive (got {temperature}); or use --greedy")
    text = generate_from_run(
        home,
        run_id,
        prefix,
        length,
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        model=model,
        corpus=corpus,
        seed=seed,
    )
    typer.echo(text)


# ----------------------------------------------------------------------------- report, sql, check


@app.command()
def report(
    run_id: Annotated[
        str | None, typer.Option("--run", help="Run to report (default: the newest).")
    ] = None,
    home: HomeOpt = Path("."),
    debug: DebugOpt = False,
) -> None:
    """(Re)write a run's report from the warehouse alone."""
    from lmpipe.lm import report as rep
    from lmpipe.lm.pipeline import Home

    h = Home(_setup(home, debug))
    run_id = run_id or rep.newest_run(h.warehouse)
    path = rep.write_report(h.warehouse, h.reports_dir, run_id)
    typer.echo(str(path))


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One read-only SQL statement over the views.")] = "",
    fmt: Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")] = "table",
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            help="Print at most this many rows [default: 1000 for table and markdown, every "
            "row for csv and json, which stream].",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Stop the query after this many seconds (0 = no limit)."),
    ] = 300.0,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Rebuild data/lmpipe.duckdb, the file of views for DuckDB's own tools, first.",
        ),
    ] = False,
    home: HomeOpt = Path("."),
    debug: DebugOpt = False,
) -> None:
    """Query the warehouse views (read-only): runs, corpora, splits, vocab, tokens, ngram_ids,
    ngrams, results, epochs, samples, benchmarks."""
    from lmpipe.lm.pipeline import Home
    from lmpipe.lm.query import FORMATS, stream_query, write_result
    from lmpipe.lm.warehouse import rebuild_database

    h = Home(_setup(home, debug))
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more (got {limit})")
    if timeout < 0:
        raise ConfigError(f"--timeout must be 0 (no limit) or more seconds (got {timeout})")
    if rebuild:
        if not h.warehouse.root.is_dir():
            raise ConfigError(f"no warehouse at {h.warehouse.root}: run `lmpipe run` there first")
        path = rebuild_database(h.warehouse)
        if not query.strip():
            typer.echo(str(path))
            return
    if not query.strip():
        raise ConfigError('give a query, e.g. lmpipe sql "select * from results limit 5"')
    result = stream_query(h.warehouse, query, timeout=timeout or None)
    shown, more = write_result(result, fmt, sys.stdout.write, limit)
    sys.stdout.flush()
    if more:
        typer.echo(
            f"lmpipe: note: showing the first {shown} rows; there are more (--limit N shows N, "
            "--format csv or json streams every row)",
            err=True,
        )


@app.command()
def check(
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove damaged, temporary and orphaned files.")
    ] = False,
    home: HomeOpt = Path("."),
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Verify the warehouse: every dataset readable, row counts as recorded, nothing
    half-written or orphaned."""
    from lmpipe.lm.check import check_warehouse
    from lmpipe.lm.pipeline import Home

    h = Home(_setup(home, debug))
    if not h.warehouse.root.is_dir():
        raise WarehouseError(
            f"no warehouse at {h.warehouse.root}: nothing to check; give the --home of a run "
            "(or run `lmpipe run` there first)"
        )
    report_ = check_warehouse(h.warehouse, repair=repair)
    if json_out:
        _emit_json(report_.as_dict())
    else:
        for line in report_.lines():
            typer.echo(line)
    if report_.problems and not repair:
        raise typer.Exit(1)


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Experiment TOML (its [schedule] gives the cron).", dir_okay=False
        ),
    ] = None,
    profile: Annotated[str, typer.Option("--profile")] = "quick",
    cron: Annotated[
        str | None, typer.Option("--cron", help="Override the schedule, e.g. '0 3 * * *'.")
    ] = None,
    runner: Annotated[str, typer.Option("--runner", help="thread or dask.")] = "thread",
    home: HomeOpt = Path("."),
    debug: DebugOpt = False,
) -> None:
    """Register the deployments with their schedules and serve them (needs PREFECT_API_URL
    for the UI)."""
    from lmpipe.lm.config import build_config

    home = _setup(home, debug, create=True)
    cfg = build_config(config, profile, {"schedule": {"cron": cron}} if cron else None)
    _prefect_env(home)
    from lmpipe.flows.deployments import serve_all

    serve_all(cfg, home, runner)


# ----------------------------------------------------------------------------- entry point


def main() -> None:
    """Console entry point: one-line errors, no traceback unless --debug."""
    global _DEBUG
    _DEBUG = "--debug" in sys.argv[1:]
    if not _DEBUG:
        warnings.showwarning = _show_warning
    try:
        # standalone_mode=False returns typer.Exit's code instead of exiting: pass it on
        rc = app(standalone_mode=False)
        if rc == INTERRUPTED:  # Typer turns Ctrl-C into a silent exit status 130
            typer.echo("lmpipe: interrupted", err=True)
        sys.exit(rc if isinstance(rc, int) else 0)
    except LmpipeError as e:
        if _DEBUG:
            raise
        typer.echo(f"lmpipe: error: {_one_line(str(e))}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        if e.exit_code == INTERRUPTED:
            typer.echo("lmpipe: interrupted", err=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("lmpipe: interrupted", err=True)
        sys.exit(INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, non-zero
        if isinstance(e, _click_exceptions()):
            # a usage error (unknown option, bad value, missing option): one line and where to
            # look; no_args_is_help has printed the help already and has nothing to add
            message = _one_line(e.format_message()).rstrip(".")  # type: ignore[attr-defined]
            if message:
                typer.echo(f"lmpipe: error: {message}; see `{_usage_command()} --help`", err=True)
            sys.exit(getattr(e, "exit_code", 2))
        if _DEBUG:
            raise
        known = _known_error(e)
        if known is not None:
            typer.echo(f"lmpipe: error: {_one_line(str(known))}", err=True)
            sys.exit(known.exit_code)
        typer.echo(
            f"lmpipe: error: {type(e).__name__}: {_one_line(str(e))} (a bug in lmpipe: run "
            "again with --debug for the traceback, and report it)",
            err=True,
        )
        sys.exit(1)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """A warning as one line on stderr, without the source line Python adds (--debug keeps
    Python's format); during a run, through its progress display."""
    from lmpipe.tasks.progress import current

    current().warn(category.__name__, _one_line(str(message)))


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """Click's usage errors: Typer >= 0.20 raises those of its vendored copy of Click."""
    import click

    kinds: list[type[BaseException]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:  # an older Typer uses click itself
        pass
    else:
        kinds.append(VendoredClickException)
    return tuple(kinds)


def _usage_command() -> str:
    """``lmpipe`` or ``lmpipe <command>``, for the --help hint of a usage error."""
    words = [a for a in sys.argv[1:] if not a.startswith("-")][:1]
    return " ".join(["lmpipe", *(w for w in words if w in _command_names())])


def _command_names() -> set[str]:
    return {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}


def _known_error(e: BaseException) -> LmpipeError | None:
    """An error that is the user's to fix (an ``LmpipeError``) anywhere in the chain of causes
    (a library may wrap one, as Prefect wraps a task's error in its own)."""
    seen = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, LmpipeError):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


if __name__ == "__main__":
    main()
