r"""One step of each diffusion sampler, given the model's output and the noise explicitly, so that
a step can be compared number for number (the solvers in :mod:`refscore.sde` draw their own).

.. math:: \text{reverse SDE (Song et al. 2021, eq. 6):}\quad
          x_{t-\Delta t} = x_t - [f - g^2 s]\Delta t + g\sqrt{\Delta t}\,z,\qquad
          \text{PF ODE (eq. 13):}\ \dot x = f - \tfrac12 g^2 s

the predictor–corrector's Langevin corrector (Algorithms 4–5), annealed Langevin dynamics in
the NCSN paper's convention (Song & Ermon 2019, Algorithm 1), the final Tweedie denoise, and the
likelihood weighting :math:`\lambda(t)=g(t)^2` (Song, Durkan, Murray & Ermon 2021, Theorem 1).
"""
from __future__ import annotations

import autograd.numpy as anp

from autograd.tracer import getval

from .. import tweedie
from .._validation import check_coefficient, check_examples, check_noise, check_steps
from .moves import sqrt_number_or_array, annealed_step_sizes as _annealed_rule, corrector_step_size, langevin_move
from .parametrisation import per_example

__all__ = ["reverse_sde_step", "ode_velocity", "langevin_corrector_step", "annealed_step_sizes",
           "annealed_langevin_step", "tweedie_denoise_ve", "likelihood_weighting"]


def _flat(a):
    return anp.reshape(a, (anp.shape(a)[0], -1))


def _check_sde(sde):
    """``sde`` if it has the :class:`refscore.sde.SDE` contract's methods used here (duck-typed:
    :mod:`refscore.diffusion` sits below :mod:`refscore.sde` and does not import it)."""
    if not all(callable(getattr(sde, m, None)) for m in ("reverse_drift", "ode_drift", "diffusion")):
        raise TypeError(f"sde must be a refscore.sde.SDE (reverse_drift, ode_drift, diffusion), got {type(sde).__name__}")
    return sde


def reverse_sde_step(sde, x, t, dt, score, z):
    r"""One Euler–Maruyama step of the reverse-time SDE from ``t`` to ``t − dt`` (Song et al. 2021,
    eq. 6; the reverse-diffusion discretisation of Appendix E is the same to first order):

    .. math:: x_{t-\Delta t} = x_t - \big[f(x_t,t) - g(t)^2 s\big]\Delta t + g(t)\sqrt{\Delta t}\,z

    ``x``, ``score``, ``z``: (n, *shape); ``t``: a float or (n,) times, ``dt`` a float or (n,); the
    drift is ``sde.reverse_drift``. The reverse-SDE solver (:func:`refscore.sde.reverse_sde_sample`)
    takes its steps with it.
    """
    x = check_examples(x, "x")
    score = check_examples(score, "score", like=x)
    z, dt = check_noise(z, getval(x).shape, "z"), per_example(check_coefficient(dt, "dt", like=x), x)
    drift = _check_sde(sde).reverse_drift(lambda y, s: score, x, t)
    return x - drift * dt + per_example(sde.diffusion(t), x) * sqrt_number_or_array(dt) * z


def ode_velocity(sde, x, t, score):
    r"""The probability-flow ODE velocity ``sde.ode_drift`` on the given score (Song et al. 2021, eq. 13):

    .. math:: \frac{dx}{dt} = f(x,t) - \tfrac12 g(t)^2\,s
    """
    x = check_examples(x, "x")
    score = check_examples(score, "score", like=x)
    return _check_sde(sde).ode_drift(lambda y, s: score, x, t)


def langevin_corrector_step(x, score, z, snr, alpha=1.0):
    r"""The predictor–corrector's Langevin corrector, one step (Song et al. 2021, Algorithms 4–5;
    score_sde ``sampling.py``, ``LangevinCorrector``: batch means of per-example norms):

    .. math:: \epsilon = 2\alpha\Big(r\,\frac{\overline{\|z\|}}{\overline{\|s\|}}\Big)^2,\qquad
              x \leftarrow x + \epsilon\,s + \sqrt{2\epsilon}\,z

    with :math:`r` = ``snr``, :math:`\alpha=1` for VE and :math:`\alpha_i=1-\beta_i` for VP.
    """
    x = check_examples(x, "x")
    score = check_examples(score, "score", like=x)
    z = check_noise(z, getval(x).shape, "z")
    eps = corrector_step_size(_flat(score), _flat(z), snr, alpha)
    return langevin_move(x, score, eps, z)


def annealed_step_sizes(sigmas, eps):
    r"""Annealed Langevin's step sizes in the NCSN paper's convention (Song & Ermon 2019, Algorithm 1):
    the rule :func:`refscore.diffusion.moves.annealed_step_sizes` (refscore's :math:`h_i`) with
    :math:`h=\epsilon`.

    .. math:: \alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2
    """
    return _annealed_rule(sigmas, eps)


def annealed_langevin_step(x, score, z, sigmas, level, eps):
    r"""One step of annealed Langevin dynamics at level ``level`` (0-based, per example), in the
    paper's convention (Song & Ermon 2019, Algorithm 1; refscore's :math:`h` is :math:`\alpha/2`):

    .. math:: x \leftarrow x + \frac{\alpha_i}2\,s(x,\sigma_i) + \sqrt{\alpha_i}\,z,\qquad
              \alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2
    """
    x = check_examples(x, "x")
    score = check_examples(score, "score", like=x)
    z, rule = check_noise(z, getval(x).shape, "z"), annealed_step_sizes(sigmas, eps)
    a = per_example(rule[check_steps(level, len(rule), "level", getval(x).shape[0])], x)
    return langevin_move(x, score, 0.5 * a, z)  # our h = α/2: x + h s + sqrt(2h) z


def tweedie_denoise_ve(x, score, sigma):
    r"""The final denoising step of a VE sampler: Tweedie's posterior mean at the last level
    (Jolicoeur-Martineau et al. 2021; score_sde's last predictor step returns ``x_mean``):

    .. math:: \hat x = x + \sigma^2 s(x,\sigma)\quad\text{(no noise added)}
    """
    x = check_examples(x, "x")
    score = check_examples(score, "score", like=x)
    return tweedie.denoise_unchecked(lambda _: score, x, per_example(check_coefficient(sigma, "sigma", like=x), x))


def likelihood_weighting(sde, t):
    r"""The likelihood weighting of denoising score matching (Song, Durkan, Murray & Ermon 2021,
    Theorem 1): with it the weighted loss bounds the negative log-likelihood.

    .. math:: \lambda(t) = g(t)^2
    """
    return _check_sde(sde).diffusion(t) ** 2
