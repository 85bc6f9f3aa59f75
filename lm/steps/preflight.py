"""Checks of a whole experiment before any of its work starts: every corpus can be read (a
registry corpus is present or downloads now; a user's own files exist and are text files) and
every model's settings are valid together. A mistake then costs a second and one line, not a
failed task twenty seconds into a run."""

from __future__ import annotations

from lmpipe.lm.config import ExperimentConfig
from lmpipe.lm.errors import DownloadError
from lmpipe.lm.steps.home import Home
from lmpipe.lm.steps.ingest import resolve_source


def check_experiment(cfg: ExperimentConfig, home: Home) -> None:
    """Raise the first ``LmpipeError`` the experiment would meet (one line, what to do)."""
    for corpus in cfg.corpora:  # checked when the config was made; again, cheaply
        for arch in cfg.neural.architectures:
            cfg.neural.train_config(arch, corpus=corpus.neural_defaults())
    for corpus in cfg.corpora:
        for tokenizer in cfg.tokenizers_for(corpus):
            try:
                resolve_source(home, corpus.model_dump(), tokenizer)  # downloads what is missing
            except DownloadError as e:
                if not e.transient:
                    raise
                # a passing failure: the ingest task tries again (with its retries)
