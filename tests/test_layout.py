"""The layout rules of the code base (README "Architecture"): small modules and functions, one
reader of the checkpoint metadata, evaluation independent of training, no import-path hacks,
and an architecture table that matches the folders."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
import tomllib
from pathlib import Path

import pytest

from .conftest import REPO

CODE = [p for folder in ("mcviz", "app", "scripts", "benchmarks") for p in sorted((REPO / folder).rglob("*.py"))]


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


def _statement_ends(source: str) -> list[int]:
    """The line of each logical line's end: sizes count statements, so how the formatter (ruff format)
    breaks a long call over lines does not count against a module or a function."""
    return [t.start[0] for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NEWLINE]


def test_modules_and_functions_are_small():
    """At most 300 logical lines a module and 50 a function (the physical limits were 400 and 60 before
    the code was formatted by ruff, which spreads a wrapped call over more lines)."""
    long_modules, long_functions = [], []
    for p in CODE:
        source = p.read_text()
        ends = _statement_ends(source)
        if len(ends) > 300:
            long_modules.append((_rel(p), len(ends)))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if (n := sum(node.lineno <= e <= node.end_lineno for e in ends)) > 50:
                    long_functions.append((_rel(p), node.name, n))
    assert not long_modules, f"modules over 300 logical lines: {long_modules}"
    assert not long_functions, f"functions over 50 logical lines: {long_functions}"


def test_ruff_lints_and_formats_clean():
    """The lint rules and the format of pyproject.toml's [tool.ruff] hold everywhere."""
    for cmd in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run([sys.executable, "-m", "ruff", *cmd], cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, f"ruff {' '.join(cmd)}:\n{out.stdout[-3000:]}{out.stderr[-1000:]}"


# String-keyed reads of the metadata: meta.get("..."), meta["..."], (m.get("hparams") or {})...
_RAW_META = re.compile(r"""\b(meta|m)\s*(\.get\(\s*["']|\[\s*["'])|\.get\(\s*["'](hparams|metrics|groups|input)["']""")


def test_only_the_io_package_reads_metadata_by_key():
    found = []
    for p in CODE:
        if _rel(p).startswith("mcviz/io/"):
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if _RAW_META.search(line):
                found.append(f"{_rel(p)}:{i}: {line.strip()}")
    assert not found, "read CheckpointMeta's attributes instead:\n" + "\n".join(found)


def test_evaluation_and_explanations_import_nothing_from_training():
    """Imported alone (a fresh interpreter), the evaluation, explanation and io packages do not
    pull in mcviz.train."""
    code = (
        "import sys, importlib, pkgutil\n"
        "import mcviz.evaluate, mcviz.explain, mcviz.io, mcviz.trunk.cache\n"
        "for pkg in (mcviz.evaluate, mcviz.explain):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('mcviz.train')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for p in sorted((REPO / "mcviz" / "evaluate").glob("*.py")):
        assert not re.search(r"^\s*from \.\.train|^\s*(from|import) mcviz\.train", p.read_text(), re.M), _rel(p)


def test_no_import_path_hacks():
    offenders = [
        _rel(p)
        for p in CODE + sorted((REPO / "tests").glob("*.py"))
        if "sys.path." + "insert" in p.read_text() and p != REPO / "tests" / "conftest.py"
    ]
    assert not offenders


def test_the_readme_architecture_names_every_module():
    text = (REPO / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`((?:mcviz|app)/[\w/]+(?:\.py)?)`", section))
    modules = {_rel(p) for p in CODE if _rel(p).startswith(("mcviz/", "app/")) and p.name != "__init__.py"}
    folders = {_rel(p.parent) + "/" for p in CODE if _rel(p).startswith(("mcviz/", "app/"))}

    def covered(module: str) -> bool:
        return module in named or any(
            module.startswith(f if f.endswith("/") else f + "/") for f in named if f.endswith("/")
        )

    assert [m for m in sorted(modules) if not covered(m)] == []
    assert [
        n for n in sorted(named) if n not in modules and n not in folders and n.rstrip("/") + "/" not in folders
    ] == []


@pytest.mark.parametrize("term", ["channel map", "merged map", "body", "frozen part", "part profile"])
def test_the_glossary_defines(term):
    glossary = (REPO / "docs" / "glossary.md").read_text()
    assert re.search(rf"\*\*{term}\*\*", glossary, re.I)


def test_the_train_flags_come_from_the_config():
    """One source for every default: the parsed flags of `mcviz train` build exactly the
    dataclass's defaults, and every command-line field has its flag."""
    import dataclasses

    from mcviz.cli import build_parser
    from mcviz.train.config import HPARAMS, TrainConfig, config_from_args

    args = build_parser().parse_args(["train", "--dataset", "cub", "--root", "r", "--out", "o"])
    assert config_from_args(args, "cmd") == TrainConfig(dataset="cub", root="r", out="o", command="cmd")
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    cli_fields = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata["cli"]}
    assert cli_fields <= flags
    assert {"lr", "mu", "lam", "seed", "freeze", "cache_views", "body_lr"} <= set(HPARAMS)
    assert not {"out", "root", "workers", "device", "command"} & set(HPARAMS)


# The floors of the package, lowest first: a module imports only from its own floor or below.
FLOORS = ["data", "core", "io", "trunk", "explain", "evaluate", "train", "cli"]


def _imported_floors(path: Path) -> list[tuple[int, str]]:
    """``(line, floor)`` of every mcviz package a module imports (relative or absolute, at the top or
    inside a function)."""
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts[:-1]) if path.name != "__init__.py" else list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - (node.level - 1)]
                full = base + (node.module.split(".") if node.module else [])
            else:
                full = (node.module or "").split(".")
            names = [a.name for a in node.names]
            if full[:1] == ["mcviz"]:
                if len(full) > 1:
                    found.append((node.lineno, full[1]))
                else:  # from mcviz import data / from .. import data
                    found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.split(".")[1])
                for a in node.names
                if a.name.startswith("mcviz.") and len(a.name.split(".")) > 1
            ]
    return found


def test_imports_run_down_the_floors():
    """data -> core -> io -> trunk -> explain -> evaluate -> train -> cli: no import from a lower
    floor reaches a higher one (and so no circle between floors)."""
    upward = []
    for p in sorted((REPO / "mcviz").rglob("*.py")):
        parts = p.relative_to(REPO / "mcviz").parts
        if len(parts) < 2 or parts[0] not in FLOORS:
            continue
        own = FLOORS.index(parts[0])
        for line, floor in _imported_floors(p):
            if floor in FLOORS and FLOORS.index(floor) > own:
                upward.append(f"{_rel(p)}:{line} ({parts[0]} -> {floor})")
    assert not upward, "imports up the floors:\n" + "\n".join(upward)


def test_the_library_and_its_cli_need_neither_streamlit_nor_plotly():
    """`pip install .` leaves the app's packages out (they are the `app` extra): importing every module
    of the library and running `mcviz --help` must not need them."""
    code = (
        "import sys, importlib, pkgutil\n"
        "sys.modules['streamlit'] = None; sys.modules['plotly'] = None  # importing either now fails\n"
        "import mcviz\n"
        "for m in pkgutil.walk_packages(mcviz.__path__, 'mcviz.'):\n"
        "    if m.name != 'mcviz.__main__':  # that one runs the CLI\n"
        "        importlib.import_module(m.name)\n"
        "from mcviz.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "calibrate-ood" in out.stdout and "consistency" in out.stdout
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in deps["dependencies"] if d.startswith(("streamlit", "plotly"))]
    assert any(d.startswith("streamlit") for d in deps["optional-dependencies"]["app"])
