r"""Fused, numerically stable activations as autograd primitives: softplus, tanh, SiLU, sigmoid.

Score matching differentiates an MLP energy up to three times (score: :math:`f'`; the SSM/ISM
Jacobian term: :math:`f''`; its parameter gradient: :math:`f'''`). Composed from ``logaddexp`` or
``tanh``, each order is a chain of elementwise passes, and autograd's ``tanh`` rule
(:math:`g/\cosh^2 z`) gives NaN from the second derivative on once :math:`\cosh z` overflows
(:math:`|z|\gtrsim 355`). Here every order is **one** elementwise kernel: the primitive
:math:`(g, z)\mapsto g\,f^{(k)}(z)` has as its VJP the same primitive at order :math:`k+1`,

.. math:: \frac{\partial}{\partial z}\big[g\,f^{(k)}(z)\big] = g\,f^{(k+1)}(z),\qquad
          \frac{\partial}{\partial g}\big[g\,f^{(k)}(z)\big] = f^{(k)}(z),

so derivatives of every order exist and cost one pass each.

**The derivatives in closed form.** With :math:`\sigma` the logistic function, :math:`t=\tanh(z/2)
= 2\sigma-1` and :math:`p=\sigma(1-\sigma)=e^{-|z|}/(1+e^{-|z|})^2` (stable for every z),

.. math:: p' = -p\,t,\qquad t' = 2p,

so every :math:`\sigma^{(k)}` is a polynomial in :math:`(p, t)`; likewise for tanh with
:math:`T=\tanh z`, :math:`Q=1-T^2=4e^{-2|z|}/(1+e^{-2|z|})^2`: :math:`Q'=-2QT`, :math:`T'=Q`.
Then softplus :math:`f=\max(z,0)+\log(1+e^{-|z|})`, :math:`f^{(k)}=\sigma^{(k-1)}`; SiLU
:math:`f=z\sigma(z)`, :math:`f^{(k)}=k\,\sigma^{(k-1)}+z\,\sigma^{(k)}` (Leibniz). The polynomials
are derived once per order (below) and evaluated as NumPy expressions, or, on CuPy, as one
``cupy.ElementwiseKernel`` each (generated C source, compiled on first use).
Sources: softplus/SiLU as in Elfwing et al. (2018), eqs. 3–5; the logistic identities
:math:`\sigma'=\sigma(1-\sigma)`, :math:`1-2\sigma(z)=-\tanh(z/2)` are standard.
"""
from __future__ import annotations

import functools
import weakref

from autograd.extend import defvjp, primitive

from . import backends

__all__ = ["softplus", "tanh", "silu", "sigmoid", "derivative", "ACTIVATIONS"]

# family -> (c1, c2) with v1' = c1 v1 v2, v2' = c2 v1   (sigmoid: v1=p, v2=t; tanh: v1=Q, v2=T)
_BASE = {"sigmoid": (-1.0, 2.0), "tanh": (-2.0, 1.0)}


def _d_poly(poly, c1, c2):
    """Derivative of a polynomial {(a, b): coeff} in (v1, v2) under the rules above."""
    out: dict = {}
    for (a, b), c in poly.items():
        if a:
            out[(a, b + 1)] = out.get((a, b + 1), 0.0) + c * a * c1
        if b:
            out[(a + 1, b - 1)] = out.get((a + 1, b - 1), 0.0) + c * b * c2
    return {m: c for m, c in out.items() if c != 0.0}


@functools.lru_cache(maxsize=None)
def _sigma_poly(k):
    """σ^(k) as a polynomial in (p, t): σ = ½ + ½t."""
    return {(0, 0): 0.5, (0, 1): 0.5} if k == 0 else _d_poly(_sigma_poly(k - 1), *_BASE["sigmoid"])


@functools.lru_cache(maxsize=None)
def _tanh_poly(k):
    """tanh^(k) as a polynomial in (Q, T)."""
    return {(0, 1): 1.0} if k == 0 else _d_poly(_tanh_poly(k - 1), *_BASE["tanh"])


@functools.lru_cache(maxsize=None)
def derivative_terms(name, k):
    r"""``(base, A, B)``: :math:`f^{(k)} = A(v_1,v_2) + z\,B(v_1,v_2)` over the family ``base``."""
    if name == "softplus":
        return "sigmoid", _sigma_poly(k - 1), {}
    if name == "sigmoid":
        return "sigmoid", _sigma_poly(k), {}
    if name == "tanh":
        return "tanh", _tanh_poly(k), {}
    if name == "silu":
        a = {m: k * c for m, c in _sigma_poly(k - 1).items()} if k else {}
        return "sigmoid", a, _sigma_poly(k)
    raise ValueError(f"unknown activation {name!r}; known: softplus, tanh, silu, sigmoid")


def _base_vars(base, z, xp):
    r"""Stable (v1, v2) from one ``exp``: sigmoid family (p, t), tanh family (Q, T).

    With :math:`e=e^{-c|z|}` (c = 1, resp. 2) and :math:`q=1/(1+e)`: :math:`p=e q^2` (times 4 for
    Q) and :math:`t=\operatorname{sign}(z)(1-e)q`; no overflow for any z, absolute error ~eps.
    """
    e = xp.exp(-xp.abs(z) if base == "sigmoid" else -2.0 * xp.abs(z))
    q = 1.0 / (1.0 + e)
    v1 = e * q * q if base == "sigmoid" else 4.0 * e * q * q
    return v1, xp.copysign((1.0 - e) * q, z)


# (v1, v2) per input array, alive as long as the array is: autograd's backward pass asks for
# several derivative orders of the same pre-activation z, and this makes each cost one exp.
_CACHE: dict = {}


def _cached_base_vars(base, z, xp):
    key = (id(z), base)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is z:
        return hit[1], hit[2]
    v1, v2 = _base_vars(base, z, xp)
    try:
        ref = weakref.ref(z, lambda _, k=key: _CACHE.pop(k, None))
    except TypeError:  # an array type without weak references: no caching
        return v1, v2
    _CACHE[key] = (ref, v1, v2)
    return v1, v2


def _eval_poly(poly, v1, v2):
    out = None
    for (a, b), c in sorted(poly.items()):
        term = None
        for v in [v1] * a + [v2] * b:
            term = v if term is None else term * v
        term = c if term is None else (term if c == 1.0 else c * term)
        out = term if out is None else out + term
    return out


def _value(name, z, xp):
    if name == "softplus":
        return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))
    return xp.tanh(z)


def _host_kernel(name, k, g, z, xp):
    """g · f^(k)(z) with NumPy-protocol expressions (any backend without a compiled kernel)."""
    if k == 0 and name in ("softplus", "tanh"):  # the values themselves: full relative accuracy
        f = _value(name, z, xp)
    else:
        base, A, B = derivative_terms(name, k)
        v1, v2 = _cached_base_vars(base, z, xp)
        f = _eval_poly(A, v1, v2) if A else 0.0
        if B:
            f = f + z * _eval_poly(B, v1, v2)
    return f if g is None else g * f


@primitive
def scaled_derivative(g, z, name, k):
    r""":math:`g\,f^{(k)}(z)` elementwise (``g=None`` means 1), one pass; differentiable to any order.

    .. math:: \partial_z\big[g f^{(k)}(z)\big]=g f^{(k+1)}(z),\quad \partial_g\big[g f^{(k)}(z)\big]=f^{(k)}(z)
    """
    bk = backends.of(z, g)
    if bk.name == "cupy":
        from ._cupy_kernels import scaled_derivative_kernel

        return scaled_derivative_kernel(name, k, g, z)
    return _host_kernel(name, k, g, z, bk.xp)


defvjp(scaled_derivative,
       lambda ans, g, z, name, k: lambda h: scaled_derivative(h, z, name, k),
       lambda ans, g, z, name, k: lambda h: scaled_derivative(h if g is None else h * g, z, name, k + 1))


def derivative(name, k):
    r"""The function :math:`z\mapsto f^{(k)}(z)` of activation ``name`` (differentiable)."""
    return lambda z: scaled_derivative(None, z, name, k)


def softplus(z):
    r"""Softplus :math:`\log(1+e^z)=\max(z,0)+\log(1+e^{-|z|})`; :math:`f'=\sigma`."""
    return scaled_derivative(None, z, "softplus", 0)


def tanh(z):
    r""":math:`\tanh z`; :math:`f'=1-\tanh^2 z`, evaluated as :math:`4e^{-2|z|}/(1+e^{-2|z|})^2` (no NaN)."""
    return scaled_derivative(None, z, "tanh", 0)


def silu(z):
    r"""SiLU (swish) :math:`z\,\sigma(z)` (Elfwing et al. 2018, eq. 3); :math:`f'=\sigma+z\sigma(1-\sigma)`."""
    return scaled_derivative(None, z, "silu", 0)


def sigmoid(z):
    r"""Logistic :math:`\sigma(z)=\tfrac12(1+\tanh(z/2))`; :math:`\sigma'=\sigma(1-\sigma)`."""
    return scaled_derivative(None, z, "sigmoid", 0)


ACTIVATIONS = {"softplus": softplus, "tanh": tanh, "silu": silu, "swish": silu, "sigmoid": sigmoid}
