r"""CuPy's dispatch rules, read from a checked-in table, for the ``strict`` stand-in.

``cupy.ndarray.__array_function__`` resolves ``numpy.<mod>.<name>`` to ``cupy.<mod>.<name>`` and
calls it with the caller's arguments; ``__array_ufunc__`` resolves a ufunc by name in ``cupy`` (or
``cupyx.scipy.special``) and refuses ``numpy.ndarray`` operands (cupy/_core/core.pyx). What CuPy
then rejects, the stand-in rejects with the same exception type:

* a name CuPy does not have (NumPy raises ``TypeError: no implementation found``);
* arguments that do not bind to *CuPy's* signature (unknown keywords, too many positionals);
* ``order=None``: CuPy's ``internal._normalize_order`` does ``len(order)``;
* ufunc keywords other than ``out``, ``dtype``, ``casting`` (``where=`` included), and ufunc
  methods CuPy's ufunc lacks.

The table ``cupy_signatures.json`` is written by ``tools/cupy_signature_table.py`` from an
installed ``cupy-cuda12x``; its CuPy version is :func:`cupy_version`. Dtype promotion needs no
table: CuPy 14 treats Python scalars as weak and NumPy scalars as strong (``_scalar.CScalar``),
which is NumPy 2's rule (NEP 50), so the NumPy computation underneath promotes as CuPy would.
"""
from __future__ import annotations

import functools
import inspect
import json
import os

_PATH = os.path.join(os.path.dirname(__file__), "cupy_signatures.json")


@functools.lru_cache(maxsize=1)
def table():
    """The recorded CuPy namespace (a dict; see the module docstring)."""
    with open(_PATH) as f:
        return json.load(f)


def cupy_version():
    """The CuPy version the table was generated from."""
    return table()["cupy_version"]


@functools.lru_cache(maxsize=None)
def _signature(rows):
    if rows == "unknown":
        return None
    params = [inspect.Parameter(name, getattr(inspect.Parameter, kind),
                                default=default if has_default else inspect.Parameter.empty)
              for name, kind, has_default, default in rows]
    return inspect.Signature(params)


def _freeze(rows):
    return rows if rows == "unknown" else tuple(tuple(r) for r in rows)


def _bind(what, rows, args, kwargs):
    sig = _signature(_freeze(rows))
    if sig is None:  # CuPy gives no signature for it: accept, as the table cannot say
        return
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{what}: CuPy {cupy_version()} rejects these arguments ({e}); "
                        f"its signature is {what}{sig}") from None
    if "order" in bound.arguments and bound.arguments["order"] is None:
        raise TypeError(f"{what}(..., order=None): CuPy's _normalize_order takes len(order) -> "
                        "TypeError: object of type 'NoneType' has no len(); pass order='C' or omit it")


def lookup(func):
    """The table key of NumPy function ``func``, as CuPy's ``__array_function__`` resolves it."""
    parts = (getattr(func, "__module__", None) or "numpy").split(".")[1:]
    key = ".".join(parts + [func.__name__])
    entry = table()["functions"].get(key)
    if entry is None or entry["kind"] not in ("function", "ufunc"):
        raise TypeError(f"numpy.{key} has no CuPy counterpart (cupy.{key} does not exist in CuPy "
                        f"{cupy_version()}); on a GPU this call fails")
    return key, entry


def check_function(func, args, kwargs):
    """Raise ``TypeError`` where ``cupy.<func>(*args, **kwargs)`` would."""
    key, entry = lookup(func)
    if entry["kind"] == "function":
        _bind(f"cupy.{key}", entry["params"], args, kwargs)


def check_ufunc(ufunc, method, inputs, kwargs):
    """Raise ``TypeError`` where ``cupy.<ufunc>.<method>(*inputs, **kwargs)`` would."""
    name = ufunc.__name__
    entry = table()["functions"].get(name) or table()["special_ufuncs"].get(name)
    if entry is None or entry["kind"] not in ("ufunc", "function"):
        raise TypeError(f"ufunc numpy.{name} has no CuPy counterpart in CuPy {cupy_version()}")
    if entry["kind"] == "function":  # a generalised ufunc (cupy.matmul is a _GUFunc): no methods
        if method != "__call__":
            raise TypeError(f"cupy.{name} has no method {method!r} in CuPy {cupy_version()}")
        return _bind(f"cupy.{name}", entry["params"], inputs, kwargs)
    if method == "__call__":
        bad = sorted(set(kwargs) - set(entry["call_keywords"]))
        if bad:
            raise TypeError(f"cupy.{name}(): Wrong arguments {bad} (CuPy's ufunc.__call__ takes only "
                            f"{', '.join(entry['call_keywords'])})")
    elif method not in entry["methods"]:
        raise TypeError(f"cupy.{name} has no method {method!r} in CuPy {cupy_version()}")
    else:
        kw = dict(kwargs)
        if isinstance(kw.get("out"), tuple):  # NumPy hands ufunc methods `out` as a 1-tuple
            kw["out"] = kw["out"][0]
        _bind(f"cupy.{name}.{method}", entry["methods"][method], (None, *inputs), kw)


def check_method(name, args, kwargs):
    """Raise where ``cupy.ndarray.<name>(*args, **kwargs)`` would (``AttributeError`` if absent)."""
    rows = table()["ndarray_methods"].get(name)
    if rows is None:
        raise AttributeError(f"cupy.ndarray has no method {name!r} (CuPy {cupy_version()})")
    _bind(f"cupy.ndarray.{name}", rows, (None, *args), kwargs)


def has_name(name):
    """Whether ``cupy.<name>`` exists (a dotted name for submodules: ``"linalg.norm"``)."""
    t = table()["functions"]
    return name in t or any(k.startswith(name + ".") for k in t)
