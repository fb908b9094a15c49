r"""The moves every sampler is made of, each written once, on any backend: the Langevin move, the
annealed step-size rule, the predictor–corrector's corrector step size, and the reverse-diffusion
predictor on a forward discretisation :math:`x_{i+1} = x_i + f_i + G_i z`.

.. math:: \text{Langevin (seed 001\_…):}\quad x' = x + h\,s(x) + \sqrt{2h}\,z,\qquad
          \text{reverse diffusion (Song et al. 2021, eq. 46):}\quad x' = x - f + G^2 s + G z

:mod:`refscore.samplers` and :mod:`refscore.sde` import them from here (they stay importable at
their old paths, :func:`refscore.samplers.langevin_move`, :func:`refscore.sde.solvers.corrector_step_size`).
"""
from __future__ import annotations

import math
import numbers

import autograd.numpy as anp
import numpy as onp
from autograd.tracer import Box, getval

from .. import backends
from .._math import sqnorm
from .._validation import check_coefficient, check_examples, check_noise, check_positive, check_sigmas
from .parametrisation import per_example

__all__ = ["sqrt_number_or_array", "langevin_move", "annealed_step_sizes", "corrector_step_size", "reverse_diffusion_step"]


def sqrt_number_or_array(c):
    r""":math:`\sqrt c` by :func:`math.sqrt` for a number (a Python float then scales a float32
    array without promoting it), else by the array's own module (any backend, autograd-aware).

    .. math:: c \mapsto \sqrt c
    """
    return math.sqrt(c) if isinstance(c, numbers.Real) and not hasattr(c, "dtype") or isinstance(c, float) \
        else anp.sqrt(c)


def langevin_move(x, score_x, h, z, noise_var=None, reuse_noise=False):
    r"""The Langevin move :math:`x + h\,s(x) + \sqrt{\tau}\,z` with :math:`\tau = 2h` (our
    convention) unless ``noise_var`` gives another :math:`\tau` (the notes' MH proposal uses
    :math:`\tau=\eta=h`, seed 003_…, §11.2.1):

    .. math:: x' = x + h\,s(x) + \sqrt{2h}\,z \qquad\text{(seed 001\_…, Langevin sampling)}

    ``h`` (and ``noise_var``) may be a number, a 0-d array (the corrector's step) or one per example
    ((n,) or a column, :func:`per_example`); ``score_x`` and ``z`` must have ``x``'s shape (a (1, d)
    noise is refused, never broadcast); a numeric ``h`` must be positive (an array ``h`` is a driver's
    own step and is not read: a NaN there is reported by the driver as divergence). With ``reuse_noise=True`` the
    caller hands over ``z`` (drawn for this step alone) and the sum is built in its memory, one
    temporary instead of four, unless autograd is tracing the step. ULA, MALA's proposal, annealed
    Langevin and the reverse-SDE corrector all call it (re-exported as
    :func:`refscore.samplers.langevin_move`).
    """
    x = check_examples(x, "x")
    score_x = check_examples(score_x, "score_x", like=x)
    z = check_noise(z, getval(x).shape, "z")
    h = per_example(check_coefficient(h, "h", like=x, read_arrays=False), x)
    tau = 2.0 * h if noise_var is None else per_example(check_coefficient(noise_var, "noise_var", like=x), x)
    root = math.sqrt(tau) if isinstance(tau, numbers.Real) else anp.sqrt(tau)
    if not reuse_noise or any(isinstance(a, Box) for a in (x, score_x, z, h)):
        return x + h * score_x + root * z
    z *= root
    z += x
    z += h * score_x
    return z


def annealed_step_sizes(sigmas, step_size):
    r"""The step at each level of annealed Langevin, scaled by the **square** of the noise ratio
    (Song & Ermon 2019, Algorithm 1: :math:`\alpha_i = \epsilon\sigma_i^2/\sigma_L^2`; a step scaled
    by :math:`\sigma_i/\sigma_L` is a known fault):

    .. math:: h_i = h\,\sigma_i^2/\sigma_L^2

    ``sigmas`` (L,) decreasing (an array, or a list read as float64 on the host), ``step_size`` the
    step at the last level; returns (L,).
    """
    s = sigmas if hasattr(sigmas, "shape") else onp.asarray(sigmas, dtype=float)
    if backends.of(s).host_memory:
        check_sigmas(s)  # positive, strictly decreasing
    elif s.ndim != 1 or s.shape[0] == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D array of levels, got shape {tuple(s.shape)}")
    step_size = check_coefficient(step_size, "step_size")
    return step_size * s**2 / s[-1] ** 2


def corrector_step_size(score, z, snr, alpha=1.0):
    r"""The predictor–corrector's Langevin step size (Song et al. 2021, Algorithm 4; score_sde's
    ``LangevinCorrector``: batch means of the per-example norms):

    .. math:: \epsilon = 2\alpha\Big(r\,\frac{\overline{\|z\|}}{\overline{\|s\|}}\Big)^2

    with :math:`r` = ``snr``; :math:`\alpha = 1` for VE (score_sde's discrete VP uses
    :math:`\alpha_i = 1-\beta_i/N`, which is :math:`1 + O(\Delta t)`). ``score``, ``z``: (n, d).
    A zero score gives NaN (no warning), which the solver reports as divergence.
    """
    score = check_examples(score, "score")
    z, snr = check_noise(z, getval(score).shape, "z"), check_positive(snr, "snr")
    alpha = check_coefficient(alpha, "alpha")
    xp = backends.of(z).xp
    z_norm, s_norm = anp.mean(anp.sqrt(sqnorm(z))), anp.mean(anp.sqrt(sqnorm(score)))
    return 2.0 * alpha * (snr * z_norm / xp.where(s_norm > 0, s_norm, xp.nan)) ** 2


def reverse_diffusion_step(x, score, f, g2, z):
    r"""The reverse-diffusion predictor on a forward discretisation
    :math:`x_{i+1} = x_i + f_i(x_i) + G_i z_i` (Song et al. 2021, Appendix E, eq. 46; score_sde's
    ``ReverseDiffusionPredictor``), given :math:`f` at ``x`` and the step's variance ``g2`` =
    :math:`G^2` (a number, or one per example):

    .. math:: x' = x - f + G^2\,s(x) + G\,z

    VE on a ladder (eq. 47): :math:`f = 0`, :math:`G^2 = \sigma_i^2-\sigma_{i-1}^2`; VP (eq. 45 with
    :math:`\beta_i`): :math:`f = (\sqrt{1-\beta_i}-1)x`, :math:`G^2=\beta_i`. ``x``, ``score``, ``z``
    shaped alike; ``f`` an array like ``x`` or 0.
    """
    x = check_examples(x, "x")
    score = check_examples(score, "score", like=x)
    z, g2 = check_noise(z, getval(x).shape, "z"), per_example(check_coefficient(g2, "g2", like=x, closed=True), x)
    if not (isinstance(f, numbers.Real) and f == 0):
        f = check_examples(f, "f", like=x)
    y = x if isinstance(f, numbers.Real) and f == 0 else x - f
    return y + g2 * score + sqrt_number_or_array(g2) * z
