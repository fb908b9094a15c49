"""The code's shape (issue 10): short functions, small modules, no reach-arounds across modules.

- No function in ``refscore/`` or ``backends/`` longer than 100 lines, at most one longer than 60
  (docstring excluded); no module longer than 400 lines.
- No module touches another module's private names: no ``from x import _name``, no
  ``module._name``, and no ``obj._name`` where ``_name`` is not defined in the module itself
  ("_name" means "this module only", STYLE.md); ``self._hook`` of a base class is inheritance.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = sorted(p for d in ("refscore", "backends") for p in (ROOT / d).rglob("*.py"))
ALLOWED_FOREIGN = {"_fields", "_asdict", "_replace", "_make", "_value"}  # NamedTuple API; autograd Box._value


def _function_lengths(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]
            if body:
                yield node.name, body[-1].end_lineno - body[0].lineno + 1


def test_files_were_found():
    assert len(FILES) > 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_at_most_400_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= 400, f"{path.relative_to(ROOT)} has {n} lines; split it by idea"


def test_functions_are_short():
    lengths = [(n, f"{p.relative_to(ROOT)}::{name}") for p in FILES
               for name, n in _function_lengths(ast.parse(p.read_text()))]
    over_100 = [x for x in lengths if x[0] > 100]
    over_60 = sorted(x for x in lengths if x[0] > 60)
    assert not over_100, over_100
    assert len(over_60) <= 1, over_60


def _private_access(path):
    tree = ast.parse(path.read_text())
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            # a package's own private module (`from . import _autograd_ext`) is the package's business
            own = {q.stem for q in path.parent.glob("_*.py")} if node.level == 1 and node.module is None else set()
            bad += [f"from {node.module} import {a.name}" for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__") and a.name not in own]
        elif isinstance(node, ast.Attribute):
            a = node.attr
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue  # a subclass using its base class's hooks (_energy, _score...) is inheritance
            if a.startswith("_") and not a.startswith("__") and a not in defined and a not in ALLOWED_FOREIGN:
                bad.append(f"line {node.lineno}: .{a}")
    return bad


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_cross_module_private_access(path):
    assert not _private_access(path), f"{path.relative_to(ROOT)}: {_private_access(path)}"


def test_every_package_folder_is_shipped():
    """A non-editable install (`pip install .`) ships only the packages pyproject.toml lists: a
    folder missing there imports in the source tree and fails after installation."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(("refscore", *p.parent.relative_to(ROOT / "refscore").parts)).rstrip(".")
             for p in (ROOT / "refscore").rglob("__init__.py")} | {"refscore.backends"}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_the_license_is_an_spdx_string():
    """setuptools >= 77 warns (twice per install) on the old ``license = {text = ...}`` table."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert any(r.replace(" ", "").startswith("setuptools>=77") for r in meta["build-system"]["requires"])
