"""Checks of a whole experiment before any of its work starts: every corpus can be read (a
registry corpus is present or downloads now; a user's own files exist and are text files) and
every model's settings are valid together. A mistake then costs a second and one line, not a
failed task twenty seconds into a run."""

from __future__ import annotations

from itertools import islice

from lmpipe.lm.config import ExperimentConfig
from lmpipe.lm.corpus import CorpusSource, iter_lines
from lmpipe.lm.errors import ConfigError, DownloadError
from lmpipe.lm.ingest import IngestSettings
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.ingest import resolve_source

ENOUGH_LINES = 100
"""Lines read of a single text to see that its 80/10/10 split leaves validation lines."""


def check_experiment(cfg: ExperimentConfig, home: Home) -> None:
    """Raise the first ``LmpipeError`` the experiment would meet (one line, what to do)."""
    for corpus in cfg.corpora:  # checked when the config was made; again, cheaply
        for arch in cfg.neural.architectures:
            cfg.neural.train_config(arch, corpus=corpus.neural_defaults())
    for corpus in cfg.corpora:
        for tokenizer in cfg.tokenizers_for(corpus):
            try:
                source = resolve_source(home, corpus.model_dump(), tokenizer)  # downloads
            except DownloadError as e:
                if not e.transient:
                    raise
                # a passing failure: the ingest task tries again (with its retries)
            else:
                if cfg.neural.architectures:
                    _check_validation_lines(source)


def _check_validation_lines(source: CorpusSource) -> None:
    """A single text must leave the neural models validation lines under the split by lines
    (``IngestSettings.split_fractions``): read until that is certain, at most
    ``ENOUGH_LINES`` non-empty lines."""
    if "all" not in source.parts:
        return
    a, b = IngestSettings().split_fractions
    lines = (ln for src in source.parts["all"] for ln in iter_lines(src, "replace") if ln.strip())
    n = sum(1 for _ in islice(lines, ENOUGH_LINES))
    if n < ENOUGH_LINES and int(b * n) - int(a * n) < 1:
        first = source.parts["all"][0]
        raise ConfigError(
            f"corpus {source.name!r} ({first}) has {n} non-empty line(s): split 80/10/10 by "
            "lines, that leaves no validation line, which neural training needs; give a longer "
            "text (10 lines or more), or train, valid and test files"
        )
