"""Checks of a whole experiment before any of its work starts: every corpus can be read (a
registry corpus is present or downloads now; a user's own files exist and are text files) and
every model's settings are valid together. A mistake then costs a second and one line, not a
failed task twenty seconds into a run."""

from __future__ import annotations

from pathlib import Path

from lmpipe.lm.config import ExperimentConfig
from lmpipe.lm.errors import ConfigError, DownloadError
from lmpipe.lm.pipeline import Home, resolve_source


def check_experiment(cfg: ExperimentConfig, home: Path) -> None:
    """Raise the first ``LmpipeError`` the experiment would meet (one line, what to do)."""
    from lmpipe.lm.neural.config import TrainConfig

    for arch in cfg.neural.architectures:
        try:
            TrainConfig.from_dict(cfg.neural.for_arch(arch))
        except ConfigError as e:
            raise ConfigError(f"neural settings of {arch}: {e}") from None
    h = Home(home)
    for corpus in cfg.corpora:
        for tokenizer in cfg.tokenizers_for(corpus):
            try:
                resolve_source(h, corpus.model_dump(), tokenizer)  # downloads what is missing
            except DownloadError as e:
                if not e.transient:
                    raise
                # a passing failure: the ingest task tries again (with its retries)
