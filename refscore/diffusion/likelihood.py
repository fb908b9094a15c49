r"""Likelihoods of a diffusion model in the units papers report: the exact probability-flow
log-likelihood of Gaussian data (closed form), and bits per dimension with uniform dequantisation.

A pixel :math:`k\in\{0,\dots,255\}` dequantised to :math:`x = a\,(k+u)/256 + c` with
:math:`u\sim U(0,1)` has cell volume :math:`(a/256)^D`, so the discrete probability is
:math:`P(k)\ge\mathbb E_u\,p(x)(a/256)^D` and (Theis et al. 2016, §3.1; Ho et al. 2020, §4)

.. math:: \text{bits/dim} = -\frac{\log p(x)}{D\ln 2} + 8 - \log_2 a

(+8 for data in [0, 1], a = 1; +7 for [−1, 1], a = 2; score_sde's ``offset = 7 − inverse_scaler(−1)``).
"""
from __future__ import annotations

import math

import numpy as onp

__all__ = ["bits_per_dim", "gaussian_flow_log_likelihood"]


def bits_per_dim(log_p, dim, scale=1.0):
    r"""Bits per dimension of dequantised 8-bit data from its log-density (see the module docstring):

    .. math:: \text{bpd} = -\frac{\log p(x)}{D\ln 2} + 8 - \log_2 a

    ``log_p`` (n,) natural-log densities of the dequantised points, ``dim`` = D, ``scale`` = a
    (the data range's width: 1 for [0, 1], 2 for [−1, 1]).
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive (1 for [0, 1] data, 2 for [-1, 1]), got {scale!r}")
    return -onp.asarray(log_p, dtype=float) / (int(dim) * math.log(2.0)) + 8.0 - math.log2(scale)


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
