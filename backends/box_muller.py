r"""float32 standard normals for the NumPy backend: Box–Muller over raw generator bits.

NumPy's ``Generator.standard_normal(dtype=float32)`` runs a scalar ziggurat, about 7–12 ns a
draw on the development machine. The Box–Muller transform (Box & Muller 1958) turns every pair
of uniforms into a pair of independent normals with array-wide operations only (``log``,
``sqrt``, ``cos``, ``sin``, which NumPy vectorises in float32), about 2 ns a draw.

The uniforms come from the Generator's own bit stream (``rng.bit_generator.random_raw``): ``m``
64-bit words are read as ``2m`` 32-bit integers, the first ``m`` for ``k₁``, the rest for ``k₂``.
Same seed ⇒ same bits ⇒ same numbers, and the Generator's state (checkpoints) advances as for
any other draw. float64 draws are not made here: NumPy's float64 ziggurat is already as fast,
and its numbers stay as they were.
"""
from __future__ import annotations

import math

import numpy

#: ``2⁻³²``: one 32-bit integer step, as a uniform on (0, 1)
STEP = 2.0**-32
#: the largest radius the transform reaches, from the smallest uniform ``u₁ = 2⁻³³``:
#: :math:`\sqrt{-2\log 2^{-33}} \approx 6.76`, so tails are exact well past 6σ
MAX_RADIUS = math.sqrt(-2.0 * math.log(STEP / 2))


def box_muller(k1, k2, out=None):
    r"""Normals from two arrays of ``uint32`` integers, by the Box–Muller transform.

    .. math::

        u_1 = (k_1 + \tfrac12)\,2^{-32} \in (0, 1), \qquad
        \theta = 2\pi\,k_2\,2^{-32}, \qquad R = \sqrt{-2 \log u_1},

        z_1 = R\cos\theta, \qquad z_2 = R\sin\theta

    (Box & Muller 1958, *Ann. Math. Statist.* 29(2), eqs. 1–2). For independent uniform ``k₁,
    k₂``, :math:`R^2 \sim \chi^2_2` is independent of the uniform angle, so ``z₁`` and ``z₂`` are
    independent :math:`\mathcal N(0, 1)`. The half-step offset keeps :math:`u_1 > 0` (no
    infinite radius) and puts the largest radius at :data:`MAX_RADIUS` ≈ 6.76.

    Parameters
    ----------
    k1, k2 : numpy.ndarray of uint32, shape (m,)
        Independent uniform integers on :math:`\{0, …, 2^{32} - 1\}`.
    out : numpy.ndarray of float32, shape (2m,), optional
        Receives ``[z₁, z₂]`` (cosines first, then sines); allocated when omitted.

    Returns
    -------
    numpy.ndarray of float32, shape (2m,)
        ``z₁`` in the first half, ``z₂`` in the second; all arithmetic in float32, in place.
    """
    m = k1.shape[0]
    if out is None:
        out = numpy.empty(2 * m, numpy.float32)
    f32 = numpy.float32
    th, r = out[:m], out[m:]                                                # z₁ lands on θ, z₂ on R
    numpy.multiply(k1, f32(STEP), out=r, dtype=f32)                       # k₁ 2⁻³²
    numpy.add(r, f32(STEP / 2), out=r)                                      # u₁ ∈ (0, 1)
    numpy.log(r, out=r)
    numpy.multiply(r, f32(-2.0), out=r)
    numpy.sqrt(r, out=r)                                                    # R
    numpy.multiply(k2, f32(2 * math.pi * STEP), out=th, dtype=f32)          # θ ∈ [0, 2π)
    sin = numpy.sin(th)
    numpy.cos(th, out=th)
    numpy.multiply(th, r, out=th)                                           # z₁ = R cos θ
    numpy.multiply(r, sin, out=r)                                           # z₂ = R sin θ
    return out


def standard_normal_float32(rng, shape):
    r"""float32 standard normals of ``shape`` from ``rng``'s bits, by :func:`box_muller`.

    .. math::

        z_i \sim \mathcal N(0, 1) \text{ i.i.d.}, \qquad
        (z_j, z_{j + m}) = \text{Box–Muller}(k_{1,j}, k_{2,j}),\ m = \lceil n/2 \rceil

    (Box & Muller 1958, eqs. 1–2). ``n = prod(shape)`` draws use ``m`` raw 64-bit words of
    ``rng.bit_generator``; the flat draws depend on ``n`` only, so a ``(n, d)`` request is the
    reshaped ``(n·d,)`` one. Same seed ⇒ same numbers (on one machine: NumPy's float32 ``log``,
    ``sin``, ``cos`` may differ in the last bit between CPU instruction sets).

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : tuple of int

    Returns
    -------
    numpy.ndarray of float32 with the given shape.
    """
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    m = (n + 1) // 2
    bits = rng.bit_generator.random_raw(m).view(numpy.uint32)               # (2m,): 2 per 64-bit word
    z = box_muller(bits[:m], bits[m:])  # contiguous halves convert twice as fast as strided ones
    return z[:n].reshape(shape)
