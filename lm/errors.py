"""User-facing errors. Each message is one line: what went wrong, which file or value, what to do.

The command line prints ``lmpipe: error: <message>`` and exits with the error's ``exit_code``
(2), with a traceback only under ``--debug``; it tells errors apart by type, never by their
text. Anything that is not an ``LmpipeError`` is a bug and is reported as one (exit 1).

Errors a library caller may meet as bad arguments also derive from ``ValueError`` (a
``ConfigError`` is a ``ValueError`` too), so ``except ValueError`` keeps working for them.
"""

from __future__ import annotations

from typing import Any


class LmpipeError(Exception):
    """An error the user can fix: bad input, bad configuration, missing file."""

    exit_code = 2


class CorpusError(LmpipeError):
    """A corpus cannot be found, fetched, verified or decoded."""


class DownloadError(CorpusError):
    """A registry corpus could not be downloaded. ``transient`` says whether trying again in a
    moment may help (a timeout, a server error) or not (no network, a wrong checksum)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[object, tuple[str, bool]]:  # keeps ``transient`` pickled
        return (_download_error, (str(self), self.transient))


def _download_error(message: str, transient: bool) -> DownloadError:
    return DownloadError(message, transient=transient)


class ConfigError(LmpipeError, ValueError):
    """An invalid experiment configuration, model setting or command-line value."""


class WarehouseError(LmpipeError):
    """The warehouse is missing, damaged or refused a query."""


class ModelError(LmpipeError, ValueError):
    """A model that cannot be built, loaded or used as asked (an ARPA file that does not
    parse, a checkpoint of another vocabulary, discounts that cannot be estimated)."""


class TrainingError(LmpipeError):
    """A training that cannot go on (it diverged); the last good checkpoint is kept."""


class ResourceError(LmpipeError):
    """A limit of this machine was reached (memory limit, disk space, a read-only folder)."""


def validation_message(e: Exception, origin: str = "") -> str:
    """A pydantic ``ValidationError`` as one line: where (the dotted key), what, the value."""
    errors: list[dict[str, Any]] = getattr(e, "errors", lambda: [])()
    if not errors:
        return f"{origin + ': ' if origin else ''}{e}"
    err = errors[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (a typo?)"
    value = err.get("input")
    shown = ""
    if not isinstance(value, dict | list) and value is not None and "got" not in msg:
        shown = f" (got {value!r})"
    if err["type"] == "missing":
        shown = ""
    parts = [p for p in (origin, where) if p]
    return ": ".join([*parts, msg + shown])
