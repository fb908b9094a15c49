r"""HIPS autograd on device array types (CuPy, and the ``strict`` CPU stand-in).

autograd differentiates any array type that follows NumPy's dispatch protocols once the type
has a vector space (:class:`DeviceVSpace`) and a box (``ArrayBox.register``), *and* once the few
gradient rules that build NumPy arrays on the host are replaced by rules that build arrays with
the module of the incoming gradient. Those replacements are below, one rule per line, grouped as
in ``autograd/numpy/numpy_vjps.py``. They are backend-neutral: on NumPy arrays they compute what
autograd's own rules compute (``tests/test_autograd_ext.py`` checks this), so registering them
once serves every backend.

What the core may use (covered here and parity-tested): ufuncs and arithmetic, ``matmul``/``@``,
``sum``/``mean`` (with ``axis``/``keepdims``), ``reshape``, transpose, ``where``, ``logaddexp``,
basic slicing and integer indexing, ``exp``/``log``/``tanh``/``sqrt``... What it avoids in
differentiated code: ``dot``/``tensordot``/``einsum``, ``max``/``min``, ``concatenate``/``stack``,
``linalg`` and ``autograd.scipy`` (their rules call NumPy or SciPy on host arrays).
"""
from __future__ import annotations

import numpy as onp
from autograd.extend import VSpace, defvjp, primitive, SparseObject
from autograd.numpy import numpy_vjps
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import getval
import autograd.numpy as anp

_MODULES: dict[type, object] = {}  # array type -> its creation module (cupy, strict xp)


def module_of(value):
    """The creation module of an (unboxed) array value: the registered one, else NumPy."""
    return _MODULES.get(type(getval(value)), onp)


class DeviceVSpace(VSpace):
    """Vector space of a device array: like autograd's ArrayVSpace, without ``numpy.asarray``."""

    def __init__(self, value):
        self.shape = tuple(value.shape)
        self.dtype = value.dtype
        self.xp = module_of(value)

    size = property(lambda self: int(onp.prod(self.shape)))
    ndim = property(lambda self: len(self.shape))

    def zeros(self):
        return self.xp.zeros(self.shape, dtype=self.dtype)

    def ones(self):
        return self.xp.ones(self.shape, dtype=self.dtype)

    def standard_basis(self):
        for idx in onp.ndindex(*self.shape):
            v = self.xp.zeros(self.shape, dtype=self.dtype)
            v[idx] = 1
            yield v

    def randn(self):
        return self.xp.asarray(onp.random.randn(*self.shape)).astype(self.dtype)

    def _inner_prod(self, x, y):
        return anp.sum(x * y)

    def __eq__(self, other):
        return type(self) == type(other) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self):
        return hash((type(self), self.shape, str(self.dtype)))


# ----- reductions: sum, mean, var, std, prod broadcast the gradient back -----
def _repeat_to_match_shape(g, shape, dtype, axis, keepdims):
    if shape == ():
        return g, 1
    axis = list(axis) if isinstance(axis, tuple) else axis
    new_shape = onp.array(shape)
    new_shape[axis] = 1
    # a Python int, not numpy.int64: under NEP 50 (NumPy 2, CuPy 14) float32 / int64 is float64,
    # which made the `mean` VJP, and so half of a float32 SSM backward pass, run in float64
    num_reps = int(onp.prod(onp.array(shape)[axis]))
    return anp.reshape(g, tuple(int(k) for k in new_shape)) + module_of(g).zeros(shape, dtype=dtype), num_reps


# ----- reshape/ravel: autograd passes order=None, which CuPy's _normalize_order rejects (len(None)) -----
def _reshape_vjp(ans, x, shape, order=None):
    shape_x = anp.shape(x)
    return lambda g: anp.reshape(g, shape_x) if order is None else anp.reshape(g, shape_x, order=order)


def _ravel_vjp(ans, x, order=None):
    return _reshape_vjp(ans, x, None, order)


# ----- where: the zero branch is made like the gradient, not on the host -----
_where_x = lambda ans, c, x=None, y=None: lambda g: anp.where(c, g, anp.zeros_like(g))
_where_y = lambda ans, c, x=None, y=None: lambda g: anp.where(c, anp.zeros_like(g), g)


# ----- indexing: scatter-add the gradient with the array's own module -----
@primitive
def _untake(x, idx, vs):
    add = getattr(module_of(x), "add", onp.add)  # the strict stand-in dispatches through onp.add

    def mut_add(A):
        add.at(A, idx, x)
        return A

    return SparseObject(vs, mut_add)


_registered = False


def install_rules():
    r"""Replace autograd's host-building gradient rules by the backend-neutral ones above (once).

    Every backend needs this, NumPy's included: autograd's own ``mean`` rule divides by a
    ``numpy.int64``, which under NEP 50 turns a float32 backward pass into float64."""
    global _registered
    if _registered:
        return
    numpy_vjps.repeat_to_match_shape = _repeat_to_match_shape
    # autograd.numpy.where is a Python wrapper; the primitive it calls is `_original_where`
    defvjp(getattr(anp, "_original_where", anp.where), None, _where_x, _where_y)
    defvjp(anp.reshape, _reshape_vjp)
    defvjp(anp.ravel, _ravel_vjp)
    defvjp(_untake, lambda ans, x, idx, _: lambda g: g[idx])
    from autograd.extend import vspace
    from autograd.util import func

    defvjp(func(ArrayBox.__getitem__), lambda ans, A, idx: lambda g: _untake(g, idx, vspace(A)))
    _registered = True


def register(array_type, xp):
    """Make autograd differentiate ``array_type`` arrays, creating arrays with module ``xp``."""
    _MODULES[array_type] = xp
    install_rules()
    if array_type not in ArrayBox.type_mappings:
        ArrayBox.register(array_type)
    VSpace.register(array_type, DeviceVSpace)
