"""Cache keys on content, not on objects (PREFECT_NOTES section 1).

Task inputs are small JSON values (data keys that already hash the corpus content, settings,
paths), so the key is: task name + code version + those inputs. A key is only offered while the
files the cached result points to still exist; otherwise the task runs again (and, since the
``lm`` steps are themselves idempotent on the same content key, rebuilds exactly what is gone).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

from lm.fileio import sha256_text
from lm.version import code_version

# inputs -> (content id, files the result needs): the content id joins the key, so an edited
# input file gives a new key even when the task's arguments (its path) are unchanged.
LocateFn = Callable[[dict[str, Any]], tuple[str, Iterable[Path]]]


@dataclass
class ContentKey(CachePolicy):
    """Key from the task's name, the code version, its (small, JSON) inputs and the content id
    that ``locate`` derives from them; ``None`` (run the task) when any file that the cached
    result points to is missing."""

    locate: LocateFn | None = field(default=None)

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        content = ""
        if self.locate is not None:
            try:
                content, outputs = self.locate(inputs)
            except Exception:  # noqa: BLE001 - no key: the task runs and reports the real error
                return None
            if not all(Path(p).exists() for p in outputs):
                return None
        payload = json.dumps(inputs, sort_keys=True, default=str)
        return sha256_text(task_ctx.task.name, code_version(), payload, content)
