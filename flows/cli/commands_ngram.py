"""``lmpipe ngram``: one n-gram model on explicit files or a registry corpus, like SRILM's
``ngram -ppl``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from lmpipe.flows.cli.common import (
    CorporaDirOpt,
    DebugOpt,
    EngineOpt,
    HomeOpt,
    JsonOpt,
    MemoryLimitOpt,
    SpillDirOpt,
    app,
    clean_debris,
    home_of,
    schema_options,
    step_flow,
    validated,
)
from lmpipe.flows.cli.output import (
    check_vocab_options,
    corpus_spec,
    note_bom,
    note_cr_only,
    note_replaced,
    own_corpus_name,
    print_scores,
)
from lmpipe.flows.interrupts import exit_on_interrupt
from lmpipe.lm.config import NgramConfig, VocabConfig
from lmpipe.lm.errors import ConfigError
from lmpipe.lm.ngram.registry import MAX_ORDER, METHODS

VOCAB_OPTIONS = ("min_freq", "normalize", "bpe_vocab_size", "encoding_errors")
TrainOpt = Annotated[
    str | None,
    typer.Option("--train", help="Training text (file, folder or glob; .gz/.zip fine)."),
]
TextOpt = Annotated[
    str | None,
    typer.Option(
        "--text",
        help="One text (file, folder or glob) split by lines 80/10/10 into train, valid and test.",
    ),
]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="The corpus's name in the warehouse (default: the file's name)."),
]
CorpusOpt = Annotated[
    str | None, typer.Option("--corpus", help="A registry corpus and its splits instead of files.")
]
TokenizerOpt = Annotated[
    str | None,
    typer.Option(
        "--tokenizer",
        help="char, word, whitespace, jieba (Chinese words) or bpe (byte-level BPE learned on the "
        "training split) (default: whitespace for files, the corpus's own for --corpus).",
    ),
]
PrefectOpt = Annotated[
    bool,
    typer.Option(
        "--prefect", help="Run as a Prefect flow (visible in the UI) instead of directly."
    ),
]


@app.command()
@schema_options(NgramConfig, ("k", "discount"), "Smoothing")
@schema_options(VocabConfig, VOCAB_OPTIONS, "Vocabulary")
def ngram(
    order: Annotated[
        int | None,
        typer.Option("--order", help=f"n-gram order N, 1..{MAX_ORDER} (not with --lm)."),
    ] = None,
    smoothing: Annotated[str, typer.Option("--smoothing", help=", ".join(METHODS) + ".")] = "mkn",
    lm: Annotated[
        Path | None,
        typer.Option(
            "--lm",
            help="Score --test with this existing ARPA model (.arpa or .arpa.gz, any order, "
            "or the binary form --binary writes) instead of estimating one, as SRILM's "
            "ngram -lm M -ppl F and KenLM's query do.",
            dir_okay=False,
        ),
    ] = None,
    binary: Annotated[
        Path | None,
        typer.Option(
            "--binary",
            help="With --lm: also write the model in lmpipe's binary form (memory-mapped: "
            "loads in milliseconds; give it to --lm next time), like KenLM's build_binary.",
            dir_okay=False,
        ),
    ] = None,
    train: TrainOpt = None,
    test: Annotated[str | None, typer.Option("--test", help="Test text.")] = None,
    valid: Annotated[
        str | None, typer.Option("--valid", help="Validation text (optional).")
    ] = None,
    corpus: CorpusOpt = None,
    text: TextOpt = None,
    name: NameOpt = None,
    tokenizer: TokenizerOpt = None,
    no_discount_fallback: Annotated[
        bool,
        typer.Option(
            "--no-discount-fallback", help="mkn: fail instead of using KenLM's fallback discounts."
        ),
    ] = False,
    arpa: Annotated[
        Path | None, typer.Option("--arpa", help="Write the model as an ARPA file.", dir_okay=False)
    ] = None,
    prune: Annotated[
        float,
        typer.Option(
            "--prune",
            help="Relative-entropy pruning (Stolcke 1998) as SRILM's ngram -prune: drop the "
            "n-grams whose removal raises the training perplexity by less than this fraction "
            "(e.g. 1e-8), then renormalize the backoffs. Backoff methods only; 0: off.",
        ),
    ] = 0.0,
    prune_min_order: Annotated[
        int,
        typer.Option(
            "--prune-min-order", help="With --prune: the lowest order pruned (SRILM's -minprune)."
        ),
    ] = 2,
    prune_count: Annotated[
        str | None,
        typer.Option(
            "--prune-count",
            help="Count pruning at estimation, as lmplz --prune: one threshold per order from "
            "unigrams on (e.g. '0 1 1' or 0,1,1; non-decreasing, the first 0, the last repeated): "
            "n-grams whose raw count is at most their order's threshold are dropped and their "
            "mass goes to the backoff. mkn only.",
        ),
    ] = None,
    prefect: PrefectOpt = False,
    memory_limit: MemoryLimitOpt = None,
    engine: EngineOpt = None,
    home: HomeOpt = Path("."),
    corpora_dir: CorporaDirOpt = None,
    spill_dir: SpillDirOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
    given: dict[str, Any] | None = None,
) -> None:
    """Estimate one n-gram model and score the test (and validation) text, like SRILM's
    ngram -ppl."""
    from lmpipe.lm.fileio import parse_size
    from lmpipe.lm.ngram.mkn_duckdb import out_of_core_applies
    from lmpipe.lm.ngram.registry import smoothing as smoothing_entry
    from lmpipe.lm.steps.jobs import DIRECT, ngram_job

    given = given or {}
    if lm is not None:
        conflicting = {
            "--order": order is not None, "--train": bool(train), "--valid": bool(valid),
            "--corpus": bool(corpus), "--text": bool(text), "--arpa": arpa is not None,
            "--prefect": prefect, "--engine": engine is not None, "--smoothing": smoothing != "mkn",
            "--no-discount-fallback": no_discount_fallback,
            "--memory-limit": memory_limit is not None, "--min-freq": "min_freq" in given,
            "--bpe-vocab-size": "bpe_vocab_size" in given,
            "--k": "k" in given, "--discount": "discount" in given, "--prune": prune != 0,
            "--prune-count": prune_count is not None,
        }  # fmt: skip
        _score_with_arpa(
            lm, test, tokenizer, name, given, home=home, debug=debug, json_out=json_out,
            conflicting=conflicting, binary=binary,
        )  # fmt: skip
        return
    if binary is not None:
        raise ConfigError("--binary writes a model given with --lm; give --lm MODEL.arpa too")
    if order is None:
        raise ConfigError(
            "--order is missing: give the n-gram order (e.g. --order 3), or --lm MODEL.arpa to "
            "score with an existing model"
        )
    if not 1 <= order <= MAX_ORDER:
        raise ConfigError(f"--order must be at least 1 and at most {MAX_ORDER} (got {order})")
    entry = smoothing_entry(smoothing)
    if not (math.isfinite(prune) and prune >= 0):
        raise ConfigError(f"--prune must be a threshold >= 0, e.g. 1e-8 (got {prune})")
    if prune and not entry.arpa:
        raise ConfigError(
            f"--prune prunes backoff models; {smoothing} is not one (use mkn, kn, witten-bell, "
            "absolute or katz)"
        )
    if prune and not 2 <= prune_min_order <= order:
        raise ConfigError(
            f"--prune-min-order must be between 2 and --order {order} (got {prune_min_order})"
        )
    counts = _prune_counts(prune_count, smoothing, order, engine)
    vocab = validated(VocabConfig, {k: v for k, v in given.items() if k in VOCAB_OPTIONS})
    settings = {k: v for k, v in given.items() if k in ("k", "discount")}
    settings |= {"engine": engine or "auto", "memory_limit": memory_limit}
    if no_discount_fallback:
        settings["discount_fallback"] = False
    ng = validated(NgramConfig, {"orders": [order], "methods": [smoothing], **settings})
    if ng.engine == "duckdb" and not out_of_core_applies(smoothing, order):
        raise ConfigError(
            f"--engine duckdb estimates mkn models of order 2 or more, not {smoothing} of order "
            f"{order}: drop --engine (it runs in memory)"
        )
    spec, tok = corpus_spec(corpus, train, valid, test, tokenizer, text, name)
    check_vocab_options(given, tok)
    h = home_of(home, debug, True, corpora_dir, spill_dir)
    exit_on_interrupt()
    clean_debris(h)
    limit = parse_size(ng.memory_limit) if ng.memory_limit else None
    params = ng.params(smoothing)
    if prune:
        params |= {"prune": prune, "prune_min_order": prune_min_order}
    if counts:
        params["prune_counts"] = counts
    if prefect:
        if arpa is not None:
            raise ConfigError(
                "--arpa writes a file outside the warehouse: run it without --prefect"
            )
        result = step_flow(
            "ngram_flow", h, corpus=spec, tokenizer=tok, method=smoothing, order=order,
            params=params, vocab=vocab.model_dump(),
            spill_dir=str(h.spill) if h.spill else None, engine=ng.engine, memory_limit=limit,
        )  # fmt: skip
        print_scores(spec["name"], tok, result, result["run_id"], json_out)
        return
    if arpa is not None and not arpa.expanduser().resolve().parent.is_dir():
        raise ConfigError(f"--arpa {arpa}: the folder {arpa.parent} does not exist; create it")
    job = ngram_job(
        DIRECT, h, spec, tok, vocab.model_dump(), smoothing, order, params,
        engine=ng.engine, memory_limit=limit, arpa_out=arpa,
    )  # fmt: skip
    note_replaced(job.ing.corpus, job.ing.replaced)
    note_bom(job.ing.corpus, job.ing.bom_files)
    note_cr_only(job.ing.corpus, job.ing.cr_only_files)
    print_scores(
        job.ing.corpus, job.ing.tokenizer, job.result, job.run_id, json_out, job.ing.replaced, arpa
    )


def _score_with_arpa(
    lm: Path,
    test: str | None,
    tokenizer: str | None,
    name: str | None,
    given: dict[str, Any],
    *,
    home: Path,
    debug: bool,
    json_out: bool,
    conflicting: dict[str, bool],
    binary: Path | None = None,
) -> None:
    """``lmpipe ngram --lm MODEL --test F``: score a text with an existing ARPA model and
    record the result (run kind ``score``)."""
    from lmpipe.lm.corpus import check_name
    from lmpipe.lm.ingest import IngestSettings
    from lmpipe.lm.steps.jobs import score_job
    from lmpipe.lm.tokenize import LEARNED_TOKENIZERS, check_tokenizer

    wrong = [opt for opt, given_ in conflicting.items() if given_]
    if wrong:
        raise ConfigError(
            f"--lm scores with an existing model: {', '.join(wrong)} cannot go with it "
            "(the model's file fixes its order and estimate); drop them"
        )
    if not test:
        raise ConfigError("--lm needs the text to score: give --test FILE")
    path = lm.expanduser()
    if not path.is_file():
        raise ConfigError(f"--lm {lm}: no such file; give the path of an ARPA model")
    if binary is not None and not binary.expanduser().resolve().parent.is_dir():
        raise ConfigError(
            f"--binary {binary}: the folder {binary.parent} does not exist; create it"
        )
    vocab = validated(VocabConfig, {k: v for k, v in given.items() if k in VOCAB_OPTIONS})
    tok = check_tokenizer(tokenizer or "whitespace")
    if tok in LEARNED_TOKENIZERS:
        raise ConfigError(
            f"--lm with --tokenizer {tok}: the {tok} units are learned from a training text, and "
            "an ARPA model brings none; give the tokenizer its vocabulary was made with"
        )
    corpus = check_name(name) if name else own_corpus_name(test)
    settings = IngestSettings(
        tokenizer=tok, normalize=vocab.normalize, encoding_errors=vocab.encoding_errors
    )
    h = home_of(home, debug, True)
    exit_on_interrupt()
    clean_debris(h)
    out = binary.expanduser().resolve() if binary is not None else None
    job = score_job(h, path.resolve(), test, corpus, settings, out)
    print_scores(corpus, tok, job.result, job.run_id, json_out)
    if out is not None and not json_out:
        typer.echo(f"  binary model written to {out}")


def _prune_counts(text: str | None, smoothing: str, order: int, engine: str | None) -> list[int]:
    """``--prune-count`` as lmplz's thresholds (empty: no count pruning); one line on error."""
    if text is None:
        return []
    from lmpipe.lm.ngram.mkn import prune_thresholds

    words = text.replace(",", " ").split()
    try:
        bad = next((w for w in words if not w.isdigit()), None)
        if bad is not None or not words:
            raise ValueError(f"{bad!r} is not a count" if bad else "no threshold given")
        counts = [int(w) for w in words]
        thresholds = prune_thresholds(counts, order)
    except ValueError as e:
        raise ConfigError(f"--prune-count {text!r}: {e}") from None
    if smoothing != "mkn":
        raise ConfigError(
            f"--prune-count prunes at lmplz's estimation, for mkn; {smoothing} has none (use "
            "--smoothing mkn, or --prune for any backoff method)"
        )
    if engine == "duckdb":
        raise ConfigError("--prune-count estimates in memory: drop --engine duckdb")
    return counts if any(thresholds) else []
