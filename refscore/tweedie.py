r"""Tweedie's formula: the posterior mean of clean data from the score of the noised law.

For :math:`y = x + \sigma z` (VE):

.. math:: \mathbb E[x\mid y] = y + \sigma^2\,\nabla_y\log p_\sigma(y)

and for :math:`y=\sqrt{1-\beta}\,x+\sqrt\beta\,\varepsilon` (VP), seed ``003_…`` eqs. 11.7–11.13:

.. math:: y + \beta\,\nabla_y\log p_\beta(y) = \sqrt{1-\beta}\;\mathbb E[x\mid y]
          \quad\text{(11.12–11.13)}

(derived by differentiating under the integral, 11.7–11.8, Bayes, 11.9–11.10, and the Gaussian
kernel's score, 11.11).
"""
from __future__ import annotations

import math

from ._validation import check_output, check_points, check_positive, check_unit_interval

__all__ = ["denoise", "denoise_unchecked", "denoise_vp"]


def denoise(score_fn, y, sigma):
    r"""VE Tweedie denoiser :math:`\hat x(y) = y + \sigma^2 s(y) = \mathbb E[x\mid y]`.

    ``score_fn`` must be the score of the *noised* law :math:`p_\sigma` (e.g.
    ``gmm.perturbed(sigma).score``, or a noise-conditional network at σ); it must return
    ``(n, d)`` (a ``(1, d)`` or ``(n,)`` output is a ``ValueError``, never broadcast). Efron (2011), eq. 2.8;
    seed 003_…, eq. 11.12 with :math:`\sqrt{1-\beta}\to1,\ \beta\to\sigma^2`.
    """
    y = check_points(y, name="y")
    sigma = check_positive(sigma, "sigma")
    return denoise_unchecked(lambda v: check_output(score_fn(v), y.shape, "score_fn"), y, sigma)


def denoise_unchecked(score_fn, y, sigma):
    r""":math:`\hat x(y) = y + \sigma^2 s(y)` with no validation (no host sync): the formula's one
    home, which :func:`denoise` and annealed Langevin's final denoising step (Jolicoeur-Martineau
    et al. 2021) both call. Efron (2011), eq. 2.8.

    .. math:: \mathbb E[x\mid y] = y + \sigma^2\,\nabla_y\log p_\sigma(y)
    """
    return y + sigma**2 * score_fn(y)


def denoise_vp(score_fn, y, beta):
    r"""VP Tweedie denoiser (seed 003_…, eqs. 11.12–11.13):

    .. math:: \mathbb E[x\mid y] = \frac{y + \beta\,s(y)}{\sqrt{1-\beta}}

    ``score_fn`` is the score of the diffused law :math:`p_\beta` (e.g. ``gmm.diffused(beta).score``).
    """
    y = check_points(y, name="y")
    b = check_unit_interval(beta, "beta")
    return (y + b * check_output(score_fn(y), y.shape, "score_fn")) / math.sqrt(1.0 - b)
