"""Steps computed once per content key: a step's output folder is named by a hash of its
inputs (the data key, which already covers the corpus content and ingest settings, its own
parameters and the code version) and holds ``result.json``, written last. Calling a step whose
``result.json`` exists returns it without recomputing; two runs computing the same step at once
serialize on a lock file, so the second finds the first's result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmpipe.lm.fileio import atomic_write_text, file_lock, sha256_text
from lmpipe.lm.version import code_version


def model_key(kind: str, data_key: str, params: dict[str, Any]) -> str:
    return sha256_text(kind, data_key, json.dumps(params, sort_keys=True), code_version())[:16]


def cached(
    out_dir: Path,
    compute: Callable[[], dict[str, Any]],
    params: dict[str, Any] | None = None,
    accept: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """The step's result, computed once: ``files`` names what it stands for on disk. With
    ``params``, a stored result made with other parameters is recomputed (a training asked for
    more epochs continues from its checkpoint); with ``accept``, so is one it refuses (a
    tuning candidate's result, evaluated on validation only, when test is wanted)."""
    result_path = out_dir / "result.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(out_dir / ".lock"):
        if result_path.exists():
            stored = json.loads(result_path.read_text(encoding="utf-8"))
            same = params is None or stored.get("params") == params
            if same and (accept is None or accept(stored)):
                stored["cached"] = True
                return stored
        result = compute()
        result["files"] = [str(result_path), *result.get("files", [])]
        atomic_write_text(result_path, json.dumps(result, indent=1, sort_keys=True, default=float))
    result["cached"] = False
    return result
