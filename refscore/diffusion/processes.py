r"""The forward processes' formulas, written once on any backend (``t`` a Python float, or an array of
one time per example): the VE, VP and sub-VP marginal coefficients :math:`x_t = a(t)x_0 + s(t)z` and
their per-step discretisations :math:`x_{i+1} = x_i + f_i + G_i z` (Song et al. 2021, Appendix B
and Appendix E, eqs. 45–47). :class:`refscore.sde.VESDE`, :class:`~refscore.sde.VPSDE` and
:class:`~refscore.sde.SubVPSDE` call them.

.. math:: \text{VE: } a = 1,\ s = \sqrt{\sigma(t)^2-\sigma_{\min}^2};\qquad
          \text{VP: } a = e^{-B/2},\ s=\sqrt{1-e^{-B}};\qquad \text{sub-VP: } s = 1-e^{-B}
"""
from __future__ import annotations

import math

from .. import backends
from .._validation import check_coefficient, check_examples, check_positive
from .parametrisation import per_example

__all__ = ["ops", "ve_marginal_coeffs", "vp_marginal_coeffs", "subvp_marginal_coeffs", "subvp_diffusion",
           "ve_discretize", "vp_step_rate", "vp_discretize"]


def ops(t):
    """Elementwise functions for ``t``: :mod:`math` for a float, the array's module otherwise."""
    return math if isinstance(t, float) else backends.of(t).xp


def ve_marginal_coeffs(t, sigma_min, log_ratio):
    r"""VE's transition :math:`x_t = x_0 + \sqrt{\sigma(t)^2-\sigma_{\min}^2}\,z` with
    :math:`\sigma(t)=\sigma_{\min}e^{t\log(\sigma_{\max}/\sigma_{\min})}` (Song et al. 2021,
    Appendix B, eq. 30), written with expm1 for small t:

    .. math:: a = 1,\qquad s = \sigma_{\min}\sqrt{e^{2t\log r}-1}

    Returns ``(a, s)``: floats, or arrays like ``t``.
    """
    t = check_coefficient(t, "t", closed=True)
    sigma_min, log_ratio = check_positive(sigma_min, "sigma_min"), check_positive(log_ratio, "log_ratio")
    var = sigma_min**2 * ops(t).expm1(2.0 * t * log_ratio)
    return 1.0 + 0.0 * t, ops(t).sqrt(var)


def vp_marginal_coeffs(B):
    r"""VP's transition from the integrated rate :math:`B(t)=\int_0^t\beta` (Song et al. 2021,
    Appendix B, eq. 33; DDPM's :math:`\bar\alpha_t = e^{-B}`, Ho et al. 2020, eq. 4):

    .. math:: a = e^{-B/2},\qquad s = \sqrt{1-e^{-B}}
    """
    B = check_coefficient(B, "B", closed=True)
    return ops(B).exp(-0.5 * B), ops(B).sqrt(-ops(B).expm1(-B))


def subvp_marginal_coeffs(B):
    r"""Sub-VP's transition (Song et al. 2021, eq. 29 and Appendix B; score_sde ``subVPSDE.marginal_prob``):

    .. math:: a = e^{-B/2},\qquad s = 1-e^{-B}
    """
    B = check_coefficient(B, "B", closed=True)
    return ops(B).exp(-0.5 * B), -ops(B).expm1(-B)


def subvp_diffusion(beta, B):
    r"""Sub-VP's diffusion coefficient (Song et al. 2021, eq. 29), from :math:`\beta(t)` and :math:`B(t)`:

    .. math:: g(t) = \sqrt{\beta(t)\,(1-e^{-2B(t)})}
    """
    beta, B = check_coefficient(beta, "beta"), check_coefficient(B, "B", closed=True)
    return ops(beta).sqrt(-beta * ops(B).expm1(-2.0 * B))


def ve_discretize(x, sigma, sigma_prev):
    r"""One step of the VE SDE's discretisation from level :math:`\sigma_{i-1}` up to :math:`\sigma_i`
    (Song et al. 2021, Appendix E, eq. 47; SMLD's forward chain):

    .. math:: f_i = 0,\qquad G_i = \sqrt{\sigma_i^2-\sigma_{i-1}^2}

    Returns ``(f, G)``: ``f`` zeros like ``x``, ``G`` a float or one per example.
    """
    x = check_examples(x, "x")
    sigma, sigma_prev = (check_coefficient(c, k, like=x, closed=True) for c, k in ((sigma, "sigma"),
                                                                                   (sigma_prev, "sigma_prev")))
    gap = check_coefficient(sigma * sigma - sigma_prev * sigma_prev,
                            "sigma**2 - sigma_prev**2 (the level must not decrease: sigma >= sigma_prev)", closed=True)
    return 0.0 * x, ops(gap).sqrt(gap)


def vp_step_rate(B, B_prev):
    r"""The exact rate of one VP step from :math:`t_{prev}` to :math:`t`: the :math:`\beta_i` with
    :math:`\sqrt{1-\beta_i} = a(t)/a(t_{prev})` (Song et al. 2021, Appendix B; DDPM's
    :math:`\alpha_i = \bar\alpha_i/\bar\alpha_{i-1}`, Ho et al. 2020, §2), so the chain of
    :func:`vp_discretize` has the SDE's marginals at every grid time; :math:`\approx\beta(t)\Delta t`
    (score_sde's choice):

    .. math:: \beta_i = 1 - e^{-(B(t)-B(t_{prev}))}
    """
    dB = check_coefficient(B - B_prev, "B - B_prev (t must not precede t_prev)", closed=True)
    return -ops(dB).expm1(-dB)


def vp_discretize(x, beta):
    r"""One step of the VP SDE's discretisation with step rate :math:`\beta_i` (Song et al. 2021,
    Appendix E, eq. 45; DDPM's forward step, Ho et al. 2020, eq. 2):

    .. math:: f_i = (\sqrt{1-\beta_i}-1)\,x,\qquad G_i = \sqrt{\beta_i}

    ``beta`` a float or one per example. Returns ``(f, G)``.
    """
    x = check_examples(x, "x")
    beta = check_coefficient(beta, "beta", like=x, high=1.0, closed=True)
    return per_example(ops(beta).sqrt(1.0 - beta) - 1.0, x) * x, ops(beta).sqrt(beta)
