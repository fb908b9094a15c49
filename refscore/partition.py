r"""The partition function :math:`Z=\int e^{-E(x)}dx` by quadrature, for d ≤ 2.

Seed ``000_…``/``002_…`` ("Computation of the partition function Z is hard"): in d
dimensions a grid needs :math:`m^d` energy evaluations, which is why score matching avoids
:math:`Z`. In one and two dimensions it is cheap, so we compute it to check everything else.
"""
from __future__ import annotations

import math

import numpy as onp
from scipy import integrate

from . import backends

__all__ = ["log_partition_quadrature"]


def _neg_energy_fn(energy):
    bk = energy.backend or backends.get("numpy")

    def f(pts):  # host (m, d) -> host (m,)
        return bk.to_numpy(-energy.energy(bk.asarray(pts)))

    return f


def log_partition_quadrature(energy, bounds, n_points=400):
    r"""Compute :math:`\log Z = \log\int_{\text{box}} e^{-E(x)}\,dx` by SciPy quadrature.

    .. math:: \log Z = m + \log\int e^{-E(x) - m}\,dx,\qquad m = \max_x(-E(x))\text{ on a grid}

    d = 1: adaptive Gauss–Kronrod (``scipy.integrate.quad``). d = 2: adaptive ``quad`` over
    :math:`x_1` of a vectorised fixed Gauss–Legendre rule (``scipy.integrate.fixed_quad``,
    ``n_points`` nodes) over :math:`x_2`. The shift :math:`m` keeps :math:`e^{-E}` in range.

    Parameters
    ----------
    energy : refscore.energies.Energy with ``dim`` 1 or 2
    bounds : sequence of ``(low, high)`` pairs, one per dimension; the mass outside is ignored,
        so choose a box that holds it.
    n_points : int
        Gauss–Legendre nodes for the inner dimension (d = 2).

    Returns
    -------
    float
    """
    d = energy.dim
    if d not in (1, 2):
        raise ValueError(f"quadrature is offered for d <= 2 only (cost m^d); energy has dim={d}")
    bounds = [tuple(map(float, b)) for b in bounds]
    if len(bounds) != d or any(len(b) != 2 or not b[0] < b[1] for b in bounds):
        raise ValueError(f"bounds must be {d} pairs (low, high) with low < high, got {bounds}")
    f = _neg_energy_fn(energy)
    grids = [onp.linspace(lo, hi, 201) for lo, hi in bounds]
    mesh = onp.stack([g.ravel() for g in onp.meshgrid(*grids, indexing="ij")], axis=1)
    m = float(onp.max(f(mesh)))
    if d == 1:
        (lo, hi), = bounds
        val, _ = integrate.quad(lambda t: math.exp(f(onp.array([[t]]))[0] - m), lo, hi, limit=200,
                                points=[float(mesh[onp.argmax(f(mesh)), 0])])
    else:
        (lo1, hi1), (lo2, hi2) = bounds

        def inner(t):
            def g(u):
                pts = onp.stack([onp.full_like(u, t), u], axis=1)
                return onp.exp(f(pts) - m)

            return integrate.fixed_quad(g, lo2, hi2, n=n_points)[0]

        val, _ = integrate.quad(inner, lo1, hi1, limit=200)
    if not val > 0:
        raise ValueError(f"the integral of exp(-E) over {bounds} is {val}; widen the bounds")
    return m + math.log(val)
