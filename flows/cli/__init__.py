"""The ``lmpipe`` command line (docs/design.md §7): one module per group of commands, each only
parsing, calling ``lmpipe.lm.steps`` (directly or through a flow) and printing.

Every error a user can fix is one line on stderr (``lmpipe: error: ...``) and exit status 2; it
is told apart by its type (``lmpipe.lm.errors.LmpipeError``), never by its text. Anything else
is a bug, reported in one line with exit status 1; ``--debug`` shows tracebacks. Prefect is
imported only by the commands that run flows, so ``sql``/``report``/``check`` start quickly.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from typing import Any

import typer

from lmpipe.flows.cli import commands_ngram, commands_run, commands_train, commands_warehouse
from lmpipe.flows.cli.common import State, app
from lmpipe.flows.cpu_dispatch import prefer_avx2_sort
from lmpipe.lm.errors import LmpipeError

INTERRUPTED = 130  # exit status after Ctrl-C (128 + SIGINT), as shells report it

__all__ = ["app", "main", "commands_ngram", "commands_run", "commands_train", "commands_warehouse"]


def main() -> None:
    """Console entry point: one-line errors, no traceback unless --debug."""
    prefer_avx2_sort(os.environ)  # before anything imports numpy (lmpipe.flows.cpu_dispatch)
    State.debug = "--debug" in sys.argv[1:]
    if not State.debug:
        warnings.showwarning = _show_warning
    try:
        # standalone_mode=False returns typer.Exit's code instead of exiting: pass it on
        rc = app(standalone_mode=False)
        if rc == INTERRUPTED:  # Typer turns Ctrl-C into a silent exit status 130
            typer.echo("lmpipe: interrupted", err=True)
        sys.exit(rc if isinstance(rc, int) else 0)
    except typer.Exit as e:
        if e.exit_code == INTERRUPTED:
            typer.echo("lmpipe: interrupted", err=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("lmpipe: interrupted", err=True)
        sys.exit(INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, non-zero
        if isinstance(e, _click_exceptions()):
            # a usage error (unknown option, bad value, missing option): one line and where to
            # look; no_args_is_help has printed the help already and has nothing to add
            message = one_line(e.format_message()).rstrip(".")  # type: ignore[attr-defined]
            if message:
                typer.echo(f"lmpipe: error: {message}; see `{_usage_command()} --help`", err=True)
            sys.exit(getattr(e, "exit_code", 2))
        if State.debug:
            raise
        known = _known_error(e)
        if known is not None:
            typer.echo(f"lmpipe: error: {one_line(known[0])}", err=True)
            sys.exit(known[1])
        typer.echo(
            f"lmpipe: error: {type(e).__name__}: {one_line(str(e))} (a bug in lmpipe: run "
            "again with --debug for the traceback, and report it)",
            err=True,
        )
        sys.exit(1)


# Errors of the machine rather than of lmpipe: said in one line with what to do (exit 2).
_SYSTEM_ERRORS = {
    errno.ENOSPC: "no space left on the disk of {where}: free space, or give another --home",
    errno.EDQUOT: "disk quota exceeded writing {where}: free space, or give another --home",
    errno.EROFS: "{where} is on a read-only file system: give a --home you can write to",
    errno.EACCES: "permission denied for {where}: give a --home you can write to, or fix its "
    "permissions",
}


def _known_error(e: BaseException) -> tuple[str, int] | None:
    """The message and exit status of an error that is the user's to fix, found anywhere in
    the chain of causes (a library may wrap one, as Prefect wraps a task's error): an
    ``LmpipeError``, or the machine's disk being full, read-only or closed to us."""
    seen = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, LmpipeError):
            return str(cur), cur.exit_code
        if isinstance(cur, OSError) and cur.errno in _SYSTEM_ERRORS:
            where = cur.filename or (str(State.home) if State.home else "the home folder")
            return _SYSTEM_ERRORS[cur.errno].format(where=where), 2
        cur = cur.__cause__ or cur.__context__
    return None


def _show_warning(  # noqa: PLR0913 - warnings.showwarning's signature
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A warning as one line on stderr, without the source line Python adds (--debug keeps
    Python's format); during a run, through its progress display."""
    from lmpipe.tasks.progress import current

    current().warn(category.__name__, one_line(str(message)))


def _click_exceptions() -> tuple[type[BaseException], ...]:
    """Click's usage errors: Typer >= 0.20 raises those of its vendored copy of Click."""
    import click

    kinds: list[type[BaseException]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:  # an older Typer uses click itself
        pass
    else:
        kinds.append(VendoredClickException)
    return tuple(kinds)


def _usage_command() -> str:
    """``lmpipe`` or ``lmpipe <command>``, for the --help hint of a usage error."""
    words = [a for a in sys.argv[1:] if not a.startswith("-")][:1]
    return " ".join(["lmpipe", *(w for w in words if w in _command_names())])


def _command_names() -> set[str]:
    return {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."
