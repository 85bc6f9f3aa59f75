"""``lmpipe ngram``: one n-gram model on explicit files or a registry corpus, like SRILM's
``ngram -ppl``."""

from __future__ import annotations

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
from lmpipe.flows.cli.output import corpus_spec, note_bom, note_replaced, print_scores
from lmpipe.lm.config import NgramConfig, VocabConfig
from lmpipe.lm.errors import ConfigError
from lmpipe.lm.ngram.registry import MAX_ORDER, METHODS

VOCAB_OPTIONS = ("min_freq", "normalize", "encoding_errors")
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
        help="char, word or whitespace (default: whitespace for files, the corpus's own for "
        "--corpus).",
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
    order: Annotated[int, typer.Option("--order", help=f"n-gram order N, 1..{MAX_ORDER}.")],
    smoothing: Annotated[str, typer.Option("--smoothing", help=", ".join(METHODS) + ".")] = "mkn",
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
    if not 1 <= order <= MAX_ORDER:
        raise ConfigError(f"--order must be at least 1 and at most {MAX_ORDER} (got {order})")
    smoothing_entry(smoothing)
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
    h = home_of(home, debug, True, corpora_dir, spill_dir)
    clean_debris(h)
    limit = parse_size(ng.memory_limit) if ng.memory_limit else None
    if prefect:
        if arpa is not None:
            raise ConfigError(
                "--arpa writes a file outside the warehouse: run it without --prefect"
            )
        result = step_flow(
            "ngram_flow", h, corpus=spec, tokenizer=tok, method=smoothing, order=order,
            params=ng.params(smoothing), vocab=vocab.model_dump(),
            spill_dir=str(h.spill) if h.spill else None, engine=ng.engine, memory_limit=limit,
        )  # fmt: skip
        print_scores(spec["name"], tok, result, result["run_id"], json_out)
        return
    if arpa is not None and not arpa.expanduser().resolve().parent.is_dir():
        raise ConfigError(f"--arpa {arpa}: the folder {arpa.parent} does not exist; create it")
    job = ngram_job(
        DIRECT, h, spec, tok, vocab.model_dump(), smoothing, order, ng.params(smoothing),
        engine=ng.engine, memory_limit=limit, arpa_out=arpa,
    )  # fmt: skip
    note_replaced(job.ing.corpus, job.ing.replaced)
    note_bom(job.ing.corpus, job.ing.bom_files)
    print_scores(
        job.ing.corpus, job.ing.tokenizer, job.result, job.run_id, json_out, job.ing.replaced, arpa
    )
