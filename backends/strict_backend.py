r"""A CPU stand-in for CuPy, for CI machines without a GPU: it fails where CuPy fails.

``StrictArray`` wraps a NumPy array and follows ``cupy.ndarray``'s dispatch rules (CuPy's
``__array_function__``/``__array_ufunc__`` in cupy/_core/core.pyx), checked against a recorded
table of CuPy's namespace and signatures (:mod:`._cupy_rules`):

* a NumPy function applied to it resolves to the same-named CuPy function and is bound against
  CuPy's signature: a function CuPy lacks, an unknown keyword or ``order=None`` is a ``TypeError``;
* ufunc operands that are ``numpy.ndarray`` (0-d included) are refused, and so are ufunc keywords
  CuPy's ufuncs do not take (``where=``); Python scalars are weak, NumPy scalars strong (NEP 50);
* implicit conversion to NumPy (``numpy.asarray(a)``) raises; explicit transfer is ``a.get()`` or
  ``backends.get("strict").to_numpy(a)``;
* array methods exist only where ``cupy.ndarray`` has them, bound against its signatures.

It also **counts host synchronisations** (``bool``, ``float``, ``int``, ``index``, ``item``,
``tolist``, ``get``, ``to_numpy``: every place CuPy waits for the device) and float64 arrays
created, through :func:`count_syncs` and :func:`sync_count`, so tests can assert that a sampler
step never waits for the device and that float32 work never creates a float64 array.
"""
from __future__ import annotations

import contextlib
import traceback
import types

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import _cupy_rules as rules
from ._base import Backend

__all__ = ["StrictArray", "StrictBackend", "count_syncs", "sync_count", "Counts"]


class Counts:
    r"""What happened inside one :func:`count_syncs` block.

    Attributes
    ----------
    syncs : int
        Host synchronisations (each would block on a GPU until queued work is done).
    sites : list of str
        Where each sync happened (the innermost refscore frame), for error messages.
    float64_arrays : int
        StrictArrays of dtype float64 created.
    """

    def __init__(self):
        self.syncs, self.sites, self.float64_arrays = 0, [], 0

    def __repr__(self):
        return f"Counts(syncs={self.syncs}, float64_arrays={self.float64_arrays}, sites={self.sites})"


_ACTIVE: list[Counts] = []
_TOTAL = [0]


def _site():
    frames = [f for f in traceback.extract_stack()[:-3] if "refscore" in f.filename or "backends" in f.filename]
    f = frames[-1] if frames else traceback.extract_stack()[-4]
    return f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno} {f.name}"


def _sync():
    _TOTAL[0] += 1
    if _ACTIVE:
        site = _site()
        for c in _ACTIVE:
            c.syncs += 1
            c.sites.append(site)


def sync_count():
    r"""Total host synchronisations of strict arrays since import (monotone counter)."""
    return _TOTAL[0]


@contextlib.contextmanager
def count_syncs():
    r"""Count host synchronisations and float64 allocations of strict arrays in the block.

    >>> with count_syncs() as c:   # doctest: +SKIP
    ...     x = langevin_step(x, score, 0.1, rng)
    >>> c.syncs
    0
    """
    c = Counts()
    _ACTIVE.append(c)
    try:
        yield c
    finally:
        _ACTIVE.remove(c)


_F64 = numpy.dtype("float64")


def _refuse_host(kind):
    raise TypeError(f"a numpy.ndarray was mixed with a StrictArray (device) array in {kind}; CuPy "
                    "refuses implicit host-to-device transfer: move it with backends.get('strict').asarray(...)")


def _unwrap(obj, ufunc=False):
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, numpy.ndarray) and (ufunc or obj.ndim > 0):
        _refuse_host("a ufunc" if ufunc else "a function call")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, ufunc) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, ufunc) for k, v in obj.items()}
    return obj


def _foreign(a):
    """Another array-protocol type (an autograd box, say) that must handle the operation."""
    return (not isinstance(a, (StrictArray, numpy.ndarray, numpy.generic))
            and hasattr(type(a), "__array_ufunc__"))


def _wrap(obj):
    if isinstance(obj, numpy.ndarray):
        return StrictArray(obj)
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    if isinstance(obj, numpy.generic):
        return StrictArray(numpy.asarray(obj))  # CuPy returns 0-d device arrays, not host scalars
    return obj


class StrictArray(NDArrayOperatorsMixin):
    """A NumPy array in disguise that dispatches like ``cupy.ndarray`` (see module docstring)."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100

    def __init__(self, a):
        self._a = a = numpy.asarray(a)
        if a.dtype == _F64 and _ACTIVE:
            for c in _ACTIVE:
                c.float64_arrays += 1

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion of a StrictArray to a NumPy array is not allowed (as with "
                        "cupy.ndarray); use .get() or backends.get('strict').to_numpy(a)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(_foreign(a) for a in inputs):
            return NotImplemented  # e.g. an autograd ArrayBox: let it handle the operation
        rules.check_ufunc(ufunc, method, inputs, kwargs)
        inputs = _unwrap(inputs, ufunc=True)
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"], ufunc=True)
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        if any(t is not StrictArray and not issubclass(t, numpy.ndarray) for t in types_):
            return NotImplemented
        rules.check_function(func, args, kwargs)
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):
        # the methods of cupy.ndarray, bound against CuPy's signatures
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in rules.table()["ndarray_methods"]:
            raise AttributeError(f"'StrictArray' (cupy.ndarray) has no attribute {name!r}")
        meth = getattr(self._a, name)

        def call(*args, **kwargs):
            rules.check_method(name, args, kwargs)
            return _wrap(meth(*_unwrap(args), **_unwrap(kwargs)))

        return call

    # --- host synchronisations (counted) ----------------------------------------------------
    def get(self):
        """Explicit copy to a ``numpy.ndarray`` (CuPy's spelling); a host sync."""
        _sync()
        return self._a.copy()

    def item(self):
        _sync()
        return self._a.item()

    def tolist(self):
        _sync()
        return self._a.tolist()

    def __float__(self):
        _sync()
        return float(self._a)

    def __int__(self):
        _sync()
        return int(self._a)

    def __bool__(self):
        _sync()
        return bool(self._a)

    def __index__(self):
        _sync()
        return self._a.__index__()

    # --- attributes (host metadata, no sync) ------------------------------------------------
    shape = property(lambda self: self._a.shape)
    ndim = property(lambda self: self._a.ndim)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    T = property(lambda self: StrictArray(self._a.T))

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __getitem__(self, idx):
        return _wrap(self._a[_unwrap(idx)])

    def __setitem__(self, idx, value):
        self._a[_unwrap(idx)] = _unwrap(value)

    def __iter__(self):
        return (_wrap(r) for r in self._a)

    def __hash__(self):
        return id(self)


class _StrictGenerator:
    """``numpy.random.Generator`` returning StrictArrays (like ``cupy.random.Generator``)."""

    def __init__(self, seed=None):
        self._g = numpy.random.default_rng(seed)

    def standard_normal(self, size=None, dtype="float64", out=None):
        return StrictArray(numpy.asarray(self._g.standard_normal(size=size, dtype=dtype)))

    def random(self, size=None, dtype="float64", out=None):
        return StrictArray(numpy.asarray(self._g.random(size=size, dtype=dtype)))

    @property
    def bit_generator(self):
        return self._g.bit_generator


def _creator(name, fn):
    def make(*args, **kwargs):
        rules.check_function(fn, args, kwargs)
        return StrictArray(fn(*_unwrap(args), **_unwrap(kwargs)))

    make.__name__ = name
    return make


def _asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, StrictArray):
        return a if dtype is None else a.astype(dtype, copy=False)
    if isinstance(a, (list, tuple)) and any(isinstance(e, StrictArray) for e in a):
        a = [_unwrap(e) for e in a]
    return StrictArray(numpy.array(a, dtype=dtype))


_CREATORS = ("zeros", "ones", "empty", "full", "eye", "arange", "linspace", "zeros_like", "ones_like",
             "full_like", "empty_like", "identity")


class _StrictNamespace(types.ModuleType):
    """The stand-in's ``xp``: exactly CuPy's names. Creation functions return StrictArrays; the
    rest are NumPy's, which dispatch back to :class:`StrictArray` through the array protocols."""

    def __getattr__(self, name):
        if name.startswith("_") or not rules.has_name(name):
            raise AttributeError(f"module 'cupy' has no attribute {name!r} (CuPy {rules.cupy_version()}); "
                                 "the strict stand-in exposes only CuPy's namespace")
        value = getattr(numpy, name)
        if name in _CREATORS:
            value = _creator(name, value)
        setattr(self, name, value)
        return value


xp = _StrictNamespace("strict_xp")
xp.asarray = xp.array = _asarray
xp.ndarray = StrictArray


class StrictBackend(Backend):
    r"""The ``"strict"`` backend: CuPy's rules on the CPU (see the module docstring)."""

    name = "strict"
    xp = xp
    array_type = StrictArray
    generator_type = _StrictGenerator

    def __init__(self):
        from . import autograd_patches

        autograd_patches.register(StrictArray, xp)

    def asarray(self, a, dtype=None):
        if type(a).__module__.split(".")[0] == "cupy":
            a = a.get()
        return _asarray(a, dtype)

    def to_numpy(self, a):
        if isinstance(a, StrictArray):
            return a.get()
        return numpy.asarray(a)

    def rng(self, seed=None):
        return _StrictGenerator(seed)

    def device_name(self):
        return "strict CPU stand-in for a device backend"
