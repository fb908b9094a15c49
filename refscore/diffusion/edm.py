r"""EDM (Karras, Aittala, Aila & Laine 2022): the network preconditioning, the loss weighting, the
ρ-schedule of noise levels, and the ancestral split of a step into a deterministic and a noise part.

.. math:: D_\theta(x;\sigma) = c_\text{skip}(\sigma)\,x + c_\text{out}(\sigma)\,
          F_\theta\big(c_\text{in}(\sigma)\,x;\ c_\text{noise}(\sigma)\big)\quad\text{(eq. 7)},\qquad
          \lambda(\sigma) = 1/c_\text{out}(\sigma)^2

(Table 1, "Ours"). The diffusion part of the lecture order, after :mod:`refscore.sde`: σ is the
VE noise level, and :math:`D` is Tweedie's posterior mean (:mod:`.parametrisation`).
"""
from __future__ import annotations

import numpy as onp

__all__ = ["preconditioning", "loss_weight", "karras_sigmas", "ancestral_sigmas"]


def _positive(a, name):
    a = onp.asarray(a, dtype=float)
    if not onp.all(a > 0):
        raise ValueError(f"{name} must be positive, got {a!r}")
    return a


def preconditioning(sigma, sigma_data=0.5):
    r"""EDM's preconditioning coefficients (Karras et al. 2022, Table 1 and Appendix B.6):

    .. math:: c_\text{skip} = \frac{\sigma_d^2}{\sigma^2+\sigma_d^2},\quad
              c_\text{out} = \frac{\sigma\sigma_d}{\sqrt{\sigma^2+\sigma_d^2}},\quad
              c_\text{in} = \frac1{\sqrt{\sigma^2+\sigma_d^2}},\quad
              c_\text{noise} = \tfrac14\ln\sigma

    Returns ``(c_skip, c_out, c_in, c_noise)``, each shaped like ``sigma``.
    """
    s, sd = _positive(sigma, "sigma"), float(_positive(sigma_data, "sigma_data"))
    r = s * s + sd * sd
    return sd * sd / r, s * sd / onp.sqrt(r), 1.0 / onp.sqrt(r), 0.25 * onp.log(s)


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

    (σ_N = 0 is appended by the samplers; not here). ``i``: integer indices, ``n`` = N ≥ 2.
    """
    if int(n) < 2:
        raise ValueError(f"the schedule needs N >= 2 levels, got {n}")
    lo, hi = float(_positive(sigma_min, "sigma_min")), float(_positive(sigma_max, "sigma_max"))
    frac = onp.asarray(i, dtype=float) / (int(n) - 1)
    return (hi ** (1 / rho) + frac * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def ancestral_sigmas(sigma_from, sigma_to, eta=1.0):
    r"""Split a step from :math:`\sigma_\text{from}` to :math:`\sigma_\text{to}` into a deterministic
    move to :math:`\sigma_\downarrow` and fresh noise :math:`\sigma_\uparrow` (k-diffusion
    ``sampling.py``, ``get_ancestral_step``; the DDPM posterior variance in σ-form, Ho et al. 2020 eq. 7):

    .. math:: \sigma_\uparrow = \min\Big(\sigma_\text{to},\ \eta\sqrt{\frac{\sigma_\text{to}^2
              (\sigma_\text{from}^2-\sigma_\text{to}^2)}{\sigma_\text{from}^2}}\Big),\qquad
              \sigma_\downarrow = \sqrt{\sigma_\text{to}^2-\sigma_\uparrow^2}

    so that :math:`\sigma_\downarrow^2 + \sigma_\uparrow^2 = \sigma_\text{to}^2`. Returns ``(down, up)``.
    """
    f, t = _positive(sigma_from, "sigma_from"), onp.asarray(sigma_to, dtype=float)
    if not onp.all((t >= 0) & (t <= f)):
        raise ValueError("sigma_to must lie in [0, sigma_from]")
    up = onp.minimum(t, eta * onp.sqrt(t * t * (f * f - t * t) / (f * f)))
    return onp.sqrt(t * t - up * up), up
