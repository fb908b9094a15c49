r"""Write ``backends/cupy_signatures.json``: CuPy's array namespace and call signatures.

The ``strict`` backend (``backends/strict_backend.py``) dispatches a NumPy function applied to
its arrays the way ``cupy.ndarray.__array_function__`` does: it resolves the same-named function
of CuPy's namespace and binds the call against *CuPy's* signature. CI has no GPU and must not
download CuPy, so the namespace is recorded here once, from an installed CuPy (it imports
without a GPU)::

    python3 -m venv /tmp/cupyenv && /tmp/cupyenv/bin/pip install "cupy-cuda12x==14.2.0"
    /tmp/cupyenv/bin/python tools/cupy_signature_table.py backends/cupy_signatures.json

Each entry is ``"module.name": {"kind": ..., "params": [[name, kind, has_default, default], ...]}``
with ``params`` ``"unknown"`` where neither :func:`inspect.signature`, ``__text_signature__``
nor the first line of ``__doc__`` gives one (many CuPy functions are Cython). Ufuncs record
``nin``/``nout``, their methods, and the keywords ``ufunc.__call__`` accepts.
"""
from __future__ import annotations

import ast
import inspect
import json
import sys
import types

# the CuPy submodules that NumPy functions' ``__module__`` can name (numpy.linalg -> cupy.linalg ...)
SUBMODULES = ("", "linalg", "fft", "random", "lib", "lib.stride_tricks", "testing")
# keywords cupy.ufunc.__call__ pops before `Wrong arguments` (cupy/_core/_kernel.pyx, ufunc.__call__)
UFUNC_CALL_KEYWORDS = ["out", "dtype", "casting", "_where"]
UFUNC_METHODS = ("reduce", "accumulate", "reduceat", "outer", "at")


def _param_rows(sig):
    rows = []
    for p in sig.parameters.values():
        has_default = p.default is not inspect.Parameter.empty
        default = p.default if has_default and isinstance(p.default, (str, int, float, bool, type(None))) else None
        rows.append([p.name, p.kind.name, has_default, default if has_default else None])
    return rows


def _doc_signature(name, obj):
    """Parse ``name(a, b=1, *, c=None)`` from a Cython docstring's first line."""
    text = getattr(obj, "__text_signature__", None)
    if text:
        text = text.replace("($module, ", "(").replace("($self, ", "(").replace("($module)", "()")
        candidates = [f"def f{text}: pass"]
    else:
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        first = doc[0].strip() if doc else ""
        short = name.rsplit(".", 1)[-1]
        head, paren, rest = first.partition("(")
        if not paren or head.rsplit(".", 1)[-1] != short:  # "name(" or "_ndarray_base.name("
            return None
        candidates = [f"def f({rest.split(' -> ')[0]}: pass"]
    for src in candidates:
        try:
            fn = ast.parse(src).body[0]
        except SyntaxError:
            return None
        env: dict = {}
        try:
            exec(compile(ast.Module([fn], []), "<sig>", "exec"), {}, env)
        except Exception:  # defaults naming CuPy internals: keep the names, drop the values
            return None
        return inspect.signature(env["f"])
    return None


def _signature(name, obj):
    try:
        return _param_rows(inspect.signature(obj)), "inspect"
    except (TypeError, ValueError):
        pass
    sig = _doc_signature(name, obj)
    if sig is not None:
        return _param_rows(sig), "docstring"
    return "unknown", "none"


def _entry(cupy, name, obj):
    if isinstance(obj, cupy.ufunc):
        methods = [m for m in UFUNC_METHODS if hasattr(obj, m)]
        sigs = {m: _signature(f"{name}.{m}", getattr(obj, m))[0] for m in methods}
        return {"kind": "ufunc", "nin": obj.nin, "nout": obj.nout, "call_keywords": UFUNC_CALL_KEYWORDS,
                "methods": sigs}
    if isinstance(obj, type):
        return {"kind": "class"}
    if isinstance(obj, types.ModuleType):
        return {"kind": "module"}
    if callable(obj):
        params, source = _signature(name, obj)
        return {"kind": "function", "params": params, "signature_source": source}
    return {"kind": "constant"}


def build(cupy):
    import importlib

    table = {}
    for sub in SUBMODULES:
        modname = "cupy" + (f".{sub}" if sub else "")
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            key = f"{sub}.{attr}" if sub else attr
            table[key] = _entry(cupy, key, getattr(mod, attr))
    import cupyx.scipy.special as sp  # cupy.ndarray.__array_ufunc__ falls back to these

    special = {a: _entry(cupy, a, getattr(sp, a)) for a in sorted(dir(sp))
               if not a.startswith("_") and isinstance(getattr(sp, a), cupy.ufunc)}
    methods = {}
    for attr in sorted(dir(cupy.ndarray)):
        if attr.startswith("_") or not callable(getattr(cupy.ndarray, attr)):
            continue
        methods[attr] = _signature(f"ndarray.{attr}", getattr(cupy.ndarray, attr))[0]
    return {"cupy_version": cupy.__version__, "numpy_version": __import__("numpy").__version__,
            "generator": "tools/cupy_signature_table.py", "functions": table,
            "special_ufuncs": special, "ndarray_methods": methods}


def main(argv):
    import cupy

    out = argv[1] if len(argv) > 1 else "backends/cupy_signatures.json"
    table = build(cupy)
    with open(out, "w") as f:
        json.dump(table, f, indent=0, sort_keys=True)
        f.write("\n")
    fns = table["functions"].values()
    n_unknown = sum(1 for e in fns if e.get("params") == "unknown")
    print(f"wrote {out}: CuPy {table['cupy_version']}, {len(table['functions'])} names, "
          f"{n_unknown} signatures unknown")


if __name__ == "__main__":
    main(sys.argv)
