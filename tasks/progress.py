"""What a running experiment tells the person who started it: tasks done, running and cached,
and the current training's epoch.

The flow and the tasks report to the process's ``Progress`` (``current()``); the command line
installs one that draws on the terminal (``lmpipe.flows.console``), everything else gets the
silent default. Only the calling process sees the reports: tasks on Dask workers report their
completion through the flow, not their epochs.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def training_label(arch: str, corpus: str, tokenizer: str) -> str:
    """How a training is named in the flow's task states and the progress display."""
    return f"{arch} train {corpus}/{tokenizer}"


class Progress:
    """Receives the events of one run. The default does nothing; subclasses draw them."""

    def planned(self, group: str, labels: list[str]) -> None:
        """``labels`` of ``group`` (ingest, count, ngram, train) were submitted."""

    def finished(self, group: str, label: str, state: str, summary: str = "") -> None:
        """A task ended in ``state`` (Completed, Cached, Recomputed, Failed)."""

    def epoch(self, label: str, row: dict[str, Any], total: int | None) -> None:
        """A training finished an epoch (``row``: lmpipe.lm.neural.training's metrics)."""

    def message(self, text: str) -> None:
        """A line worth showing as it is (what the run does next)."""

    def warn(self, kind: str, text: str) -> None:
        """A warning (``kind``: its category's name): one line on stderr."""
        sys.stderr.write(f"lmpipe: warning: {text}\n")

    def close(self) -> None:
        """The run is over (successfully or not)."""


_current = Progress()
_lock = threading.Lock()


def current() -> Progress:
    return _current


@contextmanager
def reporting(progress: Progress) -> Iterator[Progress]:
    """Within: the flows and tasks of this process report to ``progress``."""
    global _current
    with _lock:
        before, _current = _current, progress
    try:
        yield progress
    finally:
        with _lock:
            _current = before
        progress.close()
