"""The layering of docs/design.md §1: lm/ is a library that never imports Prefect."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_prefect_import_anywhere_under_lm():
    offenders = []
    for path in (ROOT / "lm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("prefect", "prefect_dask")
            ]
    assert offenders == []


def test_every_import_of_the_project_goes_through_the_lmpipe_namespace():
    """Installed, the folders are lmpipe.lm, lmpipe.tasks and lmpipe.flows: an ``import lm``
    would only work from a checkout (and would pick up a user's own ``lm.py``)."""
    offenders = []
    for folder in ("lm", "tasks", "flows", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                offenders += [
                    f"{path.relative_to(ROOT)}: {n}"
                    for n in names
                    if n.split(".")[0] in ("lm", "tasks", "flows", "data")
                ]
    assert offenders == []


def test_importing_the_whole_library_loads_no_prefect():
    modules = sorted(
        "lmpipe." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "lm").rglob("*.py")
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_wheel_carries_every_file_the_code_opens_under_one_top_level_name(tmp_path):
    """What ``pip install .`` installs: only the ``lmpipe`` namespace, with the registry, the SQL
    files and the embedded corpora as package data (the code opens each of them by path)."""
    import zipfile

    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("lmpipe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info" not in n} == {"lmpipe"}
    code = {
        f"lmpipe/{p.relative_to(ROOT)}"
        for folder in ("lm", "tasks", "flows", "data")
        for p in (ROOT / folder).rglob("*.py")
    }
    assert code <= set(names), sorted(code - set(names))  # every module, every subpackage
    data = {n for n in names if not n.endswith(".py") and ".dist-info" not in n}
    sql = {f"lmpipe/{p.relative_to(ROOT)}" for p in (ROOT / "lm").rglob("*.sql")}
    assert sql and sql <= data
    assert {
        "lmpipe/data/corpora.toml",
        "lmpipe/data/corpora/timemachine.txt",
        "lmpipe/data/corpora/jaychou_lyrics.txt.zip",
        "lmpipe/data/corpora/PROVENANCE.md",
    } <= data


def test_no_lazy_export_is_named_like_a_submodule():
    """A package that exports ``evaluate`` lazily must not also hold ``evaluate.py``: importing
    the submodule rebinds the package's attribute to the module, and ``neural.evaluate(...)``
    then fails with "'module' object is not callable" depending on import order."""
    import importlib

    clashes = []
    for package in ("lmpipe.lm.neural", "lmpipe.lm.ngram"):
        module = importlib.import_module(package)
        folder = Path(module.__file__).parent
        submodules = {p.stem for p in folder.glob("*.py")} | {
            p.name for p in folder.iterdir() if p.is_dir()
        }
        clashes += [f"{package}.{name}" for name in module.__all__ if name in submodules]
    assert clashes == []


def test_the_steps_call_functions_not_modules():
    """Every submodule imported, each export is still what the package documents."""
    import importlib
    import pkgutil

    for package in ("lmpipe.lm.neural", "lmpipe.lm.ngram"):
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__):
            importlib.import_module(f"{package}.{info.name}")
        for name in module.__all__:
            assert not isinstance(getattr(module, name), type(module)), f"{package}.{name}"
