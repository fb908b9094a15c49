r"""Conversions between what a diffusion network predicts: the noise ε, the score s, the clean
data x̂₀, the velocity v, the EDM denoiser D (and k-diffusion's derivative).

For :math:`x_t=\alpha_t x_0+\sigma_t\varepsilon` the score of the Gaussian kernel is
:math:`-\varepsilon/\sigma_t`, and Tweedie's formula gives the posterior mean; all of these
follow (seed ``003_…`` eqs. 11.12–11.13; Song et al. 2021, Appendix B; Salimans & Ho 2022, §4;
Karras et al. 2022, eq. 3 and Appendix B.3):

.. math:: s = -\frac{\varepsilon}{\sigma_t},\quad \hat x_0 = \frac{x_t+\sigma_t^2 s}{\alpha_t},\quad
          v = \alpha_t\varepsilon - \sigma_t x_0,\quad s = \frac{D(x;\sigma)-x}{\sigma^2},\quad
          \frac{dx}{d\sigma} = \frac{x - D(x;\sigma)}{\sigma}

Coefficients are floats or (n,) arrays, one per example; points are (n, *shape).
"""
from __future__ import annotations

import numbers

import numpy as onp
from autograd.tracer import getval

from .. import backends
from .._validation import check_coefficient, check_examples

__all__ = ["per_example", "score_from_eps", "x0_from_score", "v_from_eps", "score_from_denoiser", "denoiser_derivative"]


def per_example(c, x):
    r"""A coefficient for the examples of ``x`` (n, *shape): a number stays a float, an (n,) array
    becomes (n, 1, ..., 1) so that it broadcasts over each example's entries (an image (n, C, H, W)
    gets (n, 1, 1, 1): per example, never along rows), a 0-d array stays 0-d, a column already
    shaped so is kept. Arrays keep their
    backend and autograd boxes; a floating ``x`` gives its dtype (float32 stays float32). The one
    per-example helper of refscore (the SDEs, the losses and the models call it).

    .. math:: (c\odot x)_{i\,\cdots} = c_i\,x_{i\,\cdots}\qquad (x_t = a_i x_0 + s_i z\ \text{per example,
              Song et al. 2021, Appendix B})
    """
    cv, xv = getval(c), getval(x)
    if isinstance(cv, numbers.Real) and not hasattr(cv, "dtype") or isinstance(cv, float):
        return float(c)
    xdt = getattr(xv, "dtype", None)
    floating = xdt is not None and onp.dtype(xdt).kind == "f"
    if not hasattr(cv, "shape"):  # a list or tuple of per-example numbers
        c = cv = (backends.of(xv).xp if hasattr(xv, "shape") else onp).asarray(cv, dtype=xdt if floating else float)
    elif hasattr(xv, "shape") and c is cv and backends.of(cv).name != backends.of(xv).name:
        c = cv = backends.of(xv).asarray(cv)  # host schedule constants onto x's device
    if floating and cv.dtype != xdt:
        c = c.astype(xdt)
    if cv.ndim == 0:
        return c
    if cv.ndim == onp.ndim(xv) and cv.ndim > 1 and all(k == 1 for k in cv.shape[1:]):
        return c  # already a per-example column (n, 1, ..., 1)
    if cv.ndim != 1:
        raise ValueError(f"a per-example coefficient must be a number, an (n,) array or an (n, 1, ..., 1) column "
                         f"like x, got shape {tuple(cv.shape)} for x of shape {tuple(onp.shape(xv))}")
    if onp.ndim(xv) and cv.shape[0] not in (1, onp.shape(xv)[0]):  # else a raw broadcast error below
        raise ValueError(f"a per-example coefficient must have one entry per example of x, got shape "
                         f"{tuple(cv.shape)} for x of shape {tuple(onp.shape(xv))}")
    return c.reshape((-1,) + (1,) * (onp.ndim(xv) - 1))


def score_from_eps(eps, sigma):
    r"""The score from a noise prediction (Song et al. 2021, Appendix B; Ho et al. 2020, eq. 11
    with Vincent 2011):

    .. math:: s(x_t) = -\hat\varepsilon/\sigma_t

    ``sigma`` > 0: a number or one per example (a negative σ would flip the score, a zero one divide by 0).
    """
    eps = check_examples(eps, "eps")
    return -eps / per_example(check_coefficient(sigma, "sigma", like=eps), eps)


def x0_from_score(x_t, score, alpha, sigma):
    r"""Tweedie's posterior mean of :math:`x_0` for :math:`x_t=\alpha_t x_0+\sigma_t\varepsilon`
    (Efron 2011, eq. 2.8; seed ``003_…`` eqs. 11.12–11.13 with :math:`\alpha=\sqrt{1-\beta}`):

    .. math:: \hat x_0 = \frac{x_t + \sigma_t^2\,s(x_t)}{\alpha_t}
    """
    x_t = check_examples(x_t, "x_t")
    score = check_examples(score, "score", like=x_t, like_name="x_t")
    alpha, sigma = check_coefficient(alpha, "alpha", like=x_t), check_coefficient(sigma, "sigma", like=x_t, closed=True)
    return (x_t + per_example(sigma, x_t) ** 2 * score) / per_example(alpha, x_t)


def v_from_eps(x0, eps, alpha, sigma):
    r"""The v-prediction target (Salimans & Ho 2022, §4 and Appendix D), with :math:`\alpha_t^2+\sigma_t^2=1`:

    .. math:: v = \alpha_t\varepsilon - \sigma_t x_0
    """
    x0 = check_examples(x0, "x0")
    eps = check_examples(eps, "eps", like=x0, like_name="x0")
    alpha, sigma = (check_coefficient(c, k, like=x0, closed=True) for c, k in ((alpha, "alpha"), (sigma, "sigma")))
    return per_example(alpha, x0) * eps - per_example(sigma, x0) * x0


def score_from_denoiser(x, denoised, sigma):
    r"""The score from an EDM denoiser :math:`D(x;\sigma)` (Karras et al. 2022, eq. 3):

    .. math:: \nabla_x\log p(x;\sigma) = \frac{D(x;\sigma) - x}{\sigma^2}
    """
    x = check_examples(x, "x")
    denoised = check_examples(denoised, "denoised", like=x)
    s = per_example(check_coefficient(sigma, "sigma", like=x), x)
    return (denoised - x) / (s * s)


def denoiser_derivative(x, denoised, sigma):
    r"""The probability-flow ODE in σ, :math:`dx/d\sigma = -\sigma\nabla\log p = (x-D)/\sigma`
    (Karras et al. 2022, eq. 4 with :math:`\sigma(t)=t`; k-diffusion ``sampling.py``, ``to_d``).

    .. math:: \frac{dx}{d\sigma} = \frac{x - D(x;\sigma)}{\sigma}
    """
    x = check_examples(x, "x")
    denoised = check_examples(denoised, "denoised", like=x)
    return (x - denoised) / per_example(check_coefficient(sigma, "sigma", like=x), x)
