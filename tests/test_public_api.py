"""The public API (mcviz's own names, the explainer, the rankings, the data sets) is typed and
documented: mypy passes on it and every public function says its Args, Returns and Raises."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import mcviz
from mcviz.data import build
from mcviz.explain import Explainer, top_channels

from .conftest import REPO

# Overrides of torch's own methods keep torch's documentation.
_INHERITED = {"extra_repr"}


def _public_api():
    for obj in [*(getattr(mcviz, n) for n in mcviz.__all__), Explainer, top_channels, build]:
        if not inspect.isclass(obj):
            yield obj.__name__, obj
            continue
        yield obj.__name__, obj
        for name, member in vars(obj).items():
            if name.startswith("_") or name in _INHERITED:
                continue
            f = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            if inspect.isfunction(f):
                yield f"{obj.__name__}.{name}", f


def _missing(name: str, obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return []  # an exception's message is its argument
    if inspect.isclass(obj):
        params = [p for p in inspect.signature(obj).parameters if p not in ("self", "args", "kwargs")]
        return [] if not params or "Args:" in doc or "Attributes:" in doc else ["Args"]
    sig = inspect.signature(obj)
    out = []
    if [p for p in sig.parameters if p not in ("self", "cls")] and "Args:" not in doc:
        out.append("Args")
    if sig.return_annotation not in (None, "None", inspect.Signature.empty) and "Returns:" not in doc:
        out.append("Returns")
    return out


def test_every_public_function_documents_its_args_and_returns():
    missing = {name: m for name, obj in _public_api() if (m := _missing(name, obj))}
    assert not missing, f"docstrings without these sections: {missing}"


def test_a_function_that_raises_says_so():
    """Where a public function raises on purpose, its docstring has a Raises section."""
    import ast
    import textwrap

    silent = []
    for name, obj in _public_api():
        if inspect.isclass(obj):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
        if any(isinstance(n, ast.Raise) and n.exc is not None for n in ast.walk(tree)):
            if "Raises:" not in (obj.__doc__ or ""):
                silent.append(name)
    assert not silent, f"raise without a Raises section: {silent}"


@pytest.mark.timeout(300)
def test_the_public_api_type_checks():
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
