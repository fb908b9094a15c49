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

__all__ = ["bits_per_dim", "dequantise", "gaussian_flow_log_likelihood", "noise_conditional_score",
           "flow_bits_per_dim", "perturbed_bits_floor"]


def bits_per_dim(log_p, dim, scale=1.0, levels=256):
    r"""Bits per dimension of dequantised data with ``levels`` = L pixel levels from its
    log-density (see the module docstring; Theis et al. 2016, §3.1):

    .. math:: \text{bpd} = -\frac{\log p(x)}{D\ln 2} + \log_2 L - \log_2 a

    ``log_p`` (n,) natural-log densities of the dequantised points, ``dim`` = D, ``scale`` = a
    (the data range's width: 1 for [0, 1], 2 for [−1, 1]), ``levels`` = L (256: 8-bit images).
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive (1 for [0, 1] data, 2 for [-1, 1]), got {scale!r}")
    if int(levels) != levels or levels < 2:
        raise ValueError(f"levels must be an integer >= 2 (256 for 8-bit images), got {levels!r}")
    offset = math.log2(int(levels)) - math.log2(scale)
    return -onp.asarray(log_p, dtype=float) / (int(dim) * math.log(2.0)) + offset


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

    kh = onp.asarray(backends.of(k).to_numpy(k) if hasattr(k, "shape") else k)
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
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    return math.log2(int(levels)) - math.log2(scale) + 0.5 * math.log2(2 * math.pi * sigma * sigma)


def gaussian_flow_log_likelihood(mean, cov, sde, x, t_min):
    r"""What an exact probability-flow log-likelihood returns for Gaussian data
    :math:`\mathcal N(\mu,S)`, integrating from ``t_min`` = ε to 1 with the exact score and the exact
    prior :math:`p_1` (Song et al. 2021, eq. 39 and Appendix D.2): the log-density of :math:`p_\varepsilon`,

    .. math:: \log p_\varepsilon(x) = \log\mathcal N\big(x;\ a(\varepsilon)\mu,\
              a(\varepsilon)^2S + s(\varepsilon)^2 I\big)

    (:func:`refscore.sde.marginal_law`). ``x`` (n, d).
    """
    from ..energies import Gaussian
    from ..sde import marginal_law

    law = marginal_law(Gaussian(onp.asarray(mean, dtype=float), onp.asarray(cov, dtype=float)), sde, t_min)
    return onp.asarray(law.log_prob(onp.asarray(x, dtype=float).reshape(len(x), -1)))


def noise_conditional_score(score_fn, sde):
    r"""A noise-conditional model :math:`\sigma\mapsto s_\theta(x,\sigma)` as the time-indexed score
    of the VE SDE ``sde`` (Song et al. 2021, eq. 9 and Appendix B: NCSN in continuous time):

    .. math:: s(x, t) = s_\theta\big(x, \sigma(t)\big),\qquad \sigma(t) = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t

    ``score_fn(x, sigma)`` (n, d) -> (n, d) with σ a float; returns ``(x, t) -> (n, d)``.
    """
    return lambda x, t: score_fn(x, float(sde.sigma(t)))


def _summary(bpd, method, levels, offset, nfev, seconds, probe_sd=None):
    """The record of :func:`flow_bits_per_dim`: mean over rows and its standard error across rows."""
    n = int(bpd.shape[0])
    se = float(onp.std(bpd, ddof=1) / math.sqrt(n)) if n > 1 else None  # None: one row has no spread
    return {"bpd": bpd, "mean": float(onp.mean(bpd)), "se": se, "median": float(onp.median(bpd)), "n": n,
            "method": method, "levels": int(levels), "offset": offset, "nfev": int(nfev), "seconds": float(seconds),
            "probe_sd": probe_sd}


def flow_bits_per_dim(score_fn, x, sigma_min, sigma_max, levels=256, rng=None, n_probes=1, probe_sets=1,
                      rtol=1e-5, atol=1e-5, trace_chunk=None, prior_log_prob=None):
    r"""Bits per dimension of a noise-conditional score model by the probability-flow ODE of the VE
    SDE (Song et al. 2021, eq. 13, eq. 39 and Appendix D.2), on dequantised rows ``x`` in
    :math:`[0, 1]^D` (:func:`dequantise` with ``levels`` = L):

    .. math:: \log p_{\sigma_{\min}}(x) = \log\mathcal N\big(x(1);0,\sigma_{\max}^2I\big)
              + \int_0^1 \tfrac12 g(t)^2\operatorname{tr}\nabla_x s_\theta\big(x(t),\sigma(t)\big)\,dt,
              \qquad \text{bpd} = -\frac{\log p_{\sigma_{\min}}(x)}{D\ln 2} + \log_2 L

    The ODE starts at t = 0, where σ(0) = σ_min > 0: the model of the score there is that of the
    data perturbed by :math:`\mathcal N(0,\sigma_{\min}^2I)`, so this is the likelihood of
    :math:`p_{\sigma_{\min}}` (Song et al. 2021 integrate from their ε for the same reason). The
    prior is the VE SDE's :math:`\mathcal N(0,\sigma_{\max}^2I)` (no data mean, no
    :math:`-\sigma_{\min}^2`; the true :math:`p_1` is the data convolved with
    :math:`\mathcal N(0,\sigma_{\max}^2I)`): a proper density, so the result is the exact likelihood
    of the model "flow + this prior"; ``prior_log_prob`` replaces it. The mismatch costs about
    :math:`\mathbb E\|x\|^2/(2D\sigma_{\max}^2\ln 2)` bits/dim: 3e-4 for MNIST at σ_max = 16.

    Trace: exact (``rng=None``; :func:`refscore.traces.jacobian_trace`, batched over
    ``trace_chunk`` replicated rows when given), or Hutchinson's with ``n_probes`` Gaussian probes
    fixed along each path, repeated over ``probe_sets`` independent sets of probes (their rows'
    average is used; with two or more, ``probe_sd`` is the per-row standard deviation due to the probes,
    :math:`\sqrt{\overline{\operatorname{var}_{\text{sets}}}}`).

    Returns a dict: ``bpd`` (n,), ``mean``, ``median`` (a mean far above it says some paths ran
    away: a score that is wrong off the data drives the ODE there), ``se`` (standard error across
    rows, None for one row; with Hutchinson it includes the probes' noise), ``n``, ``method``,
    ``levels``, ``offset`` (:math:`\log_2 L`), ``nfev`` (ODE evaluations, all sets), ``seconds``,
    ``probe_sd`` (None unless two or more sets).
    """
    import time

    from .. import backends
    from ..sde import VESDE, log_likelihood

    sde = VESDE(sigma_min, sigma_max)
    score = noise_conditional_score(score_fn, sde)
    t0, d = time.time(), x.shape[1]
    runs, nfev = [], 0
    for _ in range(1 if rng is None else probe_sets):
        ll, k = log_likelihood(sde, score, x, t_min=0.0, rng=rng, n_projections=n_probes, rtol=rtol, atol=atol,
                               return_nfev=True, trace_chunk=trace_chunk, prior_log_prob=prior_log_prob)
        runs.append(bits_per_dim(backends.of(ll).to_numpy(ll), d, levels=levels))
        nfev += k
    runs = onp.stack(runs)  # (sets, n)
    probe_sd = float(onp.sqrt(onp.mean(onp.var(runs, axis=0, ddof=1)))) if len(runs) > 1 else None
    method = "exact" if rng is None else f"hutchinson (M={n_probes})"
    return _summary(runs.mean(axis=0), method, levels, math.log2(levels), nfev, time.time() - t0, probe_sd)
