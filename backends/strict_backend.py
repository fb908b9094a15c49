"""A CPU stand-in for a device backend, for CI machines without a GPU.

``StrictArray`` wraps a NumPy array and behaves like ``cupy.ndarray`` in the ways that catch
host/device mistakes:

* implicit conversion to NumPy (``numpy.asarray(a)``, ``a.__array__()``) raises ``TypeError``,
  as CuPy does, so a NumPy helper that silently builds host arrays fails loudly;
* mixing with a non-scalar ``numpy.ndarray`` in one operation raises ``TypeError``;
* explicit transfer is ``a.get()`` (as in CuPy) or ``backends.get("strict").to_numpy(a)``.

It supports exactly the array protocols refscore's core needs (``__array_ufunc__``,
``__array_function__``, indexing, the usual attributes), and is registered with autograd
through the same extension module as CuPy (``_autograd_ext``), so the gradient rules that
CuPy needs are exercised on every CI run.
"""
from __future__ import annotations

import types

import numpy
from numpy.lib.mixins import NDArrayOperatorsMixin

from ._base import Backend


def _is_host_array(a):
    return isinstance(a, numpy.ndarray) and a.ndim > 0


def _unwrap(obj):
    if isinstance(obj, StrictArray):
        return obj._a
    if _is_host_array(obj):
        raise TypeError(
            "a numpy.ndarray was mixed with a StrictArray (device) array; move it with "
            "backends.get('strict').asarray(...) first"
        )
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
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
        # CuPy returns 0-d device arrays from reductions, not host scalars.
        return StrictArray(numpy.asarray(obj))
    return obj


class StrictArray(NDArrayOperatorsMixin):
    """A NumPy array in disguise that refuses to meet NumPy arrays (see module docstring)."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, a):
        self._a = numpy.asarray(a)

    # --- protocols ---------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "Implicit conversion of a StrictArray to a NumPy array is not allowed (as with "
            "cupy.ndarray); use .get() or backends.get('strict').to_numpy(a)"
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(_foreign(a) for a in inputs):
            return NotImplemented  # e.g. an autograd ArrayBox: let it handle the operation
        inputs = _unwrap(inputs)
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"])
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        if any(t is not StrictArray and not issubclass(t, numpy.ndarray) for t in types_):
            return NotImplemented
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def _strict_unwrap(self):
        return self._a

    def get(self):
        """Explicit copy to a ``numpy.ndarray`` (CuPy's spelling)."""
        return self._a.copy()

    # --- attributes ----------------------------------------------------------------------
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

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        return self._a.__index__()

    def item(self):
        return self._a.item()

    def astype(self, dtype, copy=True):
        return StrictArray(self._a.astype(dtype, copy=copy))

    def reshape(self, *shape):
        return StrictArray(self._a.reshape(*shape))

    def copy(self):
        return StrictArray(self._a.copy())

    def ravel(self):
        return StrictArray(self._a.ravel())

    def sum(self, *a, **k):
        return _wrap(self._a.sum(*a, **k))

    def mean(self, *a, **k):
        return _wrap(self._a.mean(*a, **k))

    def max(self, *a, **k):
        return _wrap(self._a.max(*a, **k))

    def min(self, *a, **k):
        return _wrap(self._a.min(*a, **k))

    def all(self, *a, **k):
        return _wrap(self._a.all(*a, **k))

    def any(self, *a, **k):
        return _wrap(self._a.any(*a, **k))

    def __hash__(self):
        return id(self)


class _StrictGenerator:
    """``numpy.random.Generator`` returning StrictArrays (like ``cupy.random.Generator``)."""

    def __init__(self, seed=None):
        self._g = numpy.random.default_rng(seed)

    def standard_normal(self, size=None, dtype="float64"):
        return StrictArray(numpy.asarray(self._g.standard_normal(size=size, dtype=dtype)))

    def random(self, size=None, dtype="float64"):
        return StrictArray(numpy.asarray(self._g.random(size=size, dtype=dtype)))


def _creator(fn):
    def make(*args, **kwargs):
        return StrictArray(fn(*_unwrap(args), **_unwrap(kwargs)))

    make.__name__ = fn.__name__
    return make


def _asarray(a, dtype=None):
    if isinstance(a, StrictArray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return StrictArray(numpy.array(a, dtype=dtype))


# The stand-in's array module: creation functions return StrictArrays, math dispatches through
# the array protocols of numpy's own functions.
xp = types.ModuleType("strict_xp")
for _name in ("zeros", "ones", "empty", "full", "eye", "arange", "linspace", "zeros_like",
              "ones_like", "full_like", "identity"):
    setattr(xp, _name, _creator(getattr(numpy, _name)))
xp.asarray = _asarray
xp.array = _asarray
for _name in ("where", "cumsum", "searchsorted", "minimum", "maximum", "all", "any", "isfinite",
              "isnan", "sum", "mean", "sqrt", "exp", "log", "abs", "clip", "concatenate",
              "stack", "argmax", "float32", "float64", "int64", "ndarray", "pi", "inf", "nan",
              "newaxis", "dot", "matmul", "einsum", "linalg", "log1p", "square", "var", "std",
              "floor", "ceil", "sort", "argsort", "bincount", "diag", "tril", "triu", "trace",
              "take_along_axis", "count_nonzero", "allclose", "round", "sign", "nonzero",
              "logaddexp", "expm1", "tanh", "cos", "sin", "arctan2", "outer", "broadcast_to",
              "repeat", "tile", "squeeze", "expand_dims", "moveaxis", "swapaxes", "prod",
              "cov", "median", "quantile", "percentile", "histogram", "max", "min", "dtype",
              "finfo", "iinfo"):
    setattr(xp, _name, getattr(numpy, _name))


class StrictBackend(Backend):
    name = "strict"
    xp = xp
    array_type = StrictArray
    generator_type = _StrictGenerator

    def __init__(self):
        from . import _autograd_ext

        _autograd_ext.register(StrictArray, xp)

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

    def rng_state(self, rng):
        self.check_rng(rng)
        return rng._g.bit_generator.state

    def set_rng_state(self, rng, state):
        self.check_rng(rng)
        rng._g.bit_generator.state = state

    def device_name(self):
        return "strict CPU stand-in for a device backend"
