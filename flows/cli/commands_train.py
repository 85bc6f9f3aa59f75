"""``lmpipe train`` (one neural model) and ``lmpipe generate`` (continue a prefix with one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lmpipe.flows.cli.commands_ngram import (
    VOCAB_OPTIONS,
    CorpusOpt,
    NameOpt,
    PrefectOpt,
    TextOpt,
)
from lmpipe.flows.cli.common import (
    CorporaDirOpt,
    DebugOpt,
    HomeOpt,
    JsonOpt,
    app,
    clean_debris,
    home_of,
    option_message,
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
    print_scores,
)
from lmpipe.flows.interrupts import exit_on_interrupt
from lmpipe.lm.config import GenerationConfig, VocabConfig
from lmpipe.lm.errors import ConfigError
from lmpipe.lm.neural.config import TRAIN_FIELDS, TrainConfig
from lmpipe.lm.neural.registry import ARCHS

# every setting of a training is an option, its default and help from lmpipe.lm.neural.config
TRAIN_OPTIONS = tuple(f for f in TRAIN_FIELDS if f not in ("eval_window",))


def train_config(arch: str, given: dict[str, Any], corpus: str | None) -> TrainConfig:
    """The training ``lmpipe train`` runs: exactly the experiment's for this architecture and
    corpus (``TrainConfig.for_arch`` with a registry corpus's own settings), with the options
    given on top."""
    from pydantic import ValidationError

    from lmpipe.lm.corpus import load_registry

    entry = load_registry().get(corpus) if corpus else None
    try:
        return TrainConfig.for_arch(arch, given, entry.neural if entry else None)
    except ConfigError as e:
        cause = e.__cause__
        message = option_message(cause) if isinstance(cause, ValidationError) else str(e)
        raise ConfigError(f"{message}; see `lmpipe train --help`") from None


@app.command("train")
@schema_options(TrainConfig, TRAIN_OPTIONS, "Model and training")
@schema_options(VocabConfig, VOCAB_OPTIONS[:3], "Vocabulary")
def train_cmd(
    arch: Annotated[str, typer.Option("--arch", help=", ".join(ARCHS) + ".")] = "gru",
    corpus: CorpusOpt = None,
    text: TextOpt = None,
    name: NameOpt = None,
    train: Annotated[
        str | None, typer.Option("--train", help="Training text instead of --corpus.")
    ] = None,
    valid: Annotated[str | None, typer.Option("--valid", help="Validation text.")] = None,
    test: Annotated[str | None, typer.Option("--test", help="Test text.")] = None,
    tokenizer: Annotated[
        str | None, typer.Option("--tokenizer", help="char, word, whitespace or jieba.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the unfinished training of this configuration."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Train again even if this configuration finished before."),
    ] = False,
    prefect: PrefectOpt = False,
    home: HomeOpt = Path("."),
    corpora_dir: CorporaDirOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
    given: dict[str, Any] | None = None,
) -> None:
    """Train one neural language model, evaluate it on validation and test, and store the run.
    Without options it trains exactly the model of the default experiment for ``--arch``."""
    from lmpipe.lm.steps.jobs import DIRECT, train_job

    given = given or {}
    settings = train_config(arch, {k: v for k, v in given.items() if k in TRAIN_OPTIONS}, corpus)
    vocab = validated(VocabConfig, {k: v for k, v in given.items() if k in VOCAB_OPTIONS})
    spec, tok = corpus_spec(corpus, train, valid, test, tokenizer, text, name)
    check_vocab_options(given, tok)
    if resume and force:
        raise ConfigError("give --resume or --force, not both")
    h = home_of(home, debug, True, corpora_dir)
    exit_on_interrupt()
    clean_debris(h)
    generation = GenerationConfig().model_dump()
    if prefect:
        if force:
            raise ConfigError(
                "--force is not available with --prefect (the flow re-uses a finished training)"
            )
        result = step_flow(
            "train_flow", h, corpus=spec, tokenizer=tok, settings=settings.as_dict(),
            generation=generation, vocab=vocab.model_dump(),
        )  # fmt: skip
        print_scores(spec["name"], tok, result, result["run_id"], json_out)
        return

    def progress(row: dict[str, Any]) -> None:
        if not json_out:
            typer.echo(
                f"epoch {row['epoch']:3d}  train ppl {row['train_perplexity']:9.3f}  valid ppl "
                f"{row['valid_perplexity']:9.3f}  lr {row['learning_rate']:.3g}  "
                f"{row['tokens_per_second']:,.0f} tok/s",
                err=True,
            )

    mode = "fresh" if force else "resume" if resume else "auto"
    job = train_job(
        DIRECT, h, spec, tok, vocab.model_dump(), settings.as_dict(), generation,
        mode=mode, on_epoch=progress,
    )  # fmt: skip
    note_replaced(job.ing.corpus, job.ing.replaced)
    note_bom(job.ing.corpus, job.ing.bom_files)
    note_cr_only(job.ing.corpus, job.ing.cr_only_files)
    print_scores(job.ing.corpus, job.ing.tokenizer, job.result, job.run_id, json_out)


MAX_TEMPERATURE = 1000.0  # beyond it logits / T underflow to a uniform (or NaN) distribution


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
    from lmpipe.lm.steps.generate import generate_from_run

    h = home_of(home, debug)
    if length < 0:
        raise ConfigError(f"--length must be >= 0 (got {length})")
    if not greedy and not 0 < temperature <= MAX_TEMPERATURE:
        raise ConfigError(
            f"--temperature must be positive and at most {MAX_TEMPERATURE:g} (got {temperature:g}; "
            "above that every token is about equally likely); or use --greedy"
        )
    out = generate_from_run(
        h, run_id, prefix, length,
        greedy=greedy, temperature=temperature, top_k=top_k, model=model, corpus=corpus, seed=seed,
    )  # fmt: skip
    if out.unknown:
        shown = ", ".join(repr(t) for t in out.unknown[:10])
        more = f" and {len(out.unknown) - 10} more" if len(out.unknown) > 10 else ""
        typer.echo(
            f"lmpipe: warning: the prefix holds {len(out.unknown)} token(s) the model never saw "
            f"in training ({shown}{more}); they are read as <unk>",
            err=True,
        )
    typer.echo(out.text)
