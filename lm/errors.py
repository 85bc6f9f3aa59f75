"""User-facing errors. Each message is one line: what went wrong, which file or value, what to do.

The command line prints ``lmpipe: error: <message>`` and exits non-zero, with a traceback only
under ``--debug``. Anything that is not an ``LmpipeError`` is a bug and is reported as one.
"""


class LmpipeError(Exception):
    """An error the user can fix: bad input, bad configuration, missing file."""

    exit_code = 2


class CorpusError(LmpipeError):
    """A corpus cannot be found, fetched, verified or decoded."""


class ConfigError(LmpipeError):
    """An invalid experiment configuration or command-line value."""


class WarehouseError(LmpipeError):
    """The warehouse is missing, damaged or refused a query."""
