r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), in our step convention.

.. math:: h_i = h\,\frac{\sigma_i^2}{\sigma_L^2},\qquad
          x \leftarrow x + h_i\,s_\theta(x,\sigma_i) + \sqrt{2h_i}\,z
          \quad (T \text{ steps at each } \sigma_1>\dots>\sigma_L)

NCSN's :math:`\alpha_i=\epsilon\,\sigma_i^2/\sigma_L^2` with step :math:`x+\tfrac{\alpha_i}2 s+\sqrt{\alpha_i}z`
is this with :math:`h=\epsilon/2`. The step itself is :func:`refscore.samplers.langevin_move`.
"""
from __future__ import annotations

import math

from .. import tweedie
from .._validation import check_finite, check_positive_int, check_sigmas
from ..diffusion.moves import annealed_step_sizes  # the step-size rule's one home, re-exported here
from .chain import (Divergence, check_sampler_args, report_divergence, run_chain, runaway_radius, sampler_info,
                    still_good)
from .steps import langevin_move, score_of, unchecked

#: annealed chains run away beyond this multiple of sigma_1·sqrt(d) (the noise scale at level 1)
ANNEALED_RUNAWAY_FACTOR = 1e3


def annealed_langevin(score_fn, x0, sigmas, step_size, n_steps_each, rng, keep_every=None,
                      progress=False, final_denoise=False):
    r"""Run annealed Langevin chains (Song & Ermon 2019, Alg. 1, with :math:`\alpha_i = 2h_i`):

    .. math:: h_i = h\,\sigma_i^2/\sigma_L^2,\qquad x \leftarrow x + h_i\,s(x,\sigma_i) + \sqrt{2h_i}\,z

    Parameters
    ----------
    score_fn : callable ``(x, sigma) -> (n, d)``, sigma a Python float
    sigmas : strictly decreasing noise levels
    step_size : h, the step at the last (smallest) level
    n_steps_each : T, steps per level
    final_denoise : apply Tweedie's :math:`x+\sigma_L^2 s(x,\sigma_L)` at the end (Jolicoeur-Martineau
        et al. 2021) — off by default to match Algorithm 1. The denoised output is checked too.

    Returns
    -------
    x, info : the sampler record (:data:`refscore.samplers.SAMPLER_INFO`) plus ``step_sizes`` (L,). A chain
        diverges when a coordinate is non-finite or exceeds
        :math:`R = 10^3\max(\sigma_1\sqrt d,\ \max_{ij}|x^{(0)}_{ij}|)`; some diverging warn, all raise.
        The progress bar shows the current σ.
    """
    sig = check_sigmas(sigmas)
    T = check_positive_int(n_steps_each, "n_steps_each")
    bk, x0, h, _ = check_sampler_args(x0, step_size, 1, rng)
    score_fn = unchecked(score_fn)
    hs = annealed_step_sizes(sig, h)
    levels = [(float(s), float(hi)) for s, hi in zip(sig, hs)]
    check_finite(score_of(score_fn, x0, levels[0][0]), f"score_fn(x0, sigma={levels[0][0]:g})")
    radius = runaway_radius(x0, levels[0][0] * math.sqrt(x0.shape[1]), ANNEALED_RUNAWAY_FACTOR)
    watch = Divergence(x0, radius, len(levels) * T)
    t_of = iter(range(len(levels) * T))

    def step(x):
        s, hi = levels[next(t_of) // T]
        z = bk.normal(rng, x.shape, x.dtype)
        return watch.update(langevin_move(x, score_of(score_fn, x, s), hi, z, reuse_noise=True))

    x, traj, _ = run_chain(step, x0, len(levels) * T, keep_every, "annealed Langevin", progress,
                           postfix=lambda t: {"sigma": f"{levels[t // T][0]:.4g}"} if t % T == 0 else None)
    bad = watch.bad
    if final_denoise:
        s_L = levels[-1][0]
        x = tweedie.denoise_unchecked(lambda y: score_of(score_fn, y, s_L), x, s_L)
        bad = bad | ~still_good(x, radius)
    info = sampler_info(len(levels) * T, bad, traj, step_sizes=hs)
    report_divergence(info, "annealed Langevin", f"reduce step_size (h={h})")
    return x, info
