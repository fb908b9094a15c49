r"""Score-matching objectives, each in the ½ convention (Hyvärinen 2005; Vincent 2011).

Every loss returns the batch mean (a 0-d array) or, with ``reduction="none"``, the ``(n,)``
per-example values, so that users can form standard errors. Every loss is differentiable with
respect to parameters closed over by ``score_fn`` (autograd, any order).

The identities they satisfy, which ``tests/test_losses.py`` checks and :func:`esm_ism_gap` /
:func:`dsm_esm_gap` give the constants of:

.. math::
   \mathrm{ESM}(\theta) &= \mathrm{ISM}(\theta) + \tfrac12\mathbb E\|s^*\|^2
        &&\text{(Hyvärinen 2005, Thm 1; seed 004\_…, the integration-by-parts derivation)}\\
   \mathbb E_v[\mathrm{SSM}(\theta)] &= \mathrm{ISM}(\theta)
        &&\text{(Song et al. 2019, SSM; seed 002\_…, Hutchinson)}\\
   \mathrm{DSM}_\sigma(\theta) &= \mathrm{ESM}_{p_\sigma}(\theta) + C(\sigma)
        &&\text{(Vincent 2011, eq. 11; seed 004\_…, Q1 derivation)}

The seeds drop the ½ in places (``002_…``/``000_…``: ":math:`\approx`", and ``003_…``
eq. after 11.2: :math:`\mathbb E[s^2 + 2\nabla s]`): there ESM = 2·ISM + C.
"""
from __future__ import annotations

import math

import autograd.numpy as anp
from autograd import make_vjp
from autograd.tracer import getval

from . import backends
from ._math import sqnorm
from ._validation import (check_choice, check_points, check_positive, check_positive_int,
                          check_unit_interval)
from ._validation import check_sigmas as _check_sigmas

__all__ = ["esm", "ism", "ssm", "dsm", "ncsn", "vp_denoising", "geometric_sigmas",
           "esm_ism_gap", "dsm_esm_gap", "jacobian_trace", "projections"]

_REDUCTIONS = ("mean", "none")


def _reduce(per_example, reduction):
    check_choice(reduction, "reduction", _REDUCTIONS)
    return anp.mean(per_example) if reduction == "mean" else per_example


def _check_score_shape(s, x, who="score_fn"):
    if tuple(getval(s).shape) != tuple(getval(x).shape):
        raise ValueError(f"{who} must map (n, d) to (n, d); got {tuple(getval(s).shape)} "
                         f"for input {tuple(getval(x).shape)}")
    return s


def esm(score_fn, x, true_score_fn, reduction="mean"):
    r"""Explicit score matching (the Fisher divergence, ½ convention).

    .. math:: \mathrm{ESM}(\theta) = \tfrac12\,\mathbb E_{p^*}\|s_\theta(x) - s^*(x)\|^2

    Seed ``002_…`` ("Minimize Fisher divergence = Score matching"), seed ``001_…``
    (":math:`\mathbb E_{p(x)}\|\nabla_x\log p(x)-s_\theta(x)\|^2`", there without the ½).

    Parameters
    ----------
    score_fn, true_score_fn : callables (n, d) -> (n, d)
    x : (n, d) samples of :math:`p^*`
    reduction : "mean" (default) or "none"
    """
    check_points(x)
    diff = _check_score_shape(score_fn(x), x) - _check_score_shape(true_score_fn(x), x, "true_score_fn")
    return _reduce(0.5 * sqnorm(diff), reduction)


def jacobian_trace(score_fn, x):
    r"""Exact :math:`\operatorname{tr}\nabla_x s(x)` of every row, with its value :math:`s(x)`.

    .. math:: \operatorname{tr}\nabla_x s(x) = \sum_{i=1}^d e_i^\top\big(\nabla_x s(x)\big)^\top e_i

    One forward pass and **d reverse passes** (vector–Jacobian products with the basis vectors
    :math:`e_i`, each over the whole batch at once: rows do not interact). This is the cost
    that sliced score matching avoids (seed 002_…, "Second term is nasty").

    Returns
    -------
    s : (n, d), trace : (n,)
    """
    vjp, s = make_vjp(score_fn)(x)
    _check_score_shape(s, x)
    n, d = getval(x).shape
    xp = backends.of(getval(x)).xp
    eye = xp.eye(d, dtype=getval(x).dtype)
    trace = 0.0
    for i in range(d):
        e_i = xp.zeros((n, d), dtype=getval(x).dtype) + eye[i]  # (n, d), every row e_i
        trace = trace + vjp(e_i)[:, i]
    return s, trace


def ism(score_fn, x, reduction="mean"):
    r"""Implicit score matching with the exact Jacobian trace (Hyvärinen 2005, eq. 4).

    .. math:: \mathrm{ISM}(\theta) = \mathbb E_{p^*}\big[\tfrac12\|s_\theta(x)\|^2
              + \operatorname{tr}\nabla_x s_\theta(x)\big],\qquad
              \mathrm{ESM} = \mathrm{ISM} + \tfrac12\mathbb E\|s^*\|^2

    Seeds ``000_…``/``002_…`` ("Avoiding p*: Implicit score matching"), derivation by parts in
    ``004_…`` (Q1). Cost: one forward and d reverse passes (:func:`jacobian_trace`); no Python
    loop over the batch. ``score_fn`` must be autograd-traceable.
    """
    check_points(x)
    s, tr = jacobian_trace(score_fn, x)
    return _reduce(0.5 * sqnorm(s) + tr, reduction)


def projections(rng, shape, kind="gaussian", dtype="float64"):
    r"""Random projection vectors with :math:`\mathbb E[vv^\top]=I`.

    ``"gaussian"``: :math:`v\sim\mathcal N(0,I)`; ``"rademacher"``: independent ±1 entries.
    Never unit-sphere vectors: those have :math:`\mathbb E[vv^\top]=I/d` and silently scale
    the trace term by :math:`1/d` (the bug of the original SSM code).
    """
    check_choice(kind, "projection", ("gaussian", "rademacher"))
    bk = backends.of_rng(rng)
    return bk.normal(rng, shape, dtype) if kind == "gaussian" else bk.rademacher(rng, shape, dtype)


def ssm(score_fn, x, rng=None, n_projections=1, projection="gaussian", variance_reduced=False,
        reduction="mean", v=None):
    r"""Sliced score matching (Song, Garg, Shi & Ermon 2019, eqs. 7–8): Hutchinson's estimator of
    the trace in ISM.

    .. math::
       \mathrm{SSM} &= \mathbb E_{p^*}\mathbb E_v\big[v^\top\nabla_x s_\theta(x)\,v
                        + \tfrac12 (v^\top s_\theta(x))^2\big] \\
       \mathrm{SSM}_{\mathrm{VR}} &= \mathbb E_{p^*}\mathbb E_v\big[v^\top\nabla_x s_\theta(x)\,v
                        + \tfrac12\|s_\theta(x)\|^2\big]

    with :math:`\mathbb E[vv^\top]=I`, so :math:`\mathbb E_v[\mathrm{SSM}]=\mathrm{ISM}` (seed
    ``002_…``: ":math:`=\mathbb E_{v\sim N(0,I_d)}\ldots v^\top\nabla_x s(x) v`"). Each of the M
    projections costs one reverse pass (:math:`v^\top\nabla_x(v^\top s)`), against d for ISM.
    For a symmetric Jacobian :math:`J` and Gaussian probes the VR estimator's variance over
    :math:`v` is :math:`2\|J\|_F^2/M` per example (Rademacher: :math:`2(\|J\|_F^2-\sum_i J_{ii}^2)/M`).

    Parameters
    ----------
    rng : backend Generator (needed unless ``v`` is given)
    n_projections : int, M
    projection : "gaussian" or "rademacher"
    variance_reduced : bool
    v : optional (M, n, d) projections to use instead of drawing them (for parity tests)
    """
    check_points(x)
    n, d = getval(x).shape
    if v is None:
        M = check_positive_int(n_projections, "n_projections")
        if rng is None:
            raise ValueError("ssm needs rng (a backend Generator) unless projections v are given")
        v = projections(rng, (M, n, d), projection, getval(x).dtype)
    else:
        if tuple(getval(v).shape)[1:] != (n, d) or getval(v).ndim != 3:
            raise ValueError(f"v must have shape (M, {n}, {d}), got {tuple(getval(v).shape)}")
        M = getval(v).shape[0]
    vjp, s = make_vjp(score_fn)(x)
    _check_score_shape(s, x)
    quad = 0.0
    second = 0.0
    for m in range(M):
        vm = v[m]  # (n, d)
        quad = quad + anp.sum(vjp(vm) * vm, axis=1)  # vᵀ (∇s)ᵀ v = vᵀ ∇s v
        if not variance_reduced:
            second = second + 0.5 * anp.sum(vm * s, axis=1) ** 2
    second = 0.5 * sqnorm(s) if variance_reduced else second / M
    return _reduce(quad / M + second, reduction)


def dsm(score_fn, x, sigma, rng=None, reduction="mean", z=None):
    r"""Denoising score matching at one noise level (Vincent 2011, eq. 11; seed 001_…,
    "Equivalent to Denoising score matching"):

    .. math:: \mathrm{DSM}_\sigma(\theta) = \tfrac12\,\mathbb E\big\|s_\theta(\tilde x)
              - \nabla_{\tilde x}\log q_\sigma(\tilde x\mid x)\big\|^2
              = \tfrac12\,\mathbb E\Big\|s_\theta(\tilde x) + \frac{\tilde x - x}{\sigma^2}\Big\|^2,
              \quad \tilde x = x+\sigma z

    The target is :math:`-(\tilde x-x)/\sigma^2 = -z/\sigma`: a minus sign and :math:`\sigma^2`
    (the sign error of TorchEBM #318 and the σ-for-σ² slip of score_sde #26 fail the tests).
    ``z`` (n, d) may be passed to fix the noise.
    """
    check_points(x)
    s2 = check_positive(sigma, "sigma") ** 2
    if z is None:
        if rng is None:
            raise ValueError("dsm needs rng (a backend Generator) unless the noise z is given")
        z = backends.of(getval(x)).normal(rng, getval(x).shape, getval(x).dtype)
    x_tilde = x + math.sqrt(s2) * z
    s = _check_score_shape(score_fn(x_tilde), x)
    return _reduce(0.5 * sqnorm(s + (x_tilde - x) / s2), reduction)


def geometric_sigmas(sigma_max, sigma_min, L):
    r"""``L`` noise levels decreasing geometrically from ``sigma_max`` to ``sigma_min``
    (Song & Ermon 2019, §4.2: :math:`\sigma_1/\sigma_2=\dots=\sigma_{L-1}/\sigma_L>1`).
    Returns a NumPy float64 array (host: these are loop constants, not data)."""
    import numpy

    hi, lo = check_positive(sigma_max, "sigma_max"), check_positive(sigma_min, "sigma_min")
    L = check_positive_int(L, "L")
    if L > 1 and not hi > lo:
        raise ValueError(f"sigma_max must exceed sigma_min, got {hi} <= {lo}")
    return numpy.geomspace(hi, lo, L) if L > 1 else numpy.array([hi])


def ncsn(score_fn, x, sigmas, rng=None, weighting="sigma2", reduction="mean", z=None):
    r"""Noise-conditional score matching over L levels (Song & Ermon 2019, eq. 6; seed 001_…,
    "sum of weighted Fishers"):

    .. math:: \mathcal L(\theta) = \frac1L\sum_{i=1}^L \lambda(\sigma_i)\,
              \tfrac12\,\mathbb E\Big\|s_\theta(\tilde x,\sigma_i)+\frac{\tilde x-x}{\sigma_i^2}\Big\|^2,
              \qquad \lambda(\sigma)=\sigma^2

    :math:`\lambda(\sigma)=\sigma^2` makes every term of order one (:math:`\|\sigma s\|\approx
    \|z\|`). Every level uses every example (an exact average over levels, L forward passes).

    Parameters
    ----------
    score_fn : callable ``(x, sigma) -> (n, d)``, sigma a Python float
    sigmas : strictly decreasing positive levels :math:`\sigma_1>\dots>\sigma_L`
    weighting : "sigma2" (default), "none", or a callable ``sigma -> lambda``
    z : optional (L, n, d) noise
    """
    check_points(x)
    sig = _check_sigmas(sigmas)
    if callable(weighting):
        lam = weighting
    else:
        check_choice(weighting, "weighting", ("sigma2", "none"))
        lam = (lambda s: s * s) if weighting == "sigma2" else (lambda s: 1.0)
    if z is not None and (getval(z).ndim != 3 or getval(z).shape[0] != sig.size):
        raise ValueError(f"z must have shape ({sig.size}, n, d), got {tuple(getval(z).shape)}")
    total = 0.0
    for i, s_i in enumerate(sig):
        s_i = float(s_i)
        per = dsm(lambda xt: score_fn(xt, s_i), x, s_i, rng, reduction="none",
                  z=None if z is None else z[i])
        total = total + lam(s_i) * per
    return _reduce(total / sig.size, reduction)


def vp_denoising(score_fn, x, beta, rng=None, reduction="mean", eps=None):
    r"""The VP (diffusion) denoising objective of seed ``003_…``, eq. 11.16:

    .. math:: \mathbb E\,\big\|x' + \beta\,S_w(x',\beta) - \sqrt{1-\beta}\,x\big\|^2,
              \qquad x' = \sqrt{1-\beta}\,x + \sqrt\beta\,\varepsilon \quad\text{(eq. 11.5)}

    As in the notes, without a ½. Its minimiser is the score of the diffused law
    :math:`p_\beta` (eqs. 11.12–11.13): by eqs. 11.17–11.21 it differs from eq. 11.15 (the same
    with :math:`\mathbb E[x\mid x']` in place of :math:`x`) by a constant — the cross term
    vanishes by the tower property. Since :math:`x'-\sqrt{1-\beta}x=\sqrt\beta\varepsilon`, it
    equals :math:`\beta^2\,\mathbb E\|S_w + \varepsilon/\sqrt\beta\|^2`: DSM with
    :math:`\sigma^2=\beta`, weighted :math:`2\beta^2`.

    Parameters
    ----------
    score_fn : callable ``(x, beta) -> (n, d)``; ``beta`` is passed as given
    beta : float in (0, 1), or an (n,) array of per-example values in (0, 1)
    eps : optional (n, d) noise
    """
    check_points(x)
    xv = getval(x)
    bk = backends.of(xv)
    if isinstance(beta, (int, float)):
        b = check_unit_interval(beta, "beta")
        a, sb = math.sqrt(1.0 - b), math.sqrt(b)
        b_col = b
    else:
        bv = getval(beta)
        if bv.shape != (xv.shape[0],):
            raise ValueError(f"beta must be a float or an array of shape ({xv.shape[0]},), got {tuple(bv.shape)}")
        if not bool(bk.xp.all((bv > 0) & (bv < 1))):
            raise ValueError("every beta must lie in (0, 1)")
        b_col = anp.reshape(beta, (-1, 1))
        a, sb = anp.sqrt(1.0 - b_col), anp.sqrt(b_col)
    if eps is None:
        if rng is None:
            raise ValueError("vp_denoising needs rng (a backend Generator) unless eps is given")
        eps = bk.normal(rng, xv.shape, xv.dtype)
    x_prime = a * x + sb * eps
    s = _check_score_shape(score_fn(x_prime, beta), x)
    return _reduce(sqnorm(x_prime + b_col * s - a * x), reduction)


# ----------------------------------------------------------------------------------------
# The constants of the identities
# ----------------------------------------------------------------------------------------
def esm_ism_gap(true_score_fn, x):
    r"""The constant :math:`\mathrm{ESM}(\theta)-\mathrm{ISM}(\theta)=\tfrac12\mathbb E_{p^*}\|s^*(x)\|^2`
    (Hyvärinen 2005, Thm 1), estimated on the sample ``x`` (a batch mean, like the losses).

    For Gaussian data :math:`\mathcal N(\mu,S)` its expectation is :math:`\tfrac12\operatorname{tr}S^{-1}`.
    """
    check_points(x)
    return anp.mean(0.5 * sqnorm(_check_score_shape(true_score_fn(x), x, "true_score_fn")))


def dsm_esm_gap(data, sigma, method="auto", rng=None, n_mc=200_000, bounds=None, return_stderr=False):
    r"""The constant :math:`C(\sigma)=\mathrm{DSM}_\sigma(\theta)-\mathrm{ESM}_{p_\sigma}(\theta)`
    (Vincent 2011, §4.2; seed 004_…, Q1 derivation, ½ convention):

    .. math:: C(\sigma) = \frac{d}{2\sigma^2} - \tfrac12\,\mathbb E_{p_\sigma}\|\nabla\log p_\sigma(\tilde x)\|^2

    (the first term is :math:`\tfrac12\mathbb E\|\nabla\log q_\sigma(\tilde x\mid x)\|^2=\tfrac12\mathbb E\|z\|^2/\sigma^2`).

    Methods (``method="auto"`` picks the first that applies):

    * ``"closed"`` for a :class:`~refscore.energies.Gaussian` :math:`\mathcal N(\mu,S)`:
      :math:`C=\tfrac12\big(d/\sigma^2-\operatorname{tr}(S+\sigma^2I)^{-1}\big)`;
    * ``"quadrature"`` for a :class:`~refscore.energies.GaussianMixture` with d ≤ 2 (SciPy);
    * ``"mc"`` otherwise: Monte Carlo over :math:`n_{mc}` samples of :math:`p_\sigma`, with its
      standard error (``return_stderr=True`` returns ``(value, stderr)``; the closed form and
      quadrature report stderr 0).
    """
    import numpy
    from scipy import integrate

    from .energies import Gaussian, GaussianMixture

    s = check_positive(sigma, "sigma")
    check_choice(method, "method", ("auto", "closed", "quadrature", "mc"))
    d = data.dim
    if method == "auto":
        method = ("closed" if isinstance(data, Gaussian) else
                  "quadrature" if isinstance(data, GaussianMixture) and d <= 2 else "mc")
    se = 0.0
    if method == "closed":
        if not isinstance(data, Gaussian):
            raise ValueError("method='closed' needs Gaussian data")
        S = data.backend.to_numpy(data.cov)
        value = 0.5 * (d / s**2 - numpy.trace(numpy.linalg.inv(S + s**2 * numpy.eye(d))))
    else:
        if not isinstance(data, GaussianMixture):
            raise ValueError("quadrature/mc gaps need GaussianMixture data (Gaussian: method='closed')")
        p = data.perturbed(s)
        if method == "quadrature":
            if d > 2:
                raise ValueError("quadrature is offered for d <= 2")
            h = p._host
            spread = float(numpy.sqrt(h["covs"].diagonal(axis1=1, axis2=2).max()))
            lo, hi = float(h["means"].min()) - 12 * spread, float(h["means"].max()) + 12 * spread
            ref = GaussianMixture(h["weights"], h["means"], h["covs"])  # host copy

            def f(pts):
                return numpy.exp(-ref.energy(pts)) * sqnorm(ref.score(pts))

            if d == 1:
                e2 = integrate.quad(lambda t: f(numpy.array([[t]]))[0], lo, hi, limit=400)[0]
            else:
                inner = lambda t: integrate.fixed_quad(
                    lambda u: f(numpy.stack([numpy.full_like(u, t), u], 1)), lo, hi, n=400)[0]
                e2 = integrate.quad(inner, lo, hi, limit=200)[0]
            value = 0.5 * (d / s**2 - e2)
        else:
            if rng is None:
                raise ValueError("method='mc' needs rng")
            bk = data.backend
            xs = p.sample(check_positive_int(n_mc, "n_mc"), rng)
            sq = bk.to_numpy(sqnorm(p.score(xs)))
            value = 0.5 * (d / s**2 - sq.mean())
            se = 0.5 * sq.std(ddof=1) / math.sqrt(sq.size)
    return (float(value), float(se)) if return_stderr else float(value)
