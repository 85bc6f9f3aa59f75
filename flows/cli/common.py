"""What the commands share: the options every command takes, the environment read once at the
edge, running a flow against a Prefect API, options made from a settings schema, and printing.

Every setting lmpipe reads from the environment is read here, through Typer's ``envvar`` (a
user's ``LMPIPE_*`` variables) and handed on as an argument; the only variables this process
writes are Prefect's own settings, for Prefect to read when it is imported.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from lmpipe.lm.errors import ConfigError
from lmpipe.lm.steps.home import Home

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

app = typer.Typer(
    name="lmpipe",
    help=(
        "Perplexity benchmarks from unigram to LSTM: n-gram and neural language models on "
        "your corpora."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

HomeOpt = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="LMPIPE_HOME",
        help="Root for everything a run writes (warehouse, cache, reports).",
        file_okay=False,
    ),
]
CorporaDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--corpora-dir",
        envvar="LMPIPE_CORPORA_DIR",
        help="A folder of registry corpora under their published names, used before any "
        "download (checksums still verified).",
        file_okay=False,
    ),
]
SpillDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--spill-dir",
        envvar="LMPIPE_SPILL_DIR",
        help="Where DuckDB spills past its memory limit [default: <home>/data/spill].",
        file_okay=False,
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
MemoryLimitOpt = Annotated[
    str | None,
    typer.Option(
        "--memory-limit",
        envvar="LMPIPE_MEMORY_LIMIT",
        help=(
            "DuckDB memory limit for n-gram counting and out-of-core estimation, e.g. 3GB "
            "(default: min(4 GB, half the RAM)); beyond it DuckDB spills to the spill folder."
        ),
    ),
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        envvar="LMPIPE_NGRAM_ENGINE",
        help=(
            "Where mkn models of order >= 2 are estimated: memory, duckdb (out of core, "
            "bounded by --memory-limit) or auto (duckdb when the model could outgrow the "
            "limit). Results are identical. [default: auto]"
        ),
    ),
]

# Offline, quiet defaults for Prefect (a user's environment still wins).
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "lmpipe",
}


class State:
    """Process-wide flags of the command line (set once, by ``main`` and the options)."""

    debug = False
    home: Path | None = None  # the command's --home, resolved: named when a write fails


def home_of(
    home: Path,
    debug: bool,
    create: bool = False,
    corpora_dir: Path | None = None,
    spill_dir: Path | None = None,
) -> Home:
    """Resolve ``--home`` (and the places given with it); only commands that write a run
    create it (a typo in ``lmpipe sql --home`` must not leave an empty folder behind)."""
    State.debug = State.debug or debug
    root = home.expanduser().resolve()
    State.home = root
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return Home(
        root,
        corpora_dir.expanduser().resolve() if corpora_dir else None,
        spill_dir.expanduser().resolve() if spill_dir else None,
    )


def prefect_env(home: Home, verbose: bool = True) -> None:
    """Prefect's settings for this process, at the edge (Prefect reads its environment once,
    when it is imported). Without ``verbose`` Prefect's console log is off: its records still go
    to the Prefect API and the UI, the terminal shows lmpipe's progress and one-line errors."""
    for k, v in PREFECT_DEFAULTS.items():
        os.environ.setdefault(k, v)
    if not verbose:
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"
    os.environ.setdefault(
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(home.state_dir / "prefect-results")
    )


def start_prefect(home: Home, verbose: bool = True) -> None:
    """Prefect's settings for this process and, unless they name an API, its temporary server,
    starting now: it boots (3.5-4 s) while the command imports Prefect and the flow's module and
    checks its inputs. A command calls this as soon as it knows its home; ``call_flow`` does
    anyway (a second call changes nothing)."""
    prefect_env(home, verbose or State.debug)
    from lmpipe.flows.server import start_early

    start_early()


def call_flow(
    home: Home, module: str, name: str, /, verbose: bool = True, **params: Any
) -> dict[str, Any]:
    """``<module>.<name>(**params)``: a flow (or what runs one), reporting to the configured
    Prefect API or to a temporary server started for it (``lmpipe.flows.server``)."""
    import importlib

    start_prefect(home, verbose)
    from lmpipe.flows.server import prefect_api

    with prefect_api() as api:
        fn = getattr(importlib.import_module(module), name)
        api.wait_ready()  # the server started while the module was imported
        result: dict[str, Any] = fn(**params)
        return result


def step_flow(name: str, home: Home, **params: Any) -> dict[str, Any]:
    """Run the step flow ``lmpipe.flows.steps.<name>`` (``--prefect``)."""
    places = {
        "home": str(home.root),
        "corpora_dir": str(home.corpora_dir) if home.corpora_dir else None,
    }
    return call_flow(home, "lmpipe.flows.steps", name, True, **places, **params)


def emit_json(obj: dict[str, Any]) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
            return str(v)  # JSON has no inf/nan: "inf" keeps the value readable
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    typer.echo(json.dumps(clean(obj), ensure_ascii=False, sort_keys=True))


def parse_set(values: list[str]) -> dict[str, Any]:
    """``--set neural.hidden=256`` -> {"neural": {"hidden": 256}} (values parsed as TOML, so
    that ``--set neural.tied=true`` is a boolean and ``--set ngram.orders=[2,3]`` a list)."""
    import tomllib

    out: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. neural.hidden=256")
        key, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def clean_debris(home: Home) -> None:
    """Remove what a killed run left (temporary files, uncommitted run folders) before writing."""
    from lmpipe.lm.check import clean_debris as clean

    clean(home.warehouse)


def validated(model: type[M], values: dict[str, Any]) -> M:
    """``model`` made from command-line values; a bad one is a one-line ``ConfigError`` that
    names the option as the user typed it (``--min-freq must be at least 1 (got 0)``)."""
    from pydantic import ValidationError

    try:
        return model.model_validate(values)
    except ValidationError as e:
        raise ConfigError(option_message(e)) from None


def option_message(e: Any) -> str:
    """A pydantic ``ValidationError`` about command-line values, phrased with their flags."""
    err = e.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else ""
    flag = "--" + name.replace("_", "-") if name else "the options"
    ctx, value, kind = err.get("ctx") or {}, err.get("input"), err["type"]
    got = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
    if kind in ("greater_than", "greater_than_equal") and ctx:
        bound = ctx.get("gt", ctx.get("ge"))
        if kind == "greater_than" and bound == 0:
            return f"{flag} must be positive{got}"
        return (
            f"{flag} must be {'more than' if kind == 'greater_than' else 'at least'} {bound}{got}"
        )
    if kind in ("less_than", "less_than_equal") and ctx:
        bound = ctx.get("lt", ctx.get("le"))
        return f"{flag} must be {'below' if kind == 'less_than' else 'at most'} {bound}{got}"
    if kind == "literal_error" and ctx:
        choices = [c.strip().strip("'") for c in str(ctx.get("expected", "")).split(",")]
        choices = [c for part in choices for c in part.split(" or ")]
        choices = [c.strip().strip("'") for c in choices if c.strip()]
        listed = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)
        return f"{flag} must be {listed}{got}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{flag}: {msg}{got if 'got' not in msg else ''}" if name else msg


# ----------------------------------------------------------------------------- schema options


def _option_type(annotation: Any) -> Any:
    """The type Typer parses for a schema field: ``Literal`` choices as text (the schema checks
    them and says which are allowed), ``X | None`` as ``X``."""
    if typing.get_origin(annotation) is typing.Literal:
        return str
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _option_type(args[0])
    return annotation


def schema_options(model: type[BaseModel], names: Iterable[str], panel: str) -> Callable[[F], F]:
    """Give a Typer command one ``--option`` per field of ``model`` named in ``names``, its
    help and default taken from the schema (``[default: ...]``). The command receives the
    values the user gave, and only those, as ``given`` (the schema supplies the rest)."""
    names = tuple(names)

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn, eval_str=True)
        extra = []
        for name in names:
            field = model.model_fields[name]
            flag = "--" + name.replace("_", "-")
            option_type = _option_type(field.annotation)
            decl = f"{flag}/--no-{flag[2:]}" if option_type is bool else flag
            default = field.default
            shown = "none" if default is None else str(default).lower() if isinstance(
                default, bool) else default  # fmt: skip
            option = typer.Option(
                decl, help=f"{field.description} \\[default: {shown}]", rich_help_panel=panel
            )
            extra.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[option_type | None, option],
                )
            )

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            mine = {n: v for n in names if (v := kwargs.pop(n, None)) is not None}
            return fn(*args, given={**(kwargs.pop("given", None) or {}), **mine}, **kwargs)

        params = [p for p in sig.parameters.values() if p.name != "given"]
        command.__signature__ = sig.replace(parameters=params + extra)  # type: ignore[attr-defined]
        return command  # type: ignore[return-value]

    return decorate
