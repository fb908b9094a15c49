r"""``cupy.ElementwiseKernel`` versions of :mod:`refscore.models.activations`: one kernel per
(activation, derivative order), generated from the same polynomials in :math:`(v_1, v_2)` as the
NumPy path (see that module's docstring for the mathematics) and compiled on first use.

Only imported on the cupy backend; :func:`kernel_source` is plain Python so the generated C can
be inspected anywhere, and ``tests/test_gpu.py`` compiles and checks it on a GPU.
"""
from __future__ import annotations

import functools

from .activation_polynomials import LOGISTIC_ORDERS, derivative_terms


def _c_poly(poly):
    terms = []
    for (a, b), c in sorted(poly.items()):
        factors = [repr(float(c))] + ["v1"] * a + ["v2"] * b
        terms.append("*".join(factors))
    return " + ".join(terms) if terms else "0.0"


def kernel_source(name, k):
    r"""C body computing ``out = g * f^(k)(z)`` for ``T g, T z`` (T float or double)."""
    if name == "softplus" and k == 0:
        return "out = g * ((z > 0 ? z : (T)0) + log1p(exp(-fabs(z))));"
    if name == "tanh" and k == 0:
        return "out = g * tanh(z);"
    if (name, k) in LOGISTIC_ORDERS:  # σ(z), σ(-z) without the 1 ± tanh(z/2) cancellation
        f = {("silu", 0): "z * s", ("silu", 1): "s * (1 + z * c)"}.get((name, k), "s")
        return ("T e = exp(-fabs(z)); T r = 1 / (1 + e); T s = z >= 0 ? r : e * r; "
                f"T c = z >= 0 ? e * r : r; out = g * ({f});")
    base, A, B = derivative_terms(name, k)
    c, four = ("", "") if base == "sigmoid" else ("2 * ", "4 * ")
    pre = (f"T e = exp(-{c}fabs(z)); T q = 1 / (1 + e); T v1 = {four}e * q * q; "
           "T v2 = copysign((1 - e) * q, z);")
    f = _c_poly(A) + (f" + z * ({_c_poly(B)})" if B else "")
    return f"{pre} out = g * ({f});"


@functools.lru_cache(maxsize=None)
def _kernel(name, k):
    import cupy

    return cupy.ElementwiseKernel("T g, T z", "T out", kernel_source(name, k), f"refscore_{name}_d{k}")


def scaled_derivative_kernel(name, k, g, z):
    r""":math:`g\,f^{(k)}(z)` in one CUDA kernel (``g=None`` means 1)."""
    if g is None:
        g = z.dtype.type(1)
    return _kernel(name, k)(g, z)
