r"""Score-matching objectives, each in the ½ convention (Hyvärinen 2005; Vincent 2011).

Every loss returns the batch mean (a 0-d array) or, with ``reduction="none"``, the ``(n,)``
per-example values, so that users can form standard errors. Every loss is differentiable with
respect to parameters closed over by ``score_fn`` (autograd, any order).

The identities they satisfy, which ``tests/test_losses.py`` checks and :func:`esm_ism_gap` /
:func:`dsm_esm_gap` give the constants of:

.. math::
   \begin{aligned}
   \mathrm{ESM}(\theta) &= \mathrm{ISM}(\theta) + \tfrac12\mathbb E\|s^*\|^2
        &&\text{(Hyvärinen 2005, Thm 1; seed 004\_…, the integration-by-parts derivation)}\\
   \mathbb E_v[\mathrm{SSM}(\theta)] &= \mathrm{ISM}(\theta)
        &&\text{(Song et al. 2019, SSM; seed 002\_…, Hutchinson)}\\
   \mathrm{DSM}_\sigma(\theta) &= \mathrm{ESM}_{p_\sigma}(\theta) + C(\sigma)
        &&\text{(Vincent 2011, eq. 11; seed 004\_…, Q1 derivation)}
   \end{aligned}

The seeds drop the ½ in places (``002_…``/``000_…``: ":math:`\approx`", and ``003_…``
eq. after 11.2: :math:`\mathbb E[s^2 + 2\nabla s]`): there ESM = 2·ISM + C.
"""
from __future__ import annotations

import math
import numbers
import warnings

import autograd.numpy as anp
from autograd.tracer import getval

from . import backends
from ._math import sqnorm
from ._validation import (check_choice, check_noise, check_points, check_positive, check_positive_int,
                          check_unit_interval, check_values_in)
from ._validation import check_sigmas as _check_sigmas

from .diffusion.parametrisation import per_example
from .loss_constants import dsm_esm_gap, esm_ism_gap
from .traces import check_score_shape, hutchinson_trace, jacobian_trace  # the traces also stay importable here

__all__ = ["esm", "ism", "ssm", "dsm", "ncsn", "vp_denoising", "geometric_sigmas",
           "esm_ism_gap", "dsm_esm_gap", "jacobian_trace", "hutchinson_trace", "projections", "DegenerateDataWarning",
           "warn_if_degenerate"]

_REDUCTIONS = ("mean", "none")


def _reduce(per_example, reduction):
    check_choice(reduction, "reduction", _REDUCTIONS)
    return anp.mean(per_example) if reduction == "mean" else per_example


class DegenerateDataWarning(UserWarning):
    r"""The batch has a coordinate that never varies (e.g. always-blank pixels), so the data law has
    no density there and ISM/SSM are unbounded below.

    .. math:: \mathrm{ISM}(\theta) = \mathbb E\big[\tfrac12\|s_\theta\|^2
              + \operatorname{tr}\nabla_x s_\theta\big]\to-\infty
              \quad\text{with } s_{\theta,j}(x) = -c\,(x_j - x_j^0),\ c\to\infty

    on a constant coordinate :math:`x_j\equiv x_j^0`: the square term is 0 there and the trace
    term is :math:`-c`. Hyvärinen's identity (2005, Thm 1) needs a density; use DSM (its noised
    data has one) or add noise to the data.
    """


def warn_if_degenerate(x, who="ism"):
    r"""Warn (:class:`DegenerateDataWarning`) when some column of ``x`` never varies, and return how
    many do: the check behind :func:`ism` and :func:`ssm`, to run once on a whole data set.

    .. math:: \#\{j : x_{ij} = x_{1j}\ \forall i\}

    One comparison per entry and one host read (a device synchronisation on a GPU). :func:`ism`
    and :func:`ssm` run it on every call only for host (NumPy) arrays, where it is free; on a
    device they never read the data back, so call this once on the training data before
    :func:`~refscore.training.train.fit` (Hyvärinen 2005, Thm 1 needs a density; see
    :class:`DegenerateDataWarning`).

    Parameters
    ----------
    x : (n, d) data
    who : str, the loss named in the warning ("ism" or "ssm")
    """
    return _warn_flat_columns(getval(check_points(x)), who, stacklevel=3)


def _warn_flat_columns(xv, who, stacklevel):
    """The count behind :func:`warn_if_degenerate`; the warning points ``stacklevel`` frames up."""
    if xv.shape[0] < 2:
        return 0
    xp = backends.of(xv).xp
    flat = xp.all(xv == xv[:1], axis=0)  # (d,) True where the column is constant
    n_flat = int(xp.sum(flat))
    if n_flat:
        first = int(xp.argmax(flat))
        warnings.warn(f"{who}: {n_flat} of {xv.shape[1]} coordinates of x never vary in this batch "
                      f"(first: column {first}); the data have no density there and {who.upper()} "
                      "runs to -inf as the model sharpens. Use losses.dsm / losses.ncsn, or add "
                      "small Gaussian noise to the data.", DegenerateDataWarning, stacklevel=stacklevel)
    return n_flat


def _check_data_on_host(x, who):
    """:func:`warn_if_degenerate` where it costs no device synchronisation (host arrays)."""
    if backends.of(getval(x)).host_memory:
        _warn_flat_columns(getval(x), who, stacklevel=4)  # points at the caller of ism/ssm


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
    x = check_points(x)
    diff = check_score_shape(score_fn(x), x) - check_score_shape(true_score_fn(x), x, "true_score_fn")
    return _reduce(0.5 * sqnorm(diff), reduction)


def ism(score_fn, x, reduction="mean"):
    r"""Implicit score matching with the exact Jacobian trace (Hyvärinen 2005, eq. 4).

    .. math:: \mathrm{ISM}(\theta) = \mathbb E_{p^*}\big[\tfrac12\|s_\theta(x)\|^2
              + \operatorname{tr}\nabla_x s_\theta(x)\big],\qquad
              \mathrm{ESM} = \mathrm{ISM} + \tfrac12\mathbb E\|s^*\|^2

    Seeds ``000_…``/``002_…`` ("Avoiding p*: Implicit score matching"), derivation by parts in
    ``004_…`` (Q1). Cost: one forward and d reverse passes (:func:`jacobian_trace`); no Python
    loop over the batch. ``score_fn`` must be autograd-traceable. Host data with a constant
    column raise a :class:`DegenerateDataWarning` (see :func:`warn_if_degenerate`).
    """
    x = check_points(x)
    _check_data_on_host(x, "ism")
    s, tr = jacobian_trace(score_fn, x)
    return _reduce(0.5 * sqnorm(s) + tr, reduction)


def projections(rng, shape, kind="gaussian", dtype="float64"):
    r"""Random projection vectors with :math:`\mathbb E[vv^\top]=I`.

    ``"gaussian"``: :math:`v\sim\mathcal N(0,I)`; ``"rademacher"``: independent ±1 entries.
    Never unit-sphere vectors: those have :math:`\mathbb E[vv^\top]=I/d`, so every
    :math:`v`-term shrinks by :math:`1/d`. In the plain loss both terms do (it becomes ISM/d: same
    minimiser, rescaled); in the variance-reduced loss only the trace term does, and the minimiser
    moves. (The original SSM code, ermongroup/sliced_score_matching ``losses/sliced_sm.py``,
    normalises its probes only in the plain estimators, where the minimiser is unchanged.)
    """
    check_choice(kind, "projection", ("gaussian", "rademacher"))
    bk = backends.of_rng(rng)
    return bk.normal(rng, shape, dtype) if kind == "gaussian" else bk.rademacher(rng, shape, dtype)


def ssm(score_fn, x, rng=None, n_projections=1, projection="gaussian", variance_reduced=False,
        reduction="mean", v=None):
    r"""Sliced score matching (Song, Garg, Shi & Ermon 2019, eqs. 7–8): Hutchinson's estimator of
    the trace in ISM.

    .. math::
       \begin{aligned}
       \mathrm{SSM} &= \mathbb E_{p^*}\mathbb E_v\big[v^\top\nabla_x s_\theta(x)\,v
                        + \tfrac12 (v^\top s_\theta(x))^2\big] \\
       \mathrm{SSM}_{\mathrm{VR}} &= \mathbb E_{p^*}\mathbb E_v\big[v^\top\nabla_x s_\theta(x)\,v
                        + \tfrac12\|s_\theta(x)\|^2\big]
       \end{aligned}

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

    Warns
    -----
    DegenerateDataWarning
        Host data with a constant column (see :func:`warn_if_degenerate`).
    """
    x = check_points(x)
    n, d = getval(x).shape
    if v is None:
        M = check_positive_int(n_projections, "n_projections")
        if rng is None:
            raise ValueError("ssm needs rng (a backend Generator) unless projections v are given")
        v = projections(rng, (M, n, d), projection, getval(x).dtype)
    else:
        vs = tuple(getattr(getval(v), "shape", ()))
        if len(vs) != 3 or vs[1:] != (n, d) or vs[0] == 0:
            raise ValueError(f"v must have shape (M, {n}, {d}), M >= 1 projections of x's shape, got {vs}")
        M = vs[0]
    _check_data_on_host(x, "ssm")
    s, trace = hutchinson_trace(score_fn, x, v)
    if variance_reduced:
        second = 0.5 * sqnorm(s)
    else:
        second = sum(0.5 * anp.sum(vm * s, axis=1) ** 2 for vm in v) / M
    return _reduce(trace + second, reduction)


def _sigma_column(sigma, x):
    """``sigma`` as a positive float, or an ``(n,)`` array as an ``(n, 1)`` column in x's dtype."""
    xv = getval(x)
    if isinstance(sigma, (int, float)) or getattr(getval(sigma), "ndim", None) == 0:
        return check_positive(sigma, "sigma")
    sv = getval(sigma)
    if tuple(getattr(sv, "shape", ())) != (xv.shape[0],):
        raise ValueError(f"sigma must be a positive number or an array of shape ({xv.shape[0]},), "
                         f"got shape {tuple(getattr(sv, 'shape', ()))}")
    backends.of(xv, sv)  # one backend
    check_values_in(sv, "per-example sigma", 0)
    return per_example(sv, xv)  # (n, 1) in x's dtype


def dsm(score_fn, x, sigma, rng=None, reduction="mean", z=None):
    r"""Denoising score matching (Vincent 2011, eq. 11; seed 001_…, "Equivalent to Denoising
    score matching"):

    .. math:: \mathrm{DSM}_\sigma(\theta) = \tfrac12\,\mathbb E\big\|s_\theta(\tilde x)
              - \nabla_{\tilde x}\log q_\sigma(\tilde x\mid x)\big\|^2
              = \tfrac12\,\mathbb E\Big\|s_\theta(\tilde x) + \frac{\tilde x - x}{\sigma^2}\Big\|^2,
              \quad \tilde x = x+\sigma z

    The target is :math:`-(\tilde x-x)/\sigma^2 = -z/\sigma`: a minus sign and :math:`\sigma^2`
    (the sign error of TorchEBM #318 and the σ-for-σ² slip of score_sde #26 fail the tests).

    Parameters
    ----------
    sigma : positive float, or an ``(n,)`` array: row i is noised with its own :math:`\sigma_i`
        (what :func:`ncsn` with ``levels="sample"`` uses); ``score_fn`` still sees only ``x~``.
    z : optional (n, d) noise, to fix it; exactly x's shape (a (1, d) z is refused: it would give
        every example the same noise).
    """
    x = check_points(x)
    sig = _sigma_column(sigma, x)  # float or (n, 1)
    if z is not None:
        check_noise(z, getval(x).shape, "z")
    else:
        if rng is None:
            raise ValueError("dsm needs rng (a backend Generator) unless the noise z is given")
        z = backends.of(getval(x)).normal(rng, getval(x).shape, getval(x).dtype)
    x_tilde = x + sig * z
    s = check_score_shape(score_fn(x_tilde), x)
    return _reduce(0.5 * sqnorm(s + (x_tilde - x) / sig**2), reduction)


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


def _weighting_fn(weighting):
    if callable(weighting):
        return weighting
    check_choice(weighting, "weighting", ("sigma2", "none"))
    return (lambda s: s * s) if weighting == "sigma2" else (lambda s: 1.0)


def ncsn(score_fn, x, sigmas, rng=None, weighting="sigma2", reduction="mean", z=None, levels="all",
         level_index=None):
    r"""Noise-conditional score matching over L levels (Song & Ermon 2019, eq. 6; seed 001_…,
    "sum of weighted Fishers"):

    .. math:: \mathcal L(\theta) = \frac1L\sum_{i=1}^L \lambda(\sigma_i)\,
              \tfrac12\,\mathbb E\Big\|s_\theta(\tilde x,\sigma_i)+\frac{\tilde x-x}{\sigma_i^2}\Big\|^2,
              \qquad \lambda(\sigma)=\sigma^2

    :math:`\lambda(\sigma)=\sigma^2` makes every term of order one (:math:`\|\sigma s\|\approx
    \|z\|`). Two estimators of the same objective:

    * ``levels="all"`` (default): every level uses every example, an exact average over levels
      (L forward passes, ``score_fn`` gets a Python float σ). The equivalence tests and the
      ``refscore check`` identities use this one.
    * ``levels="sample"``: as Song & Ermon train NCSN, each example draws one level
      :math:`i_k\sim\mathrm{Uniform}\{1..L\}` and one noise, and ``score_fn`` gets the
      ``(n,)`` array of per-example σ (one forward pass). Since
      :math:`\mathbb E_{i_k}[\lambda(\sigma_{i_k})\,\ell_{i_k}] = \frac1L\sum_i\lambda(\sigma_i)\ell_i`,
      it is an unbiased estimate of the ``"all"`` objective at 1/L of the cost
      (``tests/test_losses.py`` checks this within Monte Carlo error).

    Parameters
    ----------
    score_fn : callable ``(x, sigma) -> (n, d)``; sigma a Python float (``"all"``) or an ``(n,)``
        array in x's dtype (``"sample"``)
    sigmas : strictly decreasing positive levels :math:`\sigma_1>\dots>\sigma_L`
    weighting : "sigma2" (default), "none", or a callable ``sigma -> lambda`` (with
        ``levels="sample"`` it receives the ``(n, 1)`` column of σ)
    z : optional noise, (L, n, d) for ``"all"``, (n, d) for ``"sample"``
    levels : "all" or "sample"
    level_index : optional (n,) integer levels (0-based) for ``"sample"``, to fix the draw
    """
    x = check_points(x)
    check_choice(levels, "levels", ("all", "sample"))
    sig = _check_sigmas(sigmas)
    lam = _weighting_fn(weighting)
    if levels == "sample":
        return _reduce(_ncsn_sampled(score_fn, x, sig, rng, lam, z, level_index), reduction)
    if z is not None:
        check_noise(z, (sig.size, *getval(x).shape), "z")
    total = 0.0
    for i, s_i in enumerate(sig):
        s_i = float(s_i)
        per = dsm(lambda xt: score_fn(xt, s_i), x, s_i, rng, reduction="none",
                  z=None if z is None else z[i])
        total = total + lam(s_i) * per
    return _reduce(total / sig.size, reduction)


def _ncsn_sampled(score_fn, x, sig, rng, lam, z, level_index):
    """Per-example ``λ(σ_k)·dsm_k`` with one uniformly drawn level per row: (n,)."""
    xv = getval(x)
    bk = backends.of(xv)
    n, L = xv.shape[0], sig.size
    if level_index is None:
        if rng is None:
            raise ValueError("ncsn(levels='sample') needs rng (a backend Generator) unless "
                             "level_index and z are given")
        level_index = bk.xp.minimum(bk.xp.floor(bk.uniform(rng, (n,)) * L).astype(int), L - 1)  # (n,)
    elif tuple(getval(level_index).shape) != (n,):
        raise ValueError(f"level_index must have shape ({n},), got {tuple(getval(level_index).shape)}")
    sigma = bk.asarray(sig, dtype=xv.dtype)[level_index]  # (n,)
    per = dsm(lambda xt: score_fn(xt, sigma), x, sigma, rng, reduction="none", z=z)  # (n,)
    return anp.reshape(lam(per_example(sigma, xv)), (-1,)) * per


def _beta_column(beta, xv):
    """β as given to ``score_fn``, its column (a float or (n, 1)), and √(1-β), √β. A number, a
    0-d array or NumPy scalar is one β; a list or an (n,) array is one β per row, in x's dtype."""
    if isinstance(beta, numbers.Real) or getattr(getval(beta), "ndim", None) == 0:
        b = check_unit_interval(beta, "beta")
        return b, b, math.sqrt(1.0 - b), math.sqrt(b)
    if not hasattr(getval(beta), "shape"):
        if isinstance(beta, (str, bytes)):
            raise TypeError(f"beta must be a number in (0, 1) or an array of shape ({xv.shape[0]},), got {beta!r}")
        beta = backends.of(xv).asarray(beta, dtype=xv.dtype)
    bv = getval(beta)
    if tuple(bv.shape) != (xv.shape[0],):
        raise ValueError(f"beta must be a number or an array of shape ({xv.shape[0]},) (one per row), "
                         f"got shape {tuple(bv.shape)}")
    check_values_in(bv, "beta", 0, 1)
    b_col = per_example(beta, xv)  # (n, 1)
    return beta, b_col, anp.sqrt(1.0 - b_col), anp.sqrt(b_col)


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
    score_fn : callable ``(x, beta) -> (n, d)``; ``beta`` is passed as a Python float, or as an
        (n,) array (a list is converted to x's backend and dtype)
    beta : float in (0, 1) (a Python or NumPy scalar), or an (n,) array or list of per-example
        values in (0, 1)
    eps : optional (n, d) noise, exactly x's shape
    """
    x = check_points(x)
    xv = getval(x)
    bk = backends.of(xv)
    beta, b_col, a, sb = _beta_column(beta, xv)
    if eps is not None:
        check_noise(eps, xv.shape, "eps")
    else:
        if rng is None:
            raise ValueError("vp_denoising needs rng (a backend Generator) unless eps is given")
        eps = bk.normal(rng, xv.shape, xv.dtype)
    x_prime = a * x + sb * eps
    s = check_score_shape(score_fn(x_prime, beta), x)
    return _reduce(sqnorm(x_prime + b_col * s - a * x), reduction)
