"""How the single-model commands name their corpus and print their scores."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from lmpipe.flows.cli.common import emit_json
from lmpipe.lm.errors import ConfigError


def own_corpus_name(path: str) -> str:
    stem = Path(path.split("*")[0] or "corpus").name or "corpus"
    stem = re.sub(r"\.(txt|gz|zip)$", "", stem)
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", stem).strip("._-") or "corpus"
    return name[:60]


def corpus_spec(
    corpus: str | None,
    train: str | None,
    valid: str | None,
    test: str | None,
    tokenizer: str | None,
    text: str | None = None,
    name: str | None = None,
) -> tuple[dict[str, Any], str]:
    """The corpus (registry name, one text split 80/10/10, or explicit split files) as a config
    entry, and its tokenizer (default: the registry corpus's own, else ``whitespace``). Files
    are named ``name`` in the warehouse (default: after the file)."""
    if sum(bool(x) for x in (corpus, text, train or test)) > 1:
        raise ConfigError("give one of --corpus NAME, --text FILE or --train/--test files")
    if name is not None:
        from lmpipe.lm.corpus import check_name

        if corpus:
            raise ConfigError(
                "--name names a corpus given as files; a registry corpus keeps its own"
            )
        check_name(name)
    if text:
        spec: dict[str, Any] = {"name": name or own_corpus_name(text), "path": text}
    elif corpus:
        spec = {"name": corpus}
        if tokenizer is None:
            from lmpipe.lm.corpus import check_name, load_registry

            check_name(corpus)
            entry = load_registry().get(corpus)
            tokenizer = entry.tokenizer if entry else "char"
    elif train and test:
        spec = {"name": name or own_corpus_name(train), "train": train, "valid": valid,
                "test": test}  # fmt: skip
    else:
        raise ConfigError("give --corpus NAME, --text FILE, or --train FILE and --test FILE")
    from lmpipe.lm.tokenize import check_tokenizer

    tokenizer = check_tokenizer(tokenizer or "whitespace")
    return spec, tokenizer


def check_vocab_options(given: dict[str, object], tokenizer: str) -> None:
    """Vocabulary options that do nothing with this tokenizer are refused, not ignored."""
    if "bpe_vocab_size" in given and tokenizer != "bpe":
        raise ConfigError(
            f"--bpe-vocab-size sizes --tokenizer bpe, and the tokenizer is {tokenizer}: "
            "add --tokenizer bpe or drop --bpe-vocab-size"
        )


def note_cr_only(corpus: str, files: int) -> None:
    if files:
        typer.echo(
            f"lmpipe: warning: corpus {corpus!r}: {files} file(s) end their lines with \\r alone "
            "(classic Mac OS); lines end at \\n, so each such file was read as one line: convert "
            "it first (tr '\\r' '\\n' < in > out)",
            err=True,
        )


def note_bom(corpus: str, files: int) -> None:
    if files:
        typer.echo(
            f"lmpipe: note: corpus {corpus!r}: dropped the UTF-8 byte-order mark at the start of "
            f"{files} file(s)",
            err=True,
        )


def note_replaced(corpus: str, replaced: int) -> None:
    if replaced:
        typer.echo(
            f"lmpipe: note: corpus {corpus!r}: replaced {replaced} byte(s) that were not "
            "valid UTF-8 with U+FFFD (--encoding-errors replace)",
            err=True,
        )


def print_scores(
    corpus: str,
    tokenizer: str,
    result: dict[str, Any],
    run_id: str,
    json_out: bool,
    replaced: int = 0,
    arpa: Path | None = None,
) -> None:
    m = result["metrics"]
    main = m.get("test") or m.get("valid")
    if json_out:
        out: dict[str, Any] = {
            "run_id": run_id,
            "corpus": corpus,
            "tokenizer": tokenizer,
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
            "replaced": replaced,
        }
        for key in ("engine", "epochs_run", "tokens_per_second", "wall_seconds", "best_epoch",
                    "stopped", "load_seconds"):  # fmt: skip
            if key in result:
                out["epochs" if key == "epochs_run" else key] = result[key]
        if arpa is not None:
            out["arpa"] = str(arpa)
        if result.get("method") == "arpa":
            out["lm"] = result["params"]["lm"]
        if result.get("params", {}).get("prune"):
            out["prune"] = result["params"]["prune"]
        emit_json(out)
        return
    label = f"{result['model']} n={result['n']}" if result.get("n") else result["model"]
    if result.get("params", {}).get("prune"):
        label += f" pruned at {result['params']['prune']:g} ({result['parameters']:,} n-grams kept)"
    where = " (estimated out of core in DuckDB)" if result.get("engine") == "duckdb" else ""
    typer.echo(f"{corpus} ({tokenizer}), {label}{where}, run {run_id}")
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
    if result.get("method") == "arpa":
        typer.echo(
            f"  model: {result['params']['lm']} ({result['parameters']:,} n-grams, loaded in "
            f"{result['load_seconds']:.2f} s)"
        )
