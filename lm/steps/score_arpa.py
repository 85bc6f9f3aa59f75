"""Step: score a text with an existing ARPA model, as SRILM's ``ngram -lm M -ppl F`` and KenLM's
``query`` do, with the figures of a trained model (docs/design.md §3).

The text is read as a split is read at ingest (non-empty lines, stripped, tokenized by the chosen
tokenizer; bytes counted the same way), so its bits per byte compare with lmpipe's own models.
Each line's tokens are looked up in the model's vocabulary: a word the model does not know is
``<unk>`` and counted as an OOV, as ``query`` counts it; a literal ``</s>`` inside a line is
scored as a word and the line goes on (``query``'s behaviour). Perplexity includes the OOV
positions, KenLM's figure; ``perplexity_excluding_oov`` leaves them out (SRILM's ``ppl``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmpipe.lm.errors import CorpusError
from lmpipe.lm.fileio import sha256_file
from lmpipe.lm.ingest import IngestSettings, text_lines
from lmpipe.lm.metrics import summarize

ARPA_SUFFIXES = (".gz", ".bin", ".arpa", ".lm")


@dataclass(frozen=True)
class ScoredText:
    """What a scored text is called in the warehouse (the ``corpus`` and ``tokenizer`` of its
    result rows)."""

    corpus: str
    tokenizer: str


def model_name(path: Path) -> str:
    """The model's name in results: the file's name without ``.arpa``/``.gz`` (``ptb5.arpa.gz``
    is ``ptb5``)."""
    name = path.name
    for suffix in ARPA_SUFFIXES:
        name = name.removesuffix(suffix)
    return name or path.name


def score_arpa(
    arpa: Path, test: str, settings: IngestSettings, binary_out: Path | None = None
) -> dict[str, Any]:
    """Load ``arpa`` (an ARPA file or lmpipe's binary form, :mod:`lmpipe.lm.ngram.binary`) and
    score the text ``test``: a result dict shaped like ``evaluate_ngram``'s (family ``ngram``,
    method ``arpa``, n the model's order, metrics of the ``test`` split). ``binary_out`` also
    writes the model in the binary form, for fast loading next time."""
    from lmpipe.lm.ngram.binary import load_model, write_binary

    t0 = time.perf_counter()
    model = load_model(arpa)
    load_s = time.perf_counter() - t0
    if binary_out is not None:
        write_binary(model, binary_out)
    t1 = time.perf_counter()
    lines: list[list[str]] = []
    n_bytes = 0
    for tokens, size in text_lines(test, settings):
        lines.append(tokens)
        n_bytes += size
    if not lines:
        raise CorpusError(f"{test} has no non-empty line to score; give a text with content")
    stream, ends = model.encode_lines(lines)
    scores = model.score_stream(stream, ends)
    eval_s = time.perf_counter() - t1
    digest = sha256_file(arpa)
    return {
        "family": "ngram",
        "model": model_name(arpa),
        "method": "arpa",
        "n": model.order,
        "model_key": digest[:16],
        "params": {"lm": str(arpa), "sha256": digest},
        "metrics": {"test": summarize(scores, n_bytes).as_dict()},
        "parameters": model.size,
        "vocab_size": len(model.vocab_array),
        "train_seconds": None,  # nothing was trained
        "load_seconds": load_s,
        "eval_seconds": eval_s,
        "tokens_per_second": stream.size / eval_s if eval_s > 0 else None,
        "normalized": True,
    }
