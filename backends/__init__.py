r"""Array backends for refscore: the only place that names NumPy or CuPy for array creation.

The core (``refscore/``) finds the backend from its input arrays (:func:`of`) and asks it for
new arrays and random numbers; arithmetic goes through ``autograd.numpy``, which dispatches to
the array's own module through NumPy's ``__array_ufunc__``/``__array_function__`` protocols.
Differentiation is HIPS autograd on every backend.

>>> from refscore import backends
>>> bk = backends.get("numpy")
>>> bk.name
'numpy'

Backends
--------
``"numpy"``   the reference backend (always available).
``"cupy"``    CuPy on a CUDA GPU (``pip install "refscore[gpu]"``).
``"strict"``  a CPU stand-in for a device backend: its arrays refuse implicit conversion to, and
              mixing with, NumPy arrays, as CuPy's do. It exists so that CI, which has no GPU,
              checks that no NumPy array leaks into device math.
"""
from __future__ import annotations

import os

from . import autograd_patches
from ._base import Backend

# every change refscore makes to autograd (its VJP rules for reshape, ravel, where, indexing and
# reductions, and its trace stack) is installed here, at import, and nowhere else: the code path of
# a NumPy computation never depends on which backend was used first, or whether threads ran
# (see autograd_patches)
autograd_patches.install()

__all__ = ["Backend", "get", "of", "of_rng", "available", "KNOWN"]

KNOWN = ("numpy", "cupy", "strict")
_cache: dict[str, Backend] = {}


def _load(name: str) -> Backend:
    if name == "numpy":
        from .numpy_backend import NumpyBackend

        return NumpyBackend()
    if name == "cupy":
        from .cupy_backend import CupyBackend

        return CupyBackend()
    if name == "strict":
        from .strict_backend import StrictBackend

        return StrictBackend()
    raise ValueError(f"unknown backend {name!r}; known backends are {', '.join(KNOWN)}")


def get(name: str | None = None) -> Backend:
    r"""Return the backend called ``name``.

    ``None`` means ``$REFSCORE_BACKEND`` if set, else ``"numpy"``.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError, RuntimeError
        For ``"cupy"`` when CuPy is not installed (``ImportError``) or no CUDA device is usable
        (``RuntimeError``); the message says how to install (``pip install "refscore[gpu]"``).
    """
    if name is None:
        name = os.environ.get("REFSCORE_BACKEND", "numpy") or "numpy"
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string, got {type(name).__name__}")
    name = name.lower()
    if name not in _cache:
        _cache[name] = _load(name)
    return _cache[name]


def available() -> list[str]:
    r"""Names of the real backends usable on this machine (``"numpy"`` always; ``"cupy"`` when
    CuPy imports and sees a CUDA device). The ``"strict"`` test double is not listed."""
    names = ["numpy"]
    try:
        get("cupy")
    except (ImportError, RuntimeError):
        pass
    else:
        names.append("cupy")
    return names


def _owner(a):
    """The backend owning one (unboxed) array-like, or None for Python/NumPy scalars."""
    import numpy

    if isinstance(a, numpy.ndarray):
        return get("numpy")
    from .strict_backend import StrictArray

    if isinstance(a, StrictArray):
        return get("strict")
    if type(a).__module__.split(".")[0] == "cupy":  # importing CuPy here would cost seconds
        cp = get("cupy")
        return cp if isinstance(a, cp.array_type) else None
    return None


def of(*arrays) -> Backend:
    r"""The backend that owns the given arrays.

    autograd boxes are looked through. Python and NumPy scalars belong to no backend and are
    skipped; if nothing owns anything, the NumPy backend is returned.

    Raises
    ------
    TypeError
        If the arrays belong to two backends, naming both, e.g.
        ``TypeError: arrays from two backends in one call: numpy and cupy``.
    """
    from autograd.tracer import getval

    found = None
    for a in arrays:
        if a is None:
            continue
        if isinstance(a, (list, tuple)):
            inner = of(*a)
            b = inner if any(_owner(getval(x)) is not None for x in a) else None
        else:
            b = _owner(getval(a))
        if b is None:
            continue
        if found is None:
            found = b
        elif b.name != found.name:
            raise TypeError(
                f"arrays from two backends in one call: {found.name} and {b.name}; "
                f"move them to one backend first (backends.get({found.name!r}).asarray(...))"
            )
    return found if found is not None else get("numpy")


def of_rng(rng) -> Backend:
    """The backend whose Generator ``rng`` is (TypeError for anything else)."""
    for name in KNOWN:
        try:
            bk = get(name)
        except (ImportError, RuntimeError):
            continue
        if isinstance(rng, bk.generator_type):
            return bk
    raise TypeError(f"rng must be a Generator of a refscore backend (backends.get(name).rng(seed)), "
                    f"got {type(rng).__name__}")
