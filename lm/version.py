"""The code version that goes into every cache key and report: a hash of the library's source.

Changing any file under ``lm/`` changes it, so cached results computed by older code are not
re-used; the release number alone would not notice an edit."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from lmpipe.lm import __version__

_LM_DIR = Path(__file__).resolve().parent


@cache
def code_version() -> str:
    h = hashlib.sha256()
    for p in sorted(_LM_DIR.rglob("*")):
        if p.suffix in (".py", ".sql") and "__pycache__" not in p.parts:
            h.update(p.relative_to(_LM_DIR).as_posix().encode())
            h.update(p.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"
