r"""Noise schedules for noise-conditional score models: the techniques of Song & Ermon (2020),
"Improved techniques for training score-based generative models" (NCSNv2), as functions.

Technique 1: :math:`\sigma_1` is the largest Euclidean distance between two training points,
so that annealed Langevin can move between any two modes at the first level.

Technique 2: :math:`\sigma_1>\dots>\sigma_L` geometric with ratio :math:`\gamma` chosen so that
a sample of :math:`p_{\sigma_{i-1}}` is typical for :math:`p_{\sigma_i}` about half the time:

.. math:: \Phi\big(\sqrt{2d}(\gamma-1)+3\gamma\big) - \Phi\big(\sqrt{2d}(\gamma-1)-3\gamma\big)\approx\tfrac12

Technique 4: for T steps per level, the step size :math:`\epsilon` that makes the variance
ratio of the last level's samples to :math:`\sigma_L^2` as close to one as it gets:

.. math:: \Big(1-\frac{\epsilon}{\sigma_L^2}\Big)^{2T}\Big(\gamma^2-\frac{2\epsilon}{\sigma_L^2-\sigma_L^2(1-\epsilon/\sigma_L^2)^2}\Big)
          + \frac{2\epsilon}{\sigma_L^2-\sigma_L^2(1-\epsilon/\sigma_L^2)^2}\approx 1

Step sizes: the 2020 paper's update is :math:`x + \alpha_i s + \sqrt{2\alpha_i}z` with
:math:`\alpha_i=\epsilon\,\sigma_i^2/\sigma_L^2`, so **their** :math:`\epsilon` **is our** :math:`h`
(``step_size`` of :func:`refscore.samplers.annealed_langevin`); the 2019 paper's
:math:`x+\tfrac{\alpha}2 s+\sqrt\alpha z` has :math:`\alpha = 2h`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from autograd.tracer import getval

from .. import backends
from .._validation import check_points, check_positive, check_positive_int

__all__ = ["ncsnv2_schedule", "NCSNv2Schedule", "max_pairwise_distance", "ncsnv2_gamma",
           "ncsnv2_step_size", "lognormal_level_index"]


class NCSNv2Schedule(NamedTuple):
    """What :func:`ncsnv2_schedule` returns."""

    sigmas: object  # (L,) NumPy float64, σ_1 > … > σ_L
    step_size: float  # h = the paper's ε, for annealed_langevin(step_size=...)
    gamma: float  # σ_{i-1}/σ_i of the returned sigmas
    n_steps_each: int  # T
    overlap: float  # Φ(√(2d)(γ-1)+3γ) - Φ(√(2d)(γ-1)-3γ) at that γ (technique 2's quantity)
    variance_ratio: float  # the left side of technique 4's equation at step_size (ideally ≈ 1)


def max_pairwise_distance(data, chunk=None):
    r"""Technique 1's :math:`\sigma_1 = \max_{i,j}\|x_i-x_j\|` by brute force over all pairs.

    .. math:: \|x_i-x_j\|^2 = \|x_i\|^2 + \|x_j\|^2 - 2x_i^\top x_j

    Rows in chunks of ``chunk`` (default: about 4M pair entries at a time), O(n²d) work on the
    data's backend; the largest squared distance is then recomputed exactly from its pair.
    """
    data = check_points(data, name="data")  # integers -> float64
    x = getval(data)
    xp = backends.of(x).xp
    n = x.shape[0]
    chunk = chunk or max(1, 4_000_000 // n)
    sq = xp.sum(x * x, axis=1)  # (n,)
    best, pair = -1.0, (0, 0)
    for lo in range(0, n, chunk):
        d2 = sq[lo:lo + chunk, None] + sq[None, :] - 2.0 * (x[lo:lo + chunk] @ x.T)  # (chunk, n)
        k = int(xp.argmax(d2))
        if float(d2.reshape(-1)[k]) > best:
            best, pair = float(d2.reshape(-1)[k]), (lo + k // n, k % n)
    diff = x[pair[0]] - x[pair[1]]
    return math.sqrt(float(xp.sum(diff * diff)))  # exact for the maximising pair


def _overlap(gamma, d):
    c = math.sqrt(2.0 * d) * (gamma - 1.0)
    Phi = lambda t: 0.5 * math.erfc(-t / math.sqrt(2.0))
    return Phi(c + 3.0 * gamma) - Phi(c - 3.0 * gamma)


def ncsnv2_gamma(d, target=0.5):
    r"""Technique 2's ratio: the root :math:`\gamma>1` of
    :math:`\Phi(\sqrt{2d}(\gamma-1)+3\gamma)-\Phi(\sqrt{2d}(\gamma-1)-3\gamma)=` ``target``.

    .. math:: \gamma:\ \Phi\big(\sqrt{2d}(\gamma-1)+3\gamma\big)-\Phi\big(\sqrt{2d}(\gamma-1)-3\gamma\big) = 0.5

    The rule comes from :math:`\|x\|` concentrating at :math:`\sqrt d\sigma` in high dimension; in
    low dimension (d ≤ 8 for the target ½) the left side never falls to ``target`` and this
    raises ``ValueError``: choose L yourself there.
    """
    from scipy.optimize import brentq

    d = check_positive_int(d, "d")
    if not 0.0 < target < _overlap(1.0, d):
        raise ValueError(f"target must lie in (0, {_overlap(1.0, d):.4f}), got {target!r}")
    hi = 1.0 + 1.0 / math.sqrt(d)
    while _overlap(hi, d) > target:
        hi = 1.0 + 2.0 * (hi - 1.0)
        if hi > 1e3:
            raise ValueError(f"no ratio gamma satisfies technique 2 for d={d} (its overlap never falls to "
                             f"{target}); pass L to ncsnv2_schedule instead")
    return brentq(lambda g: _overlap(g, d) - target, 1.0, hi, xtol=1e-14, rtol=1e-14)


def _variance_ratio(u, T, gamma):
    """Technique 4's left side with u = ε/σ_L²: its 2ε/(σ_L² − σ_L²(1 − u)²) is 2/(2 − u)."""
    stat = 2.0 / (2.0 - u)  # stationary variance of the discretised Langevin chain / σ_L²
    return (1.0 - u) ** (2 * T) * (gamma**2 - stat) + stat


def ncsnv2_step_size(sigma_min, gamma, T):
    r"""Technique 4's step size :math:`\epsilon` (our :math:`h`) for ``T`` steps per level.

    .. math:: \min_{0<\epsilon<\sigma_L^2}\ \Big(1-\frac{\epsilon}{\sigma_L^2}\Big)^{2T}
              \Big(\gamma^2-\frac{2\epsilon}{\sigma_L^2-\sigma_L^2(1-\epsilon/\sigma_L^2)^2}\Big)
              + \frac{2\epsilon}{\sigma_L^2-\sigma_L^2(1-\epsilon/\sigma_L^2)^2}

    The left side exceeds one for every :math:`\epsilon` when :math:`\gamma>1` (both terms are
    variances above :math:`\sigma_L^2`), so "as close to 1 as possible" is its minimiser, found
    in :math:`u=\epsilon/\sigma_L^2\in(0,1)`. Returns :math:`\epsilon` (float).
    """
    from scipy.optimize import minimize_scalar

    s2 = check_positive(sigma_min, "sigma_min") ** 2
    gamma, T = check_positive(gamma, "gamma"), check_positive_int(T, "T")
    res = minimize_scalar(lambda u: _variance_ratio(u, T, gamma), bounds=(1e-12, 1.0 - 1e-12),
                          method="bounded", options={"xatol": 1e-12})
    return float(res.x) * s2


def ncsnv2_schedule(data, sigma_min=0.01, L=None, T=5, sigma_max=None, target=0.5):
    r"""The noise levels and step size of Song & Ermon (2020), techniques 1, 2 and 4.

    .. math:: \sigma_1 = \max_{i,j}\|x_i-x_j\|,\qquad \sigma_i = \sigma_1\gamma^{-(i-1)},\qquad
              L = 1 + \Big\lceil\frac{\log(\sigma_1/\sigma_L)}{\log\gamma}\Big\rceil

    with :math:`\gamma` from technique 2 (:func:`ncsnv2_gamma`; the returned ``gamma`` is the
    slightly smaller exact ratio of the rounded L) and the step size from technique 4
    (:func:`ncsnv2_step_size`). The paper's ε is our h: pass ``step_size`` and ``sigmas`` to
    :func:`refscore.samplers.annealed_langevin` with ``n_steps_each=T`` (the 2019 paper's
    :math:`\alpha` is :math:`2h`).

    Parameters
    ----------
    data : (n, d) training data (σ₁ by brute force over all pairs, unless ``sigma_max`` is given)
    sigma_min : σ_L, the smallest level (the paper: 0.01 for images in [0, 1])
    L : number of levels; default from technique 2 (which needs d ≥ 9: pass L for small d)
    T : Langevin steps per level
    sigma_max : σ₁ to use instead of the largest pairwise distance
    target : technique 2's overlap, ½ in the paper

    Returns
    -------
    NCSNv2Schedule(sigmas, step_size, gamma, n_steps_each, overlap, variance_ratio)

    Example: CIFAR-10 (Song & Ermon 2020, App. B): σ₁ = 50, σ_L = 0.01, L = 232, T = 5 gives
    ε = 6.2e-6 as in the paper (``tests/test_models.py``).
    """
    import numpy

    data = check_points(data, name="data")  # integers -> float64
    d = getval(data).shape[1]
    lo = check_positive(sigma_min, "sigma_min")
    hi = check_positive(sigma_max, "sigma_max") if sigma_max is not None else max_pairwise_distance(data)
    if not hi > lo:
        raise ValueError(f"sigma_max (the largest pairwise distance, {hi}) must exceed sigma_min={lo}")
    if L is None:
        L = 1 + math.ceil(math.log(hi / lo) / math.log(ncsnv2_gamma(d, target)))
    L = check_positive_int(L, "L", minimum=2)
    sigmas = numpy.geomspace(hi, lo, L)
    gamma = (hi / lo) ** (1.0 / (L - 1))
    T = check_positive_int(T, "T")
    eps = ncsnv2_step_size(lo, gamma, T)
    return NCSNv2Schedule(sigmas, eps, gamma, T, _overlap(gamma, d), _variance_ratio(eps / lo**2, T, gamma))


def lognormal_level_index(sigmas, n, rng, p_mean, p_std):
    r"""``n`` training levels drawn as Karras et al. (2022, §5 and Table 1, "EDM") draw their
    noise, :math:`\ln\sigma\sim\mathcal N(P_{mean}, P_{std}^2)`, each snapped to the nearest level
    of ``sigmas`` in :math:`\log\sigma`:

    .. math:: i_k = \arg\min_i\big|\ln\sigma_i - \ln\tilde\sigma_k\big|,\qquad
              \ln\tilde\sigma_k = P_{mean} + P_{std}\,\xi_k,\quad \xi_k\sim\mathcal N(0, 1)

    For ``ncsn(levels="sample", level_index=...)``: the objective keeps the schedule's levels but
    weights level i by its log-normal mass instead of 1/L, spending the training where the
    denoiser has something to learn (at σ ≫ the data's scale it returns the mean, at σ ≪ a pixel
    step it returns its input). Returns an ``(n,)`` integer array on ``rng``'s backend.
    """
    bk = backends.of_rng(rng)
    n = check_positive_int(n, "n")
    p_std = check_positive(p_std, "p_std")
    if not math.isfinite(float(p_mean)):
        raise ValueError(f"p_mean must be a finite number (the mean of ln sigma), got {p_mean!r}")
    log_levels = bk.xp.log(bk.asarray(sigmas, dtype="float64"))
    draw = float(p_mean) + p_std * bk.normal(rng, (n,), "float64")
    return bk.xp.argmin(bk.xp.abs(log_levels[None, :] - draw[:, None]), axis=1)
