"""The code's shape (issues 10 and 19): short functions, small modules, no reach-arounds across
modules, no import circle (lazy imports inside functions count), and no arrow from the core into
the apps (``refscore/apps/`` is built on the core, never the other way).

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


# ----- the import graph (issue 19) -------------------------------------------------------------
PACKAGE = ROOT / "refscore"


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """Every refscore module this file imports, at module level or inside functions (lazy)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("refscore")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("refscore"):
                continue
            submodules = {f"{target}.{a.name}" for a in node.names} & set(MODULES)  # `from . import losses`
            found |= submodules if len(submodules) == len(node.names) else submodules | {target}
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _ancestors(name):
    parts = name.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts))}


def _graph():
    """module -> the modules its imports run. Importing ``a.b.c`` runs ``a/b/__init__`` first, so
    the packages above a target count too, except those above the importer (already running)."""
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for target in _imports(path):
            while target and target not in MODULES:  # `from .x import f` where x is not a module
                target = target.rpartition(".")[0]
            if target:
                edges |= ({target} | _ancestors(target)) - _ancestors(name) - {name, "refscore"}
        graph[name] = edges
    return graph


def _cycles(graph):
    state, stack, cycles = {}, [], []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == "open":
                cycles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for u in sorted(graph):
        if u not in state:
            visit(u)
    return cycles


def test_the_graph_was_read():
    g = _graph()
    assert "refscore.models.nn" in g["refscore.energies.neural"]
    assert "refscore.sde.sdes" in g["refscore.sde.solvers"]
    assert len(g) > 40


def test_no_import_circle_lazy_imports_included():
    assert _cycles(_graph()) == []


def test_the_circle_finder_finds_a_planted_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_core_never_imports_the_apps():
    bad = sorted(f"{u} -> {v}" for u, vs in _graph().items() for v in vs
                 if not u.startswith("refscore.apps") and v.startswith("refscore.apps")
                 and u not in ("refscore.__main__",))
    assert not bad, bad
