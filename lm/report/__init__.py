"""The Markdown report of a run, a pure function of what the warehouse holds for it.

``load`` reads the run's rows (and the previous run of the same experiment, for deltas);
``markdown.render`` turns them into Markdown and the list of figures it links;
``figures.draw_figures`` writes those PNGs; ``write_report`` does all three into
``reports/<experiment>/<date>-<run_id>/``. ``palette``, ``select`` and ``text`` are what the
sections share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lmpipe.lm.fileio import atomic_write_text
from lmpipe.lm.report.artifacts import relink_images
from lmpipe.lm.report.figures import _DRAW, Figure, draw_figures
from lmpipe.lm.report.load import TOP_NGRAMS, RunData, load_run, newest_run, newest_run_of
from lmpipe.lm.report.markdown import render
from lmpipe.lm.report.palette import MODEL_COLORS, MODEL_ORDER, model_color, model_marker
from lmpipe.lm.warehouse import Warehouse

__all__ = [
    "MODEL_COLORS",
    "MODEL_ORDER",
    "TOP_NGRAMS",
    "_DRAW",
    "Figure",
    "RunData",
    "draw_figures",
    "load_run",
    "model_color",
    "model_marker",
    "newest_run",
    "newest_run_of",
    "render",
    "report_dir",
    "write_report",
    "write_report_of",
]


def report_dir(reports_root: Path, run: dict[str, Any]) -> Path:
    """``reports/<experiment>/<date>-<run_id>/`` of a run (its ``runs`` row)."""
    date = pd.Timestamp(run["started_at"]).strftime("%Y-%m-%d")
    return reports_root / str(run["experiment"]) / f"{date}-{run['run_id']}"


def write_report(wh: Warehouse, reports_root: Path, run_id: str) -> Path:
    """Render ``run_id`` from the warehouse into ``reports/<experiment>/<date>-<run_id>/`` and,
    when it is the experiment's newest run, ``reports/<experiment>/latest.md`` (the same text,
    its figure links going into the run's folder). Figures unchanged since the previous run's
    report are copied from its folder. Returns the report's path."""
    return write_report_of(wh, reports_root, load_run(wh, run_id))


def write_report_of(wh: Warehouse, reports_root: Path, data: RunData) -> Path:
    """:func:`write_report` of a run already loaded (``load_run``), for a caller that uses the
    data again (the report task's table artifact)."""
    run_id = str(data.run["run_id"])
    out_dir = report_dir(reports_root, data.run)
    text, figs = render(data)
    previous = report_dir(reports_root, data.previous_run) if data.previous_run else None
    draw_figures(data, figs, out_dir, reuse_from=previous)
    path = out_dir / "report.md"
    atomic_write_text(path, text)
    if newest_run_of(wh, str(data.run["experiment"])) == run_id:
        # the same text, its figures linked into the run's folder (not rendered twice: 0.4 s)
        atomic_write_text(out_dir.parent / "latest.md", relink_images(text, out_dir.name + "/"))
    return path
