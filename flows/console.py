"""How ``lmpipe run`` shows its progress on the terminal (a ``tasks.progress.Progress``).

On a terminal, one status line redrawn in place (tasks done / running / cached per kind, the
current training's epoch and validation perplexity, the time so far) above which each finished
training leaves one line. Into a file or a pipe, only those lines and one per finished kind of
task, so that a log reads as a summary, not as a wall of Prefect's records (which stay in the
Prefect API and the UI; ``--verbose`` prints them too).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Any, TextIO

from lmpipe.tasks.progress import Progress

GROUPS = {
    "ingest": "ingest",
    "count": "counts",
    "ngram": "n-gram models",
    "tune": "tuning candidates",
    "train": "trainings",
    "mix": "mixtures",
}


class ConsoleProgress(Progress):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.t0 = time.monotonic()
        self.planned_n: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.cached: Counter[str] = Counter()
        self.training: str | None = None
        self.epoch_text = ""
        self.warnings: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._console: Any = None
        self._live: Any = None
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream, highlight=False)
            self._live = Live(
                self._status(), console=self._console, refresh_per_second=4, transient=True
            )
            self._live.start()

    # ----------------------------------------------------------------- events

    def planned(self, group: str, labels: list[str]) -> None:
        with self._lock:
            self.planned_n[group] += len(labels)
            self._redraw()

    def finished(self, group: str, label: str, state: str, summary: str = "") -> None:
        with self._lock:
            self.done[group] += 1
            if state == "Cached":
                self.cached[group] += 1
            if group in ("train", "mix"):  # one line each, with its figures
                if self.training == label:
                    self.training, self.epoch_text = None, ""
                cached = " (cached)" if state == "Cached" else ""
                self._line(f"{label}: {summary}{cached}" if summary else f"{label}{cached}")
            elif self.done[group] == self.planned_n[group] and not self.live:
                self._line(f"{GROUPS.get(group, group)}: {self._count(group)}")
            self._redraw()

    def epoch(self, label: str, row: dict[str, Any], total: int | None) -> None:
        with self._lock:
            self.training = label
            of = f"/{total}" if total else ""
            self.epoch_text = (
                f"epoch {row['epoch']}{of}, valid ppl {row['valid_perplexity']:.3f}, "
                f"{row['tokens_per_second']:,.0f} tok/s"
            )
            self._redraw()

    def message(self, text: str) -> None:
        with self._lock:
            self._line(text)

    def warn(self, kind: str, text: str) -> None:
        """The first warning of each kind is shown; the others are counted, and their number
        is given when the run ends (a run can warn once per model)."""
        with self._lock:
            self.warnings[kind] += 1
            if self.warnings[kind] == 1:
                self._line(f"warning: {text}")

    def close(self) -> None:
        with self._lock:
            more = {k: n - 1 for k, n in self.warnings.items() if n > 1}
            for kind, n in more.items():
                self._line(
                    f"warning: {n} more {kind} warning{'s' if n > 1 else ''} like the one above"
                )
            if self._live is not None:
                self._live.stop()
                self._live = None

    # ----------------------------------------------------------------- drawing

    def _count(self, group: str) -> str:
        cached = f" ({self.cached[group]} cached)" if self.cached[group] else ""
        return f"{self.done[group]}/{self.planned_n[group]}{cached}"

    def _status(self) -> str:
        parts = [f"{GROUPS.get(g, g)} {self._count(g)}" for g in GROUPS if self.planned_n[g]]
        if not parts:
            parts.append("starting the flow")
        if self.training:
            parts.append(f"{self.training}: {self.epoch_text}")
        elapsed = int(time.monotonic() - self.t0)
        parts.append(f"{elapsed // 60}:{elapsed % 60:02d}")
        return " · ".join(parts)

    def _redraw(self) -> None:
        if self._live is not None:
            self._live.update(self._status())

    def _line(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, markup=False)
        else:
            self.stream.write(f"lmpipe: {text}\n")
            self.stream.flush()
