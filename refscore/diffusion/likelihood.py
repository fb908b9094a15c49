r"""Likelihoods of a diffusion model in the units papers report: the exact probability-flow
log-likelihood of Gaussian data (closed form), bits per dimension with uniform dequantisation, and
the bits per dimension of a noise-conditional score model by the VE probability-flow ODE.

A pixel :math:`k\in\{0,\dots,L-1\}` (L levels; L = 256 for 8-bit images) dequantised to
:math:`x = a\,(k+u)/L + c` with :math:`u\sim U(0,1)` has cell volume :math:`(a/L)^D`, so the
discrete probability is :math:`P(k)\ge\mathbb E_u\,p(x)(a/L)^D` and (Theis et al. 2016, §3.1;
Ho et al. 2020, §4)

.. math:: \text{bits/dim} = -\frac{\log p(x)}{D\ln 2} + \log_2 L - \log_2 a

(+8 for 8-bit data in [0, 1], a = 1; +7 for [−1, 1], a = 2; score_sde's ``offset = 7 −
inverse_scaler(−1)``; :math:`+\log_2 17` for scikit-learn's digits, 17 levels :math:`k/16`).
"""
from __future__ import annotations

import math

import numpy as onp
from autograd.tracer import getval

from .._validation import check_points, check_positive, check_real, check_whole_number
from .parametrisation import per_example

__all__ = ["bits_per_dim", "dequantise", "gaussian_flow_log_likelihood", "noise_conditional_score",
           "perturbed_bits_floor", "likelihood_summary"]


def bits_per_dim(log_p, dim, scale=1.0, levels=256):
    r"""Bits per dimension of dequantised data with ``levels`` = L pixel levels from its
    log-density (see the module docstring; Theis et al. 2016, §3.1):

    .. math:: \text{bpd} = -\frac{\log p(x)}{D\ln 2} + \log_2 L - \log_2 a

    ``log_p`` (n,) natural-log densities of the dequantised points, ``dim`` = D, ``scale`` = a
    (the data range's width: 1 for [0, 1], 2 for [−1, 1]), ``levels`` = L (256: 8-bit images).
    """
    scale = check_positive(scale, "scale")  # 1 for [0, 1] data, 2 for [-1, 1]
    levels, dim = check_whole_number(levels, "levels", minimum=2), check_whole_number(dim, "dim", minimum=1)
    offset = math.log2(levels) - math.log2(scale)
    return -onp.asarray(log_p, dtype=float) / (dim * math.log(2.0)) + offset


def dequantise(k, levels, rng, dtype="float64"):
    r"""Uniform dequantisation of integer pixels :math:`k\in\{0,\dots,L-1\}` into the unit cube
    (Theis et al. 2016, §3.1; Uria et al. 2013):

    .. math:: x = \frac{k + u}{L},\qquad u\sim U(0,1)^D,

    so :math:`x` fills the cell :math:`[k/L, (k+1)/L]` of volume :math:`L^{-D}` (the bits/dim offset
    :math:`\log_2 L` of :func:`bits_per_dim`). A model trained on :math:`k/(L-1)` is evaluated on
    its own range: :math:`k/(L-1)` lies in that cell for every k. ``k`` (n, D) integers, ``rng`` a
    Generator of the backend to return on. Returns (n, D) in ``dtype``.
    """
    from .. import backends

    levels = check_whole_number(levels, "levels", minimum=2)
    kh = onp.asarray(backends.of(k).to_numpy(k) if hasattr(k, "shape") else k)
    if kh.size == 0:
        raise ValueError(f"k must be a non-empty (n, D) array of integer pixels, got shape {kh.shape}")
    if kh.ndim != 2 or not onp.all(kh == onp.round(kh)) or kh.min() < 0 or kh.max() > levels - 1:
        raise ValueError(f"k must be (n, D) integers in 0..{levels - 1} (levels={levels}), got shape "
                         f"{kh.shape}, range [{kh.min()}, {kh.max()}]")
    bk = backends.of_rng(rng)
    return (bk.asarray(kh, dtype=dtype) + bk.uniform(rng, kh.shape, dtype)) / levels


def perturbed_bits_floor(sigma, levels=256, scale=1.0):
    r"""The fewest bits/dim any law perturbed by :math:`\mathcal N(0,\sigma^2I)` can score on
    dequantised data: :math:`p_\sigma(x) = \int p(y)\,\mathcal N(x;y,\sigma^2I)\,dy \le (2\pi\sigma^2)^{-D/2}`,
    so with :func:`bits_per_dim`

    .. math:: \text{bpd}(p_\sigma) \ge \log_2 L - \log_2 a + \tfrac12\log_2(2\pi\sigma^2),

    reached by data at a single point, evaluated there. For MNIST at σ_min = 0.01, L = 256:
    2.68 bits/dim, whatever the model: the probability-flow likelihood from σ_min
    (:func:`flow_bits_per_dim`) measures :math:`p_{\sigma_{\min}}`, not the data's own law.
    """
    sigma, scale = check_positive(sigma, "sigma"), check_positive(scale, "scale")
    levels = check_whole_number(levels, "levels", minimum=2)
    return math.log2(levels) - math.log2(scale) + 0.5 * math.log2(2 * math.pi * sigma * sigma)


def gaussian_flow_log_likelihood(mean, cov, sde, x, t_min):
    r"""What an exact probability-flow log-likelihood returns for Gaussian data
    :math:`\mathcal N(\mu,S)`, integrating from ``t_min`` = ε to 1 with the exact score and the exact
    prior :math:`p_1` (Song et al. 2021, eq. 39 and Appendix D.2): the log-density of :math:`p_\varepsilon`,

    .. math:: \log p_\varepsilon(x) = \log\mathcal N\big(x;\ a(\varepsilon)\mu,\
              a(\varepsilon)^2S + s(\varepsilon)^2 I\big)

    (the law :func:`refscore.sde.marginal_law` gives; ``sde`` any object with ``marginal_coeffs``).
    ``x`` (n, d), on the host.
    """
    t_min = check_real(t_min, "t_min")
    if not 0.0 <= t_min <= 1.0:
        raise ValueError(f"t_min must lie in [0, 1], the SDE's time horizon, got {t_min!r}")
    if not callable(getattr(sde, "marginal_coeffs", None)):
        raise TypeError(f"sde must have marginal_coeffs (a refscore.sde.SDE), got {type(sde).__name__}")
    mean, cov = onp.asarray(mean, dtype=float), onp.asarray(cov, dtype=float)
    d = mean.shape[0] if mean.ndim == 1 else -1
    if d < 1 or cov.shape != (d, d):
        raise ValueError(f"mean must be (d,) and cov (d, d), got shapes {mean.shape} and {cov.shape}")
    x = check_points(onp.asarray(x, dtype=float).reshape(len(x), -1), dim=d)
    a, s = sde.marginal_coeffs(t_min)
    mu = a * mean
    cov = a * a * cov + s * s * onp.eye(d)
    prec = onp.linalg.inv(cov)
    prec = (prec + prec.T) / 2
    logdet = 2.0 * float(onp.sum(onp.log(onp.diag(onp.linalg.cholesky(cov)))))
    r = x - mu
    return -0.5 * onp.sum((r @ prec) * r, axis=1) - (0.5 * mu.shape[0] * math.log(2 * math.pi) + 0.5 * logdet)


def noise_conditional_score(score_fn, sde):
    r"""A noise-conditional model :math:`\sigma\mapsto s_\theta(x,\sigma)` as the time-indexed score
    of the SDE ``sde`` (Song et al. 2021, eq. 9 and Appendix B: NCSN in continuous time; Karras et al.
    2022, eq. 4 and Table 1: every SDE here is a scaled VE process). With ``sde.noise_level(t)`` =
    :math:`(a, \sigma)`, :math:`x_t = a\,(x_0 + \sigma z)`, so

    .. math:: s(x, t) = \frac1a\,s_\theta\big(x/a,\ \sigma(t)\big)

    (VE: :math:`a = 1`, :math:`\sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t`; VP:
    :math:`\sigma = s(t)/a(t)`). ``score_fn(x, sigma)`` (n, d) -> (n, d) with σ a float; returns
    ``(x, t) -> (n, d)`` for float times. An ``sde`` without ``noise_level`` is read as VE (``sde.sigma``).

    A ``score_fn`` with a true attribute ``per_example_sigma`` (the ``score_fn()`` of
    :class:`refscore.models.ConvScoreNet` and :class:`refscore.models.NoiseConditionalScoreNet`)
    takes an ``(n,)`` array of levels; the returned score then takes an ``(n,)`` array of per-row
    times too and says so by its attribute ``row_times`` (read by
    :func:`refscore.sde.log_likelihood` with ``per_row=True``).
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be a callable score_fn(x, sigma), got {type(score_fn).__name__}")
    if not callable(getattr(sde, "noise_level", None)) and not callable(getattr(sde, "sigma", None)):
        raise TypeError(f"sde must have noise_level(t) or sigma(t) (a refscore.sde.SDE), got {type(sde).__name__}")
    level = getattr(sde, "noise_level", None) or (lambda t: (1.0, sde.sigma(t)))

    row_times = bool(getattr(score_fn, "per_example_sigma", False))

    def score(x, t):
        a, sigma = level(t)
        if getattr(getval(t), "ndim", 0) == 1:  # per-row times: per-example levels and scales
            if not row_times:
                raise TypeError("score_fn takes a float sigma: per-row times need a score_fn with the attribute "
                                "per_example_sigma = True that takes an (n,) array of levels")
            a = per_example(a, x) if getattr(a, "ndim", 0) == 1 else a
            return score_fn(x / a, sigma) / a
        if a == 1.0:
            return score_fn(x, float(sigma))
        return score_fn(x / a, float(sigma)) / a

    score.row_times = row_times
    return score


def likelihood_summary(bpd, method, levels, offset, nfev, seconds, probe_sd=None):
    r"""The record of :func:`refscore.sde.flow_bits_per_dim`: the mean of the rows' bits/dim ``bpd``
    and its standard error across rows (None for one row), the median and the run's details.

    .. math:: \bar b = \frac1n\sum_i b_i,\qquad \mathrm{SE} = \frac{\mathrm{sd}(b)}{\sqrt n}
    """
    bpd = onp.asarray(bpd, dtype=float)
    if bpd.ndim != 1 or bpd.size == 0:
        raise ValueError(f"bpd must be a non-empty (n,) array of bits/dim, got shape {bpd.shape}")
    n = int(bpd.shape[0])
    se = float(onp.std(bpd, ddof=1) / math.sqrt(n)) if n > 1 else None  # None: one row has no spread
    return {"bpd": bpd, "mean": float(onp.mean(bpd)), "se": se, "median": float(onp.median(bpd)), "n": n,
            "method": method, "levels": int(levels), "offset": offset, "nfev": int(nfev), "seconds": float(seconds),
            "probe_sd": probe_sd}
