r"""The derivatives of the smooth activations as polynomials in two stable variables, derived
once per order; shared by the NumPy expressions (:mod:`refscore.models.activations`) and the
generated CUDA kernels (:mod:`refscore.models._cupy_kernels`).

With :math:`\sigma` the logistic function, :math:`t=\tanh(z/2)=2\sigma-1` and
:math:`p=\sigma(1-\sigma)`,

.. math:: p' = -p\,t,\qquad t' = 2p,

so every :math:`\sigma^{(k)}` is a polynomial in :math:`(p, t)`; likewise for tanh with
:math:`T=\tanh z`, :math:`Q=1-T^2`: :math:`Q'=-2QT`, :math:`T'=Q`. Softplus has
:math:`f^{(k)}=\sigma^{(k-1)}`, SiLU :math:`f^{(k)}=k\,\sigma^{(k-1)}+z\,\sigma^{(k)}` (Leibniz;
Elfwing et al. 2018, eqs. 3–5).
"""
from __future__ import annotations

import functools

__all__ = ["derivative_terms", "LOGISTIC_ORDERS"]

#: (activation, order) that both evaluators read from the accurate logistic pair
#: :math:`(\sigma(z), \sigma(-z))` instead of a polynomial in (p, t): σ, softplus' = σ, SiLU = zσ,
#: SiLU' = σ(1 + zσ(-z)); :math:`\tfrac12(1+t)` would lose relative accuracy below z ≈ -17.
LOGISTIC_ORDERS = frozenset({("sigmoid", 0), ("softplus", 1), ("silu", 0), ("silu", 1)})

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


