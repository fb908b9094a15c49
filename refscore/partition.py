r"""The partition function :math:`Z=\int e^{-E(x)}dx`: by quadrature for d ≤ 2, and by annealed
importance sampling (:func:`ais`) in any dimension.

Seed ``000_…``/``002_…`` ("Computation of the partition function Z is hard"): in d
dimensions a grid needs :math:`m^d` energy evaluations, which is why score matching avoids
:math:`Z`. In one and two dimensions it is cheap, so we compute it to check everything else;
seed ``002_…`` notes that EBMs trained without Z "lose the ability to compute likelihoods", which
AIS gives back (with a standard error).
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as onp
from scipy import integrate

from . import backends
from ._validation import check_positive, check_positive_int

__all__ = ["log_partition_quadrature", "ais", "AISResult", "sigmoid_betas"]


def _neg_energy_fn(energy):
    bk = energy.backend or backends.get("numpy")

    def f(pts):  # host (m, d) -> host (m,)
        return bk.to_numpy(-energy.energy(bk.asarray(pts)))

    return f


def _check_bounds(bounds, d):
    """``d`` finite ``(low, high)`` float pairs with low < high; a flat pair, an infinite bound or a
    reversed pair is a clear error (the grid that finds the shift needs a finite box)."""
    example = "[(-5, 5)]" if d == 1 else "[(-5, 5), (-5, 5)]"
    try:
        items = list(bounds)
        if items and all(isinstance(b, numbers.Real) for b in items):
            raise TypeError(f"bounds must be a list of {d} (low, high) pairs, one per dimension, like "
                            f"{example}; got the flat pair {bounds!r}: wrap it in a list")
        pairs = [tuple(float(v) for v in b) for b in items]
    except (TypeError, ValueError) as e:
        if "wrap it in a list" in str(e):
            raise
        raise TypeError(f"bounds must be a list of {d} (low, high) pairs of numbers, like {example}; "
                        f"got {bounds!r}") from None
    if len(pairs) != d or any(len(b) != 2 for b in pairs):
        raise ValueError(f"bounds must be {d} pairs (low, high), one per dimension, like {example}; got {pairs}")
    for i, (lo, hi) in enumerate(pairs):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"bounds must be finite: dimension {i} is ({lo}, {hi}); choose a finite box "
                             "that holds the mass (the mass outside is ignored)")
        if not lo < hi:
            raise ValueError(f"bounds need low < high: dimension {i} is ({lo}, {hi})")
    return pairs


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
    bounds = _check_bounds(bounds, d)
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


# ----- annealed importance sampling (Neal 2001) -----
class AISResult(NamedTuple):
    """What :func:`ais` returns."""

    log_z: float  # log of the mean importance weight: the estimate of log Z
    stderr: float  # its standard error by the delta method
    log_weights: object  # (n_chains,) log w_i, on the energy's backend
    samples: object  # (n_chains, d) final chain states (weighted samples of p)
    ess: float  # (Σw)² / Σw², the effective number of chains
    acceptance_rate: float  # mean MALA acceptance over all transitions


def sigmoid_betas(n_temps):
    r"""The sigmoid annealing schedule :math:`0=\beta_0<\dots<\beta_K=1`, ``K = n_temps``, dense at
    both ends (Grosse, Ghahramani & Adams 2015, "Sandwiching the marginal likelihood", §6):

    .. math:: \beta_k = \frac{\tilde\beta_k-\tilde\beta_0}{\tilde\beta_K-\tilde\beta_0},\qquad
              \tilde\beta_k = \mathrm{sigmoid}\big(4(2k/K-1)\big)

    Returns a NumPy float64 array of K + 1 values (loop constants, on the host).
    """
    K = check_positive_int(n_temps, "n_temps")
    t = 1.0 / (1.0 + onp.exp(-4.0 * (2.0 * onp.arange(K + 1) / K - 1.0)))
    return (t - t[0]) / (t[-1] - t[0])


def _gaussian_base(base, d, bk, dtype):
    """log N(x; m, diag(s²)) and its score, for base = (mean, std) with scalars or (d,) arrays."""
    m, s = base
    m = bk.asarray(onp.broadcast_to(onp.asarray(bk.to_numpy(bk.asarray(m)), float), (d,)), dtype=dtype)
    s_host = onp.broadcast_to(onp.asarray(bk.to_numpy(bk.asarray(s)), float), (d,))
    if not onp.all(onp.isfinite(s_host) & (s_host > 0)):
        raise ValueError(f"base std must be positive and finite, got {s_host.tolist()}")
    s = bk.asarray(s_host, dtype=dtype)
    const = -float(onp.sum(onp.log(s_host))) - 0.5 * d * math.log(2.0 * math.pi)
    log_q = lambda x: -0.5 * bk.xp.sum(((x - m) / s) ** 2, axis=1) + const  # (n,)
    score_q = lambda x: -(x - m) / s**2  # (n, d)
    sample = lambda n, rng: m + s * bk.normal(rng, (n, d), dtype)
    return log_q, score_q, sample


def ais(energy, n_chains, n_temps, rng, base=(0.0, 1.0), mala_step_size=0.05, n_mala_steps=1, betas=None):
    r"""Estimate :math:`\log Z=\log\int e^{-E(x)}dx` by annealed importance sampling (Neal 2001)
    from a Gaussian base :math:`q=\mathcal N(\mu,\mathrm{diag}(s^2))` through geometric bridges

    .. math:: \pi_\beta(x) \propto q(x)^{1-\beta}e^{-\beta E(x)},\qquad
              \log w = \sum_{k=1}^K(\beta_k-\beta_{k-1})\big(-E(x_{k-1})-\log q(x_{k-1})\big),
              \qquad \hat Z = \frac1n\sum_i w_i

    (Neal 2001, eqs. 3–5): :math:`x_0\sim q`, and :math:`x_k` is :math:`x_{k-1}` moved by
    ``n_mala_steps`` MALA steps (:func:`refscore.samplers.mala_step`, our step
    :math:`x+h\,s+\sqrt{2h}z`) that leave :math:`\pi_{\beta_k}` invariant. :math:`\mathbb E\hat Z=Z`
    exactly; :math:`\log\hat Z` (a log-mean-exp of the log-weights) is biased low by about
    :math:`\tfrac12\mathrm{SE}^2`. Standard error by the delta method,

    .. math:: \mathrm{SE}(\log\hat Z) \approx \frac{\mathrm{sd}(w)}{\sqrt n\,\bar w},

    computed from :math:`w_i/\max_j w_j` (no overflow). Trust it only with a healthy ``ess``:
    weights with a heavy tail make both the estimate and its SE too small.

    Parameters
    ----------
    energy : an :class:`~refscore.energies.Energy` (``dim``, ``energy``, ``score``)
    n_chains : int, independent AIS runs (rows, vectorised)
    n_temps : int K, bridges after the base (ignored when ``betas`` is given)
    rng : Generator of the energy's backend
    base : (mean, std), each a scalar or a (d,) array: the Gaussian :math:`q`; cover the target
    mala_step_size : h of the MALA transitions
    n_mala_steps : MALA steps per temperature
    betas : optional increasing schedule from 0 to 1 (default :func:`sigmoid_betas`)

    Returns
    -------
    AISResult(log_z, stderr, log_weights, samples, ess, acceptance_rate)
    """
    from .samplers import State, mala_step

    d, n = energy.dim, check_positive_int(n_chains, "n_chains")
    bk = energy.backend or backends.get("numpy")
    bk.check_rng(rng)
    h, n_mala = check_positive(mala_step_size, "mala_step_size"), check_positive_int(n_mala_steps, "n_mala_steps")
    betas = sigmoid_betas(n_temps) if betas is None else _check_betas(betas)
    log_q, score_q, sample_q = _gaussian_base(base, d, bk, "float64")
    x = sample_q(n, rng)  # (n, d)
    log_w, n_acc = bk.xp.zeros(n), 0.0
    # the energy is validated once here; the loop calls its unchecked path (no host sync per step)
    energy.energy(x)
    for b_prev, b in zip(betas[:-1], betas[1:]):
        e_x, lq_x = energy.energy_unchecked(x), log_q(x)
        log_w = log_w + (b - b_prev) * (-e_x - lq_x)  # (n,)
        lp = lambda y, b=b: (1.0 - b) * log_q(y) - b * energy.energy_unchecked(y)
        sc = lambda y, b=b: (1.0 - b) * score_q(y) + b * energy.score_unchecked(y)
        state = State(x, (1.0 - b) * lq_x - b * e_x, sc(x))
        for _ in range(n_mala):
            state, acc, _finite = mala_step(state, lp, sc, h, rng)
            n_acc = n_acc + bk.xp.mean(acc)  # stays on the device
        x = state.position
    n_acc = float(n_acc)
    lw = bk.to_numpy(log_w)
    if not onp.all(onp.isfinite(lw)):
        raise FloatingPointError("non-finite AIS log-weights: the energy overflowed; check base and step size")
    w = onp.exp(lw - lw.max())  # (n,) in (0, 1]
    log_z = float(lw.max() + math.log(w.mean()))
    se = float(w.std(ddof=1) / (math.sqrt(n) * w.mean())) if n > 1 else math.inf
    ess = float(w.sum() ** 2 / onp.sum(w**2))
    return AISResult(log_z, se, log_w, x, ess, n_acc / (n_mala * (len(betas) - 1)))


def _check_betas(betas):
    b = onp.asarray([float(v) for v in betas])
    if b.ndim != 1 or b.size < 2 or b[0] != 0.0 or b[-1] != 1.0 or not onp.all(onp.diff(b) > 0):
        raise ValueError(f"betas must increase strictly from 0 to 1, got {b.tolist()}")
    return b
