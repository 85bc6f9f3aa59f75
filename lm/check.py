"""``lmpipe check``: verify the warehouse and, with ``repair``, remove what cannot be trusted.

Checks: every Parquet file opens and its rows read; each committed run's datasets hold the row
counts its commit record states; no temporary (half-written) file is left; no run folder lacks a
commit record (an orphan of a killed run) unless that run is still writing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from lm.fileio import TMP_PREFIX, pid_alive, temp_owner_alive
from lm.warehouse import RUN_SCHEMAS, Warehouse, rebuild_database


@dataclass
class CheckReport:
    files: int = 0
    runs: int = 0
    problems: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"checked {self.files} files, {self.runs} committed runs: "
               + ("clean" if not self.problems else f"{len(self.problems)} problem(s)")]
        out += [f"  problem: {p}" for p in self.problems]
        out += [f"  removed: {r}" for r in self.removed]
        if self.problems and not self.removed:
            out.append("  run `lmpipe check --repair` to remove them (the next run recomputes what is needed)")
        return out

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, "runs": self.runs, "problems": self.problems, "removed": self.removed,
                "clean": not self.problems}


def check_warehouse(wh: Warehouse, repair: bool = False) -> CheckReport:
    rep = CheckReport()
    if not wh.root.exists():
        return rep
    bad: list[Path] = []
    for p in sorted(wh.root.rglob("*")):
        if not p.is_file():
            continue
        if p.name.startswith(TMP_PREFIX):
            if not temp_owner_alive(p):  # its writer died: it can never be completed
                rep.problems.append(f"half-written file {p}")
                bad.append(p)
            continue
        if p.suffix != ".parquet":
            continue
        rep.files += 1
        try:
            pq.read_table(p)
        except Exception as e:  # noqa: BLE001 - any failure to read is damage
            rep.problems.append(f"unreadable {p} ({type(e).__name__}: {' '.join(str(e).split())[:120]})")
            bad.append(p)
    committed = set(wh.committed_runs())
    rep.runs = len(committed)
    for rid in sorted(committed):
        try:
            rec = pq.read_table(wh.run_path("runs", rid)).to_pylist()[0]
            counts = json.loads(rec.get("row_counts_json") or "{}")
        except Exception:  # noqa: BLE001 - reported above as unreadable
            continue
        for ds, n in counts.items():
            p = wh.run_path(ds, rid)
            if not p.exists():
                rep.problems.append(f"run {rid}: {ds} is missing ({n} rows recorded)")
                bad.append(wh.run_path("runs", rid))
                continue
            try:
                got = pq.ParquetFile(p).metadata.num_rows
            except Exception:  # noqa: BLE001
                continue
            if got != n:
                rep.problems.append(f"run {rid}: {ds} has {got} rows, {n} recorded")
                bad.append(p)
                bad.append(wh.run_path("runs", rid))
    for ds in RUN_SCHEMAS:
        d = wh.root / ds
        if not d.exists():
            continue
        for run_dir in sorted(d.glob("run_id=*")):
            rid = run_dir.name.removeprefix("run_id=")
            if rid not in committed and ds != "runs" and not run_in_progress(wh, rid):
                rep.problems.append(f"orphaned {run_dir} (run {rid} never committed)")
                bad.append(run_dir)
    if repair and bad:
        for p in dict.fromkeys(bad):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            rep.removed.append(str(p))
        # a content file removed: drop the manifests that promise it, so the next run rebuilds it
        for manifest in wh.root.rglob("manifest.json"):
            try:
                info = json.loads(manifest.read_text(encoding="utf-8"))
                paths = [s["path"] for s in info.get("splits", {}).values()] + [info.get("vocab_path", "")]
            except (OSError, ValueError, KeyError):
                paths = []
            if any(p and not Path(p).exists() for p in paths) or not paths:
                manifest.unlink(missing_ok=True)
                rep.removed.append(str(manifest))
        for marker in wh.root.glob("ngrams/*/*/*/orders-*.json"):
            if any(not (marker.parent / f"n={n}" / "ngrams.parquet").exists()
                   for n in range(1, int(marker.stem.rsplit("-", 1)[-1]) + 1)):
                marker.unlink(missing_ok=True)
                rep.removed.append(str(marker))
        rebuild_database(wh)
    return rep


def run_in_progress(wh: Warehouse, run_id: str) -> bool:
    """A run is writing while its in-flight marker names a live process (lm.record)."""
    marker = wh.root / ".inflight" / f"{run_id}.pid"
    try:
        return pid_alive(int(marker.read_text().strip()))
    except (OSError, ValueError):
        return False


def clean_debris(wh: Warehouse) -> list[str]:
    """What a killed run left behind (its temporary files, its uncommitted rows): removed at the
    start of every run, so that the warehouse is clean again once a run has completed."""
    rep = check_warehouse(wh, repair=False)
    if not any(p.startswith(("half-written", "orphaned")) for p in rep.problems):
        return []
    return check_warehouse(wh, repair=True).removed
