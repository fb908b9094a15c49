r"""EDM (Karras, Aittala, Aila & Laine 2022): the network preconditioning, the loss weighting, the
ρ-schedule of noise levels, and the ancestral split of a step into a deterministic and a noise part.

.. math:: D_\theta(x;\sigma) = c_\text{skip}(\sigma)\,x + c_\text{out}(\sigma)\,
          F_\theta\big(c_\text{in}(\sigma)\,x;\ c_\text{noise}(\sigma)\big)\quad\text{(eq. 7)},\qquad
          \lambda(\sigma) = 1/c_\text{out}(\sigma)^2

(Table 1, "Ours"). The diffusion part of the lecture order, after :mod:`refscore.sde`: σ is the
VE noise level, and :math:`D` is Tweedie's posterior mean (:mod:`.parametrisation`).
"""
from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as onp

from .. import backends
from .._validation import check_coefficient, check_examples, check_positive, check_steps, check_whole_number

__all__ = ["preconditioning", "loss_weight", "karras_sigmas", "ancestral_sigmas", "edm_coefficients",
           "edm_denoiser", "score_loss_weight"]


def _sqrt_log(sigma):
    """(sqrt, log) for ``sigma``: :mod:`math` for a float, autograd's NumPy (any backend) otherwise."""
    return (math.sqrt, math.log) if isinstance(sigma, float) else (anp.sqrt, anp.log)


def edm_coefficients(sigma, sigma_data):
    r"""EDM's preconditioning coefficients, unchecked, on any backend (``sigma`` a float, or an array
    such as the (n, 1, ...) column of :func:`refscore.diffusion.per_example`; autograd-differentiable):
    the one place the formulas are written (Karras et al. 2022, Table 1 and Appendix B.6),

    .. math:: c_\text{skip} = \frac{\sigma_d^2}{\sigma^2+\sigma_d^2},\quad
              c_\text{out} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2+\sigma_d^2}},\quad
              c_\text{in} = \frac1{\sqrt{\sigma^2+\sigma_d^2}},\quad
              c_\text{noise} = \tfrac14\ln\sigma

    Returns ``(c_skip, c_out, c_in, c_noise)``, each shaped like ``sigma`` (``sigma_data`` a float).
    """
    c_skip, c_out, norm, log_sigma = _parts(sigma, sigma_data)
    return c_skip, c_out, 1.0 / norm, 0.25 * log_sigma


def _parts(sigma, sigma_data):
    """c_skip, c_out, :math:`\\sqrt{\\sigma^2+\\sigma_d^2}` (= 1/c_in) and ln σ (= 4 c_noise)."""
    sqrt, log = _sqrt_log(sigma)
    sd2 = sigma_data**2
    norm = sqrt(sigma * sigma + sd2)
    return sd2 / norm**2, sigma * sigma_data / norm, norm, log(sigma)


def edm_denoiser(features, x, sigma, sigma_data, mean=0.0):
    r"""EDM's preconditioned denoiser around a data mean :math:`\mu` (Karras et al. 2022, eq. 7), for
    a network ``features(u, log_sigma)`` = :math:`F_\theta(u, \ln\sigma)`:

    .. math:: D_\theta(x;\sigma) = \mu + c_\text{skip}(\sigma)(x-\mu)
              + c_\text{out}(\sigma)\,F_\theta\big(c_\text{in}(\sigma)(x-\mu);\ \ln\sigma\big)

    ``sigma`` a float or a per-example column like ``x``; the coefficients are :func:`edm_coefficients`
    (``c_in`` applied as a division by :math:`\sqrt{\sigma^2+\sigma_d^2}`).
    """
    if not callable(features):
        raise TypeError(f"features must be a callable F(u, log_sigma), got {type(features).__name__}")
    x = check_examples(x, "x")
    sigma, sigma_data = check_coefficient(sigma, "sigma", like=x), check_positive(sigma_data, "sigma_data")
    c_skip, c_out, norm, log_sigma = _parts(sigma, sigma_data)
    xc = x - mean
    return mean + c_skip * xc + c_out * features(xc / norm, log_sigma)


def score_loss_weight(sigma, sigma_data):
    r"""EDM's λ(σ) in the units of a denoising score-matching loss :math:`\tfrac12\|s_\theta + z/\sigma\|^2`
    (:func:`refscore.losses.ncsn`): with it each level's term is :math:`\tfrac12\|F_\theta-F^\star\|^2`,
    since :math:`s = (D - x)/\sigma^2` puts :math:`c_\text{out}^2/\sigma^4` in front
    (Karras et al. 2022, Table 1: λ = 1/c_out² in their loss on D):

    .. math:: \lambda_s(\sigma) = \frac{\sigma^4}{c_\text{out}(\sigma)^2}
              = \frac{\sigma^2(\sigma^2+\sigma_d^2)}{\sigma_d^2}
    """
    sigma, sigma_data = check_coefficient(sigma, "sigma"), check_positive(sigma_data, "sigma_data")
    return sigma * sigma * (sigma * sigma + sigma_data**2) / sigma_data**2


def _positive(a, name):
    """``a`` checked positive on the host (a float array keeps its dtype, anything else is read as
    float64); a device array is passed through unchecked (reading it would cost a host synchronisation)."""
    a = check_coefficient(a, name)
    if hasattr(a, "shape") and not backends.of(a).host_memory:
        return a
    a = onp.asarray(a)
    return a if a.dtype.kind == "f" else a.astype(float)


def preconditioning(sigma, sigma_data=0.5):
    r"""EDM's preconditioning coefficients (Karras et al. 2022, Table 1 and Appendix B.6):

    .. math:: c_\text{skip} = \frac{\sigma_d^2}{\sigma^2+\sigma_d^2},\quad
              c_\text{out} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2+\sigma_d^2}},\quad
              c_\text{in} = \frac1{\sqrt{\sigma^2+\sigma_d^2}},\quad
              c_\text{noise} = \tfrac14\ln\sigma

    Returns ``(c_skip, c_out, c_in, c_noise)``, each shaped like ``sigma``.
    """
    s, sd = _positive(sigma, "sigma"), float(_positive(sigma_data, "sigma_data"))
    return edm_coefficients(s, sd)


def loss_weight(sigma, sigma_data=0.5):
    r"""EDM's loss weighting, which makes the effective training target unit-variance
    (Karras et al. 2022, Table 1 and eq. 8):

    .. math:: \lambda(\sigma) = \frac{\sigma^2+\sigma_d^2}{(\sigma\sigma_d)^2} = \frac1{c_\text{out}(\sigma)^2}
    """
    return 1.0 / preconditioning(sigma, sigma_data)[1] ** 2


def karras_sigmas(i, n, sigma_min, sigma_max, rho=7.0):
    r"""The ρ-schedule of noise levels :math:`\sigma_i`, :math:`i = 0..N-1` (Karras et al. 2022, eq. 5):

    .. math:: \sigma_i = \Big(\sigma_\max^{1/\rho} + \frac{i}{N-1}\big(\sigma_\min^{1/\rho}
              - \sigma_\max^{1/\rho}\big)\Big)^\rho

    (σ_N = 0 is appended by the samplers; not here). ``i``: integer indices in [0, N-1] (3.0 is 3;
    2.5 is refused), ``n`` = N ≥ 2 an integer, 0 < σ_min < σ_max (the ladder decreases), ρ > 0.
    """
    n = check_whole_number(n, "n", minimum=2)  # N >= 2 levels
    lo, hi = check_positive(sigma_min, "sigma_min"), check_positive(sigma_max, "sigma_max")
    if not lo < hi:
        raise ValueError(f"need sigma_min < sigma_max (the ladder decreases from sigma_max to sigma_min), got "
                         f"sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
    rho = check_positive(rho, "rho")
    frac = onp.asarray(check_steps(i, n, "i"), dtype=float) / (n - 1)
    return (hi ** (1 / rho) + frac * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def ancestral_sigmas(sigma_from, sigma_to, eta=1.0):
    r"""Split a step from :math:`\sigma_\text{from}` to :math:`\sigma_\text{to}` into a deterministic
    move to :math:`\sigma_\downarrow` and fresh noise :math:`\sigma_\uparrow` (k-diffusion
    ``sampling.py``, ``get_ancestral_step``; the DDPM posterior variance in σ-form, Ho et al. 2020 eq. 7):

    .. math:: \sigma_\uparrow = \min\Big(\sigma_\text{to},\ \eta\sqrt{\frac{\sigma_\text{to}^2
              (\sigma_\text{from}^2-\sigma_\text{to}^2)}{\sigma_\text{from}^2}}\Big),\qquad
              \sigma_\downarrow = \sqrt{\sigma_\text{to}^2-\sigma_\uparrow^2}

    so that :math:`\sigma_\downarrow^2 + \sigma_\uparrow^2 = \sigma_\text{to}^2`. Needs
    :math:`0\le\sigma_\text{to}\le\sigma_\text{from}` (checked, with the first offending pair) and
    :math:`\eta\ge0`. Returns ``(down, up)``.
    """
    f, t = _positive(sigma_from, "sigma_from"), onp.asarray(check_coefficient(sigma_to, "sigma_to", closed=True))
    eta = check_coefficient(eta, "eta", closed=True)
    if t.ndim and f.ndim and t.shape != f.shape:
        raise ValueError(f"sigma_to must be a number or shaped like sigma_from {f.shape}, got shape {t.shape}")
    fb, tb = (a.reshape(-1) for a in onp.broadcast_arrays(f, t))
    above = onp.flatnonzero(tb > fb)
    if above.size:
        i, where = int(above[0]), (f" at index {int(above[0])}" if t.ndim or f.ndim else "")
        raise ValueError(f"sigma_to must lie in [0, sigma_from] (a step lowers the noise level), got sigma_to="
                         f"{float(tb[i])!r} > sigma_from={float(fb[i])!r}{where}")
    up = onp.minimum(t, eta * onp.sqrt(t * t * (f * f - t * t) / (f * f)))
    return onp.sqrt(t * t - up * up), up
