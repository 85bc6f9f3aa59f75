"""The report as Prefect UI artifacts: the file's own text, cut into one artifact per corpus (and
one overview), with every figure embedded as a ``data:`` URI, since the UI cannot load a file
next to the report on the machine's disk.

One artifact per corpus section reads better in the UI than one long page (each corpus is what a
person opens), and its key, ``ppl-report-<experiment>-<corpus>-<tokenizer>``, is the same every
night, so the UI's history of that key compares runs of one corpus.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

# A Markdown image whose target is a relative file: ![alt](name.png)
IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
SECTION = re.compile(r"^## (.+)$", re.M)
KEY_LIMIT = 100  # Prefect's longest artifact key


@dataclass(frozen=True)
class Artifact:
    key: str
    description: str
    markdown: str


def slug(text: str) -> str:
    """An artifact key part: lowercase letters, digits and dashes."""
    return re.sub(r"-+", "-", "".join(c if c.isalnum() else "-" for c in text.lower())).strip("-")


def _relative(target: str) -> bool:
    return not target.startswith(("data:", "http://", "https://"))


def relink_images(markdown: str, prefix: str) -> str:
    """Every relative image link's target with ``prefix`` in front (a report read from another
    folder: ``latest.md`` links into the run's folder), the rest unchanged."""

    def relink(m: re.Match[str]) -> str:
        if not _relative(m.group(2)):
            return m.group(0)
        return f"![{m.group(1)}]({prefix}{m.group(2)})"

    return IMAGE_LINK.sub(relink, markdown)


def embed_images(markdown: str, folder: Path) -> str:
    """Every relative image link replaced by the PNG itself (base64), the rest unchanged."""

    def embed(m: re.Match[str]) -> str:
        target = m.group(2)
        if not _relative(target):
            return m.group(0)
        data = base64.b64encode((folder / target).read_bytes()).decode("ascii")
        return f"![{m.group(1)}](data:image/png;base64,{data})"

    return IMAGE_LINK.sub(embed, markdown)


def report_artifacts(report: Path, experiment: str, run_id: str) -> list[Artifact]:
    """The report file ``report`` as artifacts: an overview (its title, the cross-corpus table
    and the reproducibility block) and one per corpus section, each headed by the report's
    title line."""
    text = report.read_text(encoding="utf-8")
    starts = [m.start() for m in SECTION.finditer(text)]
    head = text[: starts[0]] if starts else text
    title = head.splitlines()[0] if head else f"# Perplexity report: {experiment}"
    parts = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    base = f"ppl-report-{slug(experiment)}"
    overview, out = [head], []
    for part in parts:
        name = part.splitlines()[0].removeprefix("## ")
        m = re.fullmatch(r"(\S+) \((\S+) tokens\)", name)
        if m is None:  # the cross-corpus table, reproducibility
            overview.append(part)
            continue
        corpus, tokenizer = m.groups()
        out.append(
            Artifact(
                f"{base}-{slug(corpus)}-{slug(tokenizer)}"[:KEY_LIMIT],
                f"{corpus} ({tokenizer}) in run {run_id}",
                embed_images(f"{title}\n\n{part}", report.parent),
            )
        )
    summary = Artifact(base[:KEY_LIMIT], f"report of run {run_id}: {report}",
                       embed_images("".join(overview), report.parent))  # fmt: skip
    return [summary, *out]
