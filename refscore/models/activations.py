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
are derived once per order (:mod:`refscore.models.activation_polynomials`) and evaluated as NumPy expressions, or, on CuPy, as one
``cupy.ElementwiseKernel`` each (generated C source, compiled on first use).
Sources: softplus/SiLU as in Elfwing et al. (2018), eqs. 3–5; the logistic identities
:math:`\sigma'=\sigma(1-\sigma)`, :math:`1-2\sigma(z)=-\tanh(z/2)` are standard.
"""
from __future__ import annotations

import numpy
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from .. import backends
from .activation_polynomials import LOGISTIC_ORDERS, derivative_terms

__all__ = ["softplus", "tanh", "silu", "sigmoid", "derivative", "ACTIVATIONS", "SharedTerms"]


def _base_vars(base, z, xp):
    r"""Stable (v1, v2) from one ``exp``: sigmoid family (p, t), tanh family (Q, T).

    With :math:`e=e^{-c|z|}` (c = 1, resp. 2) and :math:`q=1/(1+e)`: :math:`p=e q^2` (times 4 for
    Q) and :math:`t=\operatorname{sign}(z)(1-e)q`; no overflow for any z, absolute error ~eps.
    """
    e = xp.exp(-xp.abs(z) if base == "sigmoid" else -2.0 * xp.abs(z))
    q = 1.0 / (1.0 + e)
    v1 = e * q * q if base == "sigmoid" else 4.0 * e * q * q
    return v1, xp.copysign((1.0 - e) * q, z)


class SharedTerms:
    r"""The stable terms of one pre-activation :math:`z`, computed on first use and kept by the
    closures of that forward pass's VJPs: autograd's backward pass asks for several derivative
    orders :math:`f^{(k)}(z)` of the same :math:`z`, and each then costs no extra ``exp``.

    Made afresh by every public call (:func:`softplus`, :func:`derivative`, ...), so a result never
    depends on an earlier call: nothing is keyed on ``id(z)`` and an array changed in place is
    read anew (the way autograd's own ``defvjp`` rules close over their forward values).

    .. math:: (v_1, v_2) = (p, t) = (\sigma(1-\sigma),\ \tanh(z/2))\ \text{or}\ (Q, T) = (1-\tanh^2 z,\ \tanh z);
              \quad \sigma(\pm z) = \frac{1}{1+e^{\mp z}}

    The last pair (:meth:`logistic`) has full **relative** accuracy: no :math:`1\pm t`
    cancellation, where :math:`\tfrac12(1+t)` loses digits from :math:`z\approx-17` and is 0
    below :math:`z\approx-37` (float64).
    """

    def __init__(self, z):
        self.z, self.by_base = getval(z), {}

    def get(self, base, xp):
        """``(v1, v2)`` of the family ``base`` ("sigmoid" or "tanh") for this pre-activation."""
        if base not in self.by_base:
            self.by_base[base] = _base_vars(base, self.z, xp)
        return self.by_base[base]

    def logistic(self, xp, sign=1):
        r""":math:`\sigma(z)` (``sign=1``) or :math:`\sigma(-z)` (``sign=-1``) as
        :math:`1/(1+e^{\mp z})`, computed once: full relative accuracy (a division, no
        :math:`1\pm t` cancellation) until :math:`e^{\mp z}` overflows, where σ is below the smallest
        normal number (:math:`z<-709` in float64, :math:`-88` in float32) and 0 is returned."""
        key = ("logistic", sign)
        if key not in self.by_base:
            with numpy.errstate(over="ignore"):  # e^{-z} = inf gives σ = 1/inf = 0, the right limit
                t = xp.negative(self.z) if sign == 1 else self.z.copy()
                xp.exp(t, out=t)
            t += 1.0
            self.by_base[key] = xp.reciprocal(t, out=t)
        return self.by_base[key]


def _logistic_kernel(name, k, z, xp, shared):
    r""":math:`\sigma`, :math:`z\sigma` and :math:`\sigma(1 + z\,\sigma(-z))` (SiLU's
    :math:`f'=\sigma + z\sigma(1-\sigma)`) from the accurate pair, few passes."""
    s = shared.logistic(xp)
    if name == "silu" and k == 0:
        return z * s
    if name == "silu":
        f = z * shared.logistic(xp, -1)
        f += 1.0
        f *= s
        return f
    return s.copy()  # never hand out the shared array itself: a caller may change its result in place


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


def _host_kernel(name, k, g, z, xp, shared):
    """g · f^(k)(z) with NumPy-protocol expressions (any backend without a compiled kernel)."""
    if k == 0 and name in ("softplus", "tanh"):  # the values themselves: full relative accuracy
        f = _value(name, z, xp)
    elif (name, k) in LOGISTIC_ORDERS:
        f = _logistic_kernel(name, k, z, xp, shared)  # a fresh array: scaled in place
        if g is not None and getattr(g, "shape", None) == f.shape and g.dtype == f.dtype:
            f *= g
            return f
    else:
        base, A, B = derivative_terms(name, k)
        v1, v2 = shared.get(base, xp)
        f = _eval_poly(A, v1, v2) if A else 0.0
        if B:
            f = f + z * _eval_poly(B, v1, v2)
    return f if g is None else g * f


@primitive
def scaled_derivative(g, z, name, k, shared=None):
    r""":math:`g\,f^{(k)}(z)` elementwise (``g=None`` means 1), one pass; differentiable to any order.

    ``shared`` (a :class:`SharedTerms` of this ``z``) carries the stable terms from the forward pass
    to its VJPs; ``None`` makes a fresh one.

    .. math:: \partial_z\big[g f^{(k)}(z)\big]=g f^{(k+1)}(z),\quad \partial_g\big[g f^{(k)}(z)\big]=f^{(k)}(z)
    """
    bk = backends.of(z, g)
    if bk.name == "cupy":
        from ._cupy_kernels import scaled_derivative_kernel

        return scaled_derivative_kernel(name, k, g, z)
    return _host_kernel(name, k, g, z, bk.xp, shared if shared is not None else SharedTerms(z))


def _vjp_g(ans, g, z, name, k, shared=None):
    return lambda h: scaled_derivative(h, z, name, k, shared)


def _vjp_z(ans, g, z, name, k, shared=None):
    shared = shared if shared is not None else SharedTerms(z)  # one set of terms for every higher order
    return lambda h: scaled_derivative(h if g is None else h * g, z, name, k + 1, shared)


defvjp(scaled_derivative, _vjp_g, _vjp_z)


def derivative(name, k):
    r"""The function :math:`z\mapsto f^{(k)}(z)` of activation ``name`` (differentiable)."""
    return lambda z: scaled_derivative(None, z, name, k, SharedTerms(z))


def softplus(z):
    r"""Softplus :math:`\log(1+e^z)=\max(z,0)+\log(1+e^{-|z|})`; :math:`f'=\sigma`."""
    return scaled_derivative(None, z, "softplus", 0, SharedTerms(z))


def tanh(z):
    r""":math:`\tanh z`; :math:`f'=1-\tanh^2 z`, evaluated as :math:`4e^{-2|z|}/(1+e^{-2|z|})^2` (no NaN)."""
    return scaled_derivative(None, z, "tanh", 0, SharedTerms(z))


def silu(z):
    r"""SiLU (swish) :math:`z\,\sigma(z)` (Elfwing et al. 2018, eq. 3); :math:`f'=\sigma+z\sigma(1-\sigma)`."""
    return scaled_derivative(None, z, "silu", 0, SharedTerms(z))


def sigmoid(z):
    r"""Logistic :math:`\sigma(z)=\tfrac12(1+\tanh(z/2))`; :math:`\sigma'=\sigma(1-\sigma)`."""
    return scaled_derivative(None, z, "sigmoid", 0, SharedTerms(z))


ACTIVATIONS = {"softplus": softplus, "tanh": tanh, "silu": silu, "swish": silu, "sigmoid": sigmoid}
