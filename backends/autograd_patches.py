r"""Every change refscore makes to HIPS autograd, in one audited module, installed once per
process by :func:`install` when ``refscore.backends`` is imported (so by ``import refscore``).

Nothing else in refscore assigns to autograd's modules or registers a rule for one of autograd's
own primitives (``tests/test_autograd_patches.py`` checks the source tree for it, and checks in a
fresh interpreter that :func:`check` finds every patch in effect right after ``import refscore``).
The patches reach into autograd's internals by name, so autograd is pinned in ``pyproject.toml``
to the releases they were tested with: **autograd 1.9.0 and 1.9.1** (``>=1.9,<1.10``). Under
1.7.0 and 1.8.0 the patches install and :func:`check` passes, but device arrays fail
``tests/test_autograd_ext.py`` (a host array enters the gradients of slicing, ``sum(axis=)`` and
``where``), so those releases are excluded.
Before widening the pin, run ``tests/test_autograd_patches.py``, ``tests/test_autograd_ext.py``
and ``tests/test_shards.py`` with the new release.

The patches (:data:`PATCHES` lists them by name):

``repeat_to_match_shape``
    Replaces ``autograd.numpy.numpy_vjps.repeat_to_match_shape``, the helper the VJPs of
    ``sum``/``mean``/``var``/``std``/``prod``/``max`` call to broadcast a gradient back. autograd's
    builds its zeros with NumPy on the host, and returns the count of repetitions as a
    ``numpy.int64``: under NEP 50 (NumPy 2, CuPy 14) ``float32 / int64`` is float64, which made the
    ``mean`` VJP, and so half of a float32 SSM backward pass, run in float64. This one builds the
    zeros with the gradient's own module and returns a Python ``int``.
``where``
    Replaces the VJPs of ``where``'s primitive (``autograd.numpy._original_where`` from 1.9,
    ``autograd.numpy.where`` before): autograd's make the zero branch with ``numpy.zeros`` on the
    host; these make it like the gradient (``zeros_like``).
``reshape``, ``ravel``
    Replace the VJPs of ``reshape`` and ``ravel``: autograd's pass ``order=None`` on, which CuPy's
    ``_normalize_order`` rejects (``len(None)``); these omit ``order`` when it is ``None``.
``getitem``
    Replaces the VJP of ``ArrayBox.__getitem__`` (indexing): autograd's scatter-adds the gradient
    with ``numpy.add.at`` through its primitive ``untake``; this one uses a primitive of its own
    that scatter-adds with the array's own module.
``trace_stack``
    Replaces ``autograd.tracer.trace_stack`` with :class:`UniqueTraceStack`. autograd numbers its
    traces with one process-wide counter that goes up on entering a trace and down on leaving it,
    and tells a nested derivative's boxes from the enclosing one's only by that number (inner >
    outer). Two threads interleave it: A enters (0), B enters (1), A leaves (back to 0), B's inner
    trace gets 1 again, the number of B's outer trace, and B's nested derivative — the score of an
    energy model inside its loss — silently mixes the two levels
    (:class:`~refscore.training.shards.ShardedValueAndGrad` runs such losses on threads). The
    replacement hands out a fresh, ever larger number for every trace, so inner > outer holds in
    each thread and no two live traces share a number; one thread's results are unchanged (only
    the traces' numbers differ, never their order).

Every rule is backend-neutral: on NumPy arrays it computes what autograd's own rule computes
(``tests/test_autograd_ext.py`` checks this to third order), so installing them once serves every
backend, and a NumPy result never depends on whether a device backend was made first.

Device arrays (CuPy, and the ``strict`` CPU stand-in) are differentiated once their type has a
vector space (:class:`DeviceVSpace`) and a box: :func:`register` adds both through autograd's
public extension API (``VSpace.register``, ``ArrayBox.register``) when such a backend is made.

What the core may use (covered here and parity-tested): ufuncs and arithmetic, ``matmul``/``@``,
``sum``/``mean`` (with ``axis``/``keepdims``), ``reshape``, transpose, ``where``, ``logaddexp``,
basic slicing and integer indexing, ``exp``/``log``/``tanh``/``sqrt``... What it avoids in
differentiated code: ``dot``/``tensordot``/``einsum``, ``max``/``min``, ``concatenate``/``stack``,
``linalg`` and ``autograd.scipy`` (their rules call NumPy or SciPy on host arrays).
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager

import autograd.core
import autograd.numpy as anp
import autograd.tracer
import numpy as onp
from autograd.extend import SparseObject, VSpace, defvjp, primitive, vspace
from autograd.numpy import numpy_vjps
from autograd.numpy.numpy_boxes import ArrayBox
from autograd.tracer import getval
from autograd.util import func

__all__ = ["PATCHES", "install", "check", "UniqueTraceStack", "DeviceVSpace", "register", "module_of"]

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


# ----- the trace stack: a fresh number for every trace, safe on threads -----
class UniqueTraceStack:
    r"""A drop-in for autograd's ``tracer.trace_stack`` whose :meth:`new_trace` yields a new number
    :math:`t_k = k` for the k-th trace of the process (``next`` on one :func:`itertools.count`,
    atomic under the GIL), never reused: nested traces get larger numbers than their enclosing
    ones in every thread, and concurrent threads never share one (``trace_stack`` above)."""

    def __init__(self):
        self._ids = itertools.count()

    @contextmanager
    def new_trace(self):
        """Enter a trace: its number, unique in the process."""
        yield next(self._ids)


# ----- install and check -----
PATCHES = ("repeat_to_match_shape", "where", "reshape", "ravel", "getitem", "trace_stack")
_WHERE = getattr(anp, "_original_where", anp.where)  # autograd >= 1.9 wraps the primitive `where`
_GETITEM = func(ArrayBox.__getitem__)
_RULES = {"where": (_WHERE, None, _where_x, _where_y), "reshape": (anp.reshape, _reshape_vjp),
          "ravel": (anp.ravel, _ravel_vjp),
          "getitem": (_GETITEM, lambda ans, A, idx: lambda g: _untake(g, idx, vspace(A)))}
_installed: dict[str, object] = {}  # rule name -> the vjpmaker autograd holds for it once installed


def install():
    r"""Install every patch of :data:`PATCHES` into autograd: ``refscore.backends`` calls this
    when it is imported, so every computation (NumPy's included) takes the same code path whatever
    ran before it. Idempotent; a patch found undone (see :func:`check`) is installed again.

    .. math:: \bar x = \mathrm{VJP}(\bar y)\ \text{is the same function for every array type}
    """
    numpy_vjps.repeat_to_match_shape = _repeat_to_match_shape
    if not _installed:
        defvjp(_untake, lambda ans, x, idx, _: lambda g: g[idx])
    for name, (fun, *vjps) in _RULES.items():
        if not (name in _installed and autograd.core.primitive_vjps.get(fun) is _installed[name]):
            defvjp(fun, *vjps)
            _installed[name] = autograd.core.primitive_vjps[fun]
    if not isinstance(autograd.tracer.trace_stack, UniqueTraceStack):
        autograd.tracer.trace_stack = UniqueTraceStack()


def check():
    r"""``{name: True/False}`` for every patch of :data:`PATCHES`: whether autograd runs it now
    (a later ``defvjp`` on the same primitive, or an autograd that moved a name, shows as False).

    .. math:: \text{in effect}(p) \iff \text{autograd's entry for } p \text{ is the one installed}
    """
    ok = {"repeat_to_match_shape": numpy_vjps.repeat_to_match_shape is _repeat_to_match_shape,
          "trace_stack": isinstance(autograd.tracer.trace_stack, UniqueTraceStack)}
    for name, (fun, *_) in _RULES.items():
        ok[name] = name in _installed and autograd.core.primitive_vjps.get(fun) is _installed[name]
    return {name: ok[name] for name in PATCHES}


def register(array_type, xp):
    """Make autograd differentiate ``array_type`` arrays, creating arrays with module ``xp``."""
    _MODULES[array_type] = xp
    if array_type not in ArrayBox.type_mappings:
        ArrayBox.register(array_type)
    VSpace.register(array_type, DeviceVSpace)
