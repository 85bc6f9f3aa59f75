"""``lmpipe check``: verify the warehouse and, with ``repair``, remove what cannot be trusted.

Checks (each problem is one line naming the file):

- every Parquet file opens and all its rows read (``deep``; a truncated or corrupt file is damaged);
- each committed run's datasets hold the row counts its commit record states
  (``runs.row_counts_json``); a run whose commit record is unreadable counts as uncommitted;
- each finished ingest (``manifest.json``) and n-gram count (``orders-1-N.json``) still has the
  files it promises, with the token counts it recorded;
- no temporary (half-written) file of a dead writer is left under the home's ``data/`` folder,
  and no in-flight marker of a dead run;
- no run folder lacks a commit record (an orphan of a killed run) unless that run is still writing;
- the DuckDB file of views opens.

``repair`` removes the damage: a damaged or miscounted run is removed whole (commit record first,
so that a repair killed half-way leaves orphans, never a committed half run); a damaged content
file is removed with the manifest or marker that promised it, so the next run recomputes it; the
DuckDB views are rebuilt. ``clean_debris`` is the cheap part (names only, no file read) that every
run does first, so that what a killed run left is gone once the next run completes.

Safe beside running writers: a temporary file is debris only when the process named in it is
gone, and a run folder is an orphan only when its run is neither in flight nor committed, checked
in that order (a writer commits before it drops its in-flight marker).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lmpipe.lm.fileio import TMP_PREFIX, pid_alive, temp_owner_alive
from lmpipe.lm.warehouse import CONTENT_VIEWS, RUN_SCHEMAS, Warehouse, order_path, rebuild_database
from lmpipe.lm.warehouse.store import LEARNED_TOKENIZER_FILE

INFLIGHT = ".inflight"


@dataclass
class CheckReport:
    files: int = 0
    runs: int = 0
    problems: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"checked {self.files} files, {self.runs} committed runs: "
            + ("clean" if not self.problems else f"{len(self.problems)} problem(s)")
        ]
        out += [f"  problem: {p}" for p in self.problems]
        out += [f"  removed: {r}" for r in self.removed]
        if self.problems and not self.removed:
            out.append(
                "  run `lmpipe check --repair` to remove them "
                "(the next run recomputes what is needed)"
            )
        return out

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "runs": self.runs,
            "problems": self.problems,
            "removed": self.removed,
            "clean": not self.problems,
        }


@dataclass
class _Findings:
    """What a scan found: problems to report and paths to remove, in removal order."""

    problems: list[str] = field(default_factory=list)
    remove: list[Path] = field(default_factory=list)
    rebuild_views: bool = False

    def add(self, problem: str, *paths: Path) -> None:
        self.problems.append(problem)
        self.remove.extend(paths)


def check_warehouse(wh: Warehouse, repair: bool = False, deep: bool = True) -> CheckReport:
    """Verify ``wh``; with ``repair`` remove what the check found. ``deep=False`` looks at file
    names only (temporary files, orphaned runs, stale markers): what ``clean_debris`` needs."""
    rep = CheckReport()
    if not wh.root.exists():
        return rep
    found = _Findings()
    _scan_temporary(wh, found)
    unreadable: set[Path] = set()
    if deep:
        rep.files = _scan_parquet(wh, found, unreadable)
    committed = _scan_runs(wh, found, unreadable, deep)
    rep.runs = len(committed)
    _scan_orphans(wh, found, committed)
    if deep:
        _scan_unowned(wh, found, committed)
        _scan_manifests(wh, found, unreadable)
        _scan_views(wh, found)
    rep.problems = found.problems
    if repair and (found.remove or found.rebuild_views):
        for p in dict.fromkeys(found.remove):
            if not (p.exists() or p.is_symlink()):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            rep.removed.append(str(p))
        rebuild_database(wh)
    return rep


def clean_debris(wh: Warehouse) -> list[str]:
    """What a killed run left behind (its temporary files, its uncommitted rows, its in-flight
    marker): removed at the start of every run, so that the warehouse is clean again once a run
    has completed. Looks at names only, so it costs milliseconds on a large warehouse."""
    return check_warehouse(wh, repair=True, deep=False).removed


def run_in_progress(wh: Warehouse, run_id: str) -> bool:
    """A run is writing while its in-flight marker names a live process (lm.record)."""
    marker = wh.root / INFLIGHT / f"{run_id}.pid"
    try:
        return pid_alive(int(marker.read_text().strip()))
    except (OSError, ValueError):
        return False


# ----------------------------------------------------------------------------- scans


def _scan_temporary(wh: Warehouse, found: _Findings) -> None:
    """Temporary files of dead writers anywhere under ``data/`` (warehouse, models, cache, the
    DuckDB file's own temporary name), and in-flight markers of dead runs."""
    data = wh.root.parent
    for p in sorted(data.rglob(f"{TMP_PREFIX}*")):
        if temp_owner_alive(p):
            continue
        if p.is_file():  # its writer died: it can never be completed
            found.add(f"half-written file {p} (its writer is gone)", p)
        elif p.is_dir():  # an out-of-core model's database (lm.ngram.mkn_duckdb)
            found.add(f"working folder {p} of a process that is gone", p)
    markers = wh.root / INFLIGHT
    if markers.is_dir():
        for m in sorted(markers.glob("*.pid")):
            rid = m.name.removesuffix(".pid")
            if not run_in_progress(wh, rid) and not _is_committed(wh, rid):
                found.add(f"in-flight marker {m} of run {rid}, whose process is gone", m)
            elif _is_committed(wh, rid) and not run_in_progress(wh, rid):
                found.remove.append(m)  # committed, killed before dropping its marker: harmless


def _scan_parquet(wh: Warehouse, found: _Findings, unreadable: set[Path]) -> int:
    """Read every Parquet file under a final name, one row group at a time."""
    n = 0
    for p in sorted(wh.root.rglob("*.parquet")):
        if not p.is_file() or p.name.startswith(TMP_PREFIX):
            continue
        n += 1
        expected = expected_schema(wh, p)
        if expected is None:
            continue  # not a dataset's file: _scan_unowned reports it
        try:
            f = pq.ParquetFile(p)
            for g in range(f.metadata.num_row_groups):
                f.read_row_group(g)
        except Exception as e:  # noqa: BLE001 - any failure to read is damage
            unreadable.add(p)
            reason = " ".join(str(e).replace(str(p), "").split()).strip(" :'\"")[:120]
            found.add(f"damaged {p} ({type(e).__name__}{': ' + reason if reason else ''})", p)
            continue
        got, (want, prefix_ok) = f.schema_arrow, expected
        if not _fits(got, want, prefix_ok):
            unreadable.add(p)  # as good as damaged: its run (or ingest) goes with it
            found.add(f"wrong columns in {p}: {_columns(got)}, expected {_columns(want)}", p)
    return n


def expected_schema(wh: Warehouse, path: Path) -> tuple[pa.Schema, bool] | None:
    """The schema a warehouse file must have, from where it lies, and whether a prefix of it
    will do (per-run files of older runs lack the columns added since); None for a path that
    is no dataset's file."""
    parts = path.relative_to(wh.root).parts
    ds = parts[0]
    if (
        ds in RUN_SCHEMAS
        and len(parts) == 3
        and parts[1].startswith("run_id=")
        and parts[2] == f"{ds}.parquet"
    ):
        return RUN_SCHEMAS[ds], True
    for view in CONTENT_VIEWS:
        keys = [k for k, _, _ in view.keys]
        if (
            ds == view.folder
            and len(parts) == len(keys) + 2
            and parts[-1] == view.file
            and all(part.startswith(f"{k}=") for k, part in zip(keys, parts[1:-1], strict=True))
        ):
            if view.name != "ngram_ids":
                return view.columns, False
            try:
                n = int(parts[-2].removeprefix("n="))
            except ValueError:
                return None
            cols = [(f"w{i}", pa.int32()) for i in range(1, n + 1)]
            return pa.schema([*cols, ("count", pa.int64())]), False
    return None


def _fits(got: pa.Schema, want: pa.Schema, prefix_ok: bool) -> bool:
    have = [(f.name, f.type) for f in got]
    need = [(f.name, f.type) for f in want]
    return have == need or (prefix_ok and 0 < len(have) <= len(need) and need[: len(have)] == have)


def _columns(schema: pa.Schema) -> str:
    names = [f"{f.name} {f.type}" for f in schema]
    return "(" + ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") + ")"


# Files of the warehouse that are not datasets' files but belong there: locks, in-flight
# markers, the manifests of finished ingests and n-gram countings.
_OWN_FILES = (
    ".views.lock",
    "*/corpus=*/tokenizer=*/key=*.lock",
    f"{INFLIGHT}/*.pid",
    "tokens/corpus=*/tokenizer=*/key=*/manifest.json",
    f"vocab/corpus=*/tokenizer=*/key=*/{LEARNED_TOKENIZER_FILE}",
    "ngrams/corpus=*/tokenizer=*/key=*/orders-1-*.json",
)


def _scan_unowned(wh: Warehouse, found: _Findings, committed: set[str]) -> None:
    """Files that no run, ingest or counting of the warehouse owns (put there by hand, or by a
    query that could write): reported, and removed by repair. A committed run owns the file
    of each dataset its commit record counts, and nothing else in its folders."""
    recorded: dict[str, set[str]] = {}
    for rid in committed:
        try:
            rec = pq.read_table(_run_file(wh, "runs", rid)).to_pylist()[0]
            recorded[rid] = {"runs", *json.loads(rec.get("row_counts_json") or "{}")}
        except Exception:  # noqa: BLE001 - an unreadable record is reported by _scan_runs
            recorded[rid] = set(RUN_SCHEMAS)
    for p in sorted(wh.root.rglob("*")):
        if not p.is_file() or p.name.startswith(TMP_PREFIX):
            continue
        rel = p.relative_to(wh.root)
        if any(rel.match(pattern) for pattern in _OWN_FILES):
            continue
        expected = expected_schema(wh, p)
        if expected is not None and expected[1]:  # a per-run file: is it its run's?
            rid = rel.parts[1].removeprefix("run_id=")
            if rid not in committed or rel.parts[0] in recorded[rid]:
                continue  # uncommitted folders are _scan_orphans' to judge
        elif expected is not None:
            continue
        found.add(f"{p} belongs to no run, ingest or counting of the warehouse", p)


def _scan_runs(wh: Warehouse, found: _Findings, unreadable: set[Path], deep: bool) -> set[str]:
    """Committed runs (a readable commit record); with ``deep``, their row counts as recorded.
    A damaged run is removed whole, its commit record first."""
    committed: set[str] = set()
    for rid in sorted(wh.committed_runs()):
        record_path = _run_file(wh, "runs", rid)
        if record_path in unreadable:
            found.remove.extend(_run_folders(wh, rid))  # uncommitted now: its rows go too
            continue
        if not deep:
            committed.add(rid)
            continue
        try:
            rec = pq.read_table(record_path).to_pylist()[0]
            counts = json.loads(rec.get("row_counts_json") or "{}")
        except Exception as e:  # noqa: BLE001 - a commit record that does not parse is damage
            found.add(
                f"run {rid}: commit record {record_path} cannot be read ({type(e).__name__})",
                *_run_folders(wh, rid),
            )
            continue
        committed.add(rid)
        bad: list[str] = []
        for ds, n in sorted(counts.items()):
            p = _run_file(wh, ds, rid)
            if p in unreadable:
                bad.append(f"{ds} is damaged")
            elif not p.exists():
                bad.append(f"{ds} is missing ({n} rows recorded)")
            else:
                got = pq.ParquetFile(p).metadata.num_rows
                if got != n:
                    bad.append(f"{ds} has {got} rows, {n} recorded")
        if bad:
            found.add(f"run {rid}: {'; '.join(bad)}; the run is incomplete", *_run_folders(wh, rid))
    return committed


def _is_committed(wh: Warehouse, rid: str) -> bool:
    return _run_file(wh, "runs", rid).is_file()


def _run_file(wh: Warehouse, dataset: str, rid: str) -> Path:
    # not wh.run_path: a folder name left by hand need not be a valid run id
    return wh.root / dataset / f"run_id={rid}" / f"{dataset}.parquet"


def _run_folders(wh: Warehouse, rid: str) -> list[Path]:
    """Every folder of run ``rid``, its commit record's first."""
    out = []
    for ds in RUN_SCHEMAS:
        d = wh.root / ds / f"run_id={rid}"
        if d.exists():
            out.append(d)
    return out


def _scan_orphans(wh: Warehouse, found: _Findings, committed: set[str]) -> None:
    for ds in RUN_SCHEMAS:
        d = wh.root / ds
        if not d.is_dir():
            continue
        for run_dir in sorted(d.glob("run_id=*")):
            rid = run_dir.name.removeprefix("run_id=")
            if rid in committed or run_dir in found.remove:
                continue
            # in this order: a writer commits before it drops its in-flight marker
            if run_in_progress(wh, rid) or _is_committed(wh, rid):
                continue
            if ds == "runs" and not any(run_dir.iterdir()):
                found.remove.append(run_dir)  # an empty folder: nothing to report
                continue
            found.add(f"orphaned {run_dir} (run {rid} never committed)", run_dir)


def _scan_manifests(wh: Warehouse, found: _Findings, unreadable: set[Path]) -> None:
    """Finished ingests and n-gram counts still hold the files (and token counts) they promise."""
    for manifest in sorted((wh.root / "tokens").glob("corpus=*/tokenizer=*/key=*/manifest.json")):
        # paths from where the manifest is now (a home may have moved since it was written)
        key_dir = manifest.parent
        vocab = (
            wh.root
            / "vocab"
            / key_dir.parent.parent.name
            / key_dir.parent.name
            / key_dir.name
            / "vocab.parquet"
        )
        try:
            info = json.loads(manifest.read_text(encoding="utf-8"))
            splits = {
                s: (key_dir / f"split={s}" / "tokens.parquet", int(v["tokens"]))
                for s, v in info["splits"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            found.add(
                f"damaged {manifest} ({type(e).__name__}); the corpus will be ingested again",
                manifest,
            )
            continue
        bad = []
        if vocab in unreadable:
            bad.append(f"{vocab} is damaged")
        elif not vocab.exists():
            bad.append(f"{vocab} is missing")
        learned = vocab.parent / LEARNED_TOKENIZER_FILE
        if info.get("tokenizer_path") and not learned.exists():
            bad.append(f"the merges {learned} are missing")
        for split, (path, tokens) in sorted(splits.items()):
            if path in unreadable:
                bad.append(f"{split} tokens {path} are damaged")
            elif not path.exists():
                bad.append(f"{split} tokens {path} are missing")
            elif (got := pq.ParquetFile(path).metadata.num_rows) != tokens:
                bad.append(f"{split} tokens {path} hold {got} rows, {tokens} recorded")
                found.remove.append(path)
        if bad:
            found.add(
                f"ingest {manifest.parent}: {'; '.join(bad)}; it will be ingested again", manifest
            )
    for marker in sorted((wh.root / "ngrams").glob("corpus=*/tokenizer=*/key=*/orders-*.json")):
        try:
            top = int(marker.stem.rsplit("-", 1)[-1])
        except ValueError:
            continue
        bad = []
        for n in range(1, top + 1):
            p = order_path(marker.parent, n)
            if p in unreadable or not p.exists():
                bad.append(f"n={n} {'damaged' if p.exists() else 'missing'}")
        if bad:
            found.add(
                f"n-gram counts {marker.parent}: {', '.join(bad)}; they will be counted again",
                marker,
            )


def _scan_views(wh: Warehouse, found: _Findings) -> None:
    import duckdb

    if not wh.db_path.exists():
        return
    try:
        duckdb.connect(str(wh.db_path), read_only=True).close()
    except duckdb.Error as e:
        found.add(
            f"the view database {wh.db_path} does not open ({' '.join(str(e).split())[:100]}); "
            "it is rebuilt from the Parquet files",
            wh.db_path,
        )
        found.rebuild_views = True
