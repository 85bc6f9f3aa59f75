"""Cache keys on content, not on objects (docs/prefect.md §1).

Task inputs are small JSON values (data keys that already hash the corpus content, settings,
paths), so the key is: task name + code version + those inputs + a content id that ``content``
derives from them (for ingestion: the hash of the corpus files, so an edited file under an
unchanged path gets a new key). Cached results name the files they stand for; a flow re-runs a
task whose cached result points at files that no longer exist (``missing_files``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

from lmpipe.lm.fileio import sha256_text
from lmpipe.lm.version import code_version

ContentFn = Callable[[dict[str, Any]], str]


@dataclass
class ContentKey(CachePolicy):
    """Key from the task's name, the code version, its (small, JSON) inputs and ``content``.
    Inputs named in ``ignore`` say where or how a step runs, not what it computes (an engine
    that gives identical results, a memory limit, a thread count): they stay out of the key.
    Of ``home`` only its root counts (its other places, local corpora and the spill folder,
    change nothing a cached result holds)."""

    content: ContentFn | None = field(default=None)
    ignore: tuple[str, ...] = ()

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        extra = self.content(inputs) if self.content is not None else ""
        keyed = {k: v for k, v in inputs.items() if k not in self.ignore}
        if isinstance(keyed.get("home"), dict):
            keyed["home"] = keyed["home"]["root"]
        payload = json.dumps(keyed, sort_keys=True, default=str)
        return sha256_text(task_ctx.task.name, code_version(), payload, extra)


def missing_files(result: dict[str, Any]) -> list[str]:
    """Files a (possibly cached) task result stands for that are gone from disk."""
    return [f for f in result.get("files", []) if not Path(f).exists()]
