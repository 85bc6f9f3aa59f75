"""Where a run's files live: everything under one folder, ``--home`` (docs/design.md §7).

``Home`` also carries the two places of this machine that a user may point elsewhere (read
from the environment once, by the command line): a folder of local registry corpora
(``$LMPIPE_CORPORA_DIR``) and the folder DuckDB spills to (``$LMPIPE_SPILL_DIR``). It travels
between tasks as a small dict (``as_dict``/``from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when used: a command that only parses needs no DuckDB
    from lmpipe.lm.warehouse import Warehouse


@dataclass(frozen=True)
class Home:
    root: Path
    corpora_dir: Path | None = None
    spill: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def warehouse(self) -> Warehouse:
        from lmpipe.lm.warehouse import Warehouse

        return Warehouse.at_home(self.root)

    @property
    def cache_dir(self) -> Path:
        """Downloaded registry corpora."""
        return self.root / "data" / "cache"

    @property
    def models_dir(self) -> Path:
        """Finished n-gram results and neural checkpoints, by content key."""
        return self.root / "data" / "models"

    @property
    def spill_dir(self) -> Path:
        """Where DuckDB spills when counting or estimating outgrows its memory limit."""
        return self.spill or self.root / "data" / "spill"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def state_dir(self) -> Path:
        """lmpipe's own bookkeeping (Prefect's result records)."""
        return self.root / ".lmpipe"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "root": str(self.root),
            "corpora_dir": str(self.corpora_dir) if self.corpora_dir else None,
            "spill": str(self.spill) if self.spill else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | str) -> Home:
        """From ``as_dict`` output (or a bare path: the home with no other places)."""
        if isinstance(d, str | Path):
            return cls(Path(d))
        return cls(
            Path(d["root"]),
            Path(d["corpora_dir"]) if d.get("corpora_dir") else None,
            Path(d["spill"]) if d.get("spill") else None,
        )
