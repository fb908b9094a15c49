r"""The reverse-diffusion sampler of the variance-exploding SDE on a ladder of noise levels
(Song et al. 2021, eq. 47 and Algorithm 2's predictor; SMLD's reverse Markov chain), in σ:

.. math:: x_{i+1} = x_i + (\sigma_i^2-\sigma_{i+1}^2)\,s(x_i,\sigma_i) + \sqrt{\sigma_i^2-\sigma_{i+1}^2}\;z_i,
          \qquad \sigma_1>\dots>\sigma_N

Each step removes exactly the variance :math:`\sigma_i^2-\sigma_{i+1}^2` that the forward chain
:math:`x_{i} = x_{i+1}+\sqrt{\sigma_i^2-\sigma_{i+1}^2}\,z` added: with the exact score of the
perturbed laws it carries :math:`p_{\sigma_i}` to :math:`p_{\sigma_{i+1}}` to first order in the
gap (the Euler–Maruyama step of the reverse SDE, :math:`g^2 dt = d[\sigma^2]`). It is not a Langevin
move: the noise is :math:`\sqrt{h}\,z`, not :math:`\sqrt{2h}\,z`, because it follows the reverse
*process* rather than sampling one fixed law (contrast :func:`refscore.samplers.annealed_langevin`).

Any decreasing ladder works; spacing it as Karras et al. (2022, eq. 5;
:func:`refscore.diffusion.karras_sigmas`) puts most steps at small σ, where the image's details
form, instead of spending them at σ ≫ the data's scale as a geometric ladder does.
"""
from __future__ import annotations

import math

from .. import tweedie
from .._validation import check_finite, check_points, check_sigmas
from .. import backends
from .annealed import ANNEALED_RUNAWAY_FACTOR
from .chain import Divergence, report_divergence, run_chain, runaway_radius, sampler_info, still_good
from .steps import score_of, unchecked

__all__ = ["reverse_diffusion", "reverse_diffusion_move"]


def reverse_diffusion_move(x, score, sigma_from, sigma_to, z):
    r"""One reverse-diffusion step from level ``sigma_from`` down to ``sigma_to`` (Song et al.
    2021, eq. 47), with ``score`` :math:`= s(x, \sigma_{from})` and noise ``z`` like ``x``:

    .. math:: x' = x + (\sigma_{from}^2-\sigma_{to}^2)\,s + \sqrt{\sigma_{from}^2-\sigma_{to}^2}\;z
    """
    gap = sigma_from * sigma_from - sigma_to * sigma_to
    return x + gap * score + math.sqrt(gap) * z


def reverse_diffusion(score_fn, x0, sigmas, rng, keep_every=None, progress=False, final_denoise=True):
    r"""Run the reverse-diffusion chain over ``sigmas`` (module docstring; Song et al. 2021,
    eq. 47), then by default Tweedie's :math:`x+\sigma_N^2 s(x,\sigma_N)` (Efron 2011; seed 003_…,
    eq. 11.12):

    .. math:: x \leftarrow x + (\sigma_i^2-\sigma_{i+1}^2)\,s(x,\sigma_i) + \sqrt{\sigma_i^2-\sigma_{i+1}^2}\,z,
              \quad i = 1,\dots,N-1

    Parameters
    ----------
    score_fn : callable ``(x, sigma) -> (n, d)``, sigma a Python float
    x0 : (n, d) draws of the widest law, e.g. :math:`\mu + \sigma_1 z` (the data's scale is
        negligible beside :math:`\sigma_1`)
    sigmas : strictly decreasing levels :math:`\sigma_1>\dots>\sigma_N` (N − 1 steps, N ≥ 2)
    rng : backend Generator
    final_denoise : Tweedie's step at :math:`\sigma_N` (default True)

    Returns
    -------
    x, info : the sampler record (:data:`refscore.samplers.SAMPLER_INFO`); a chain diverges when a
        coordinate is non-finite or exceeds :math:`10^3\max(\sigma_1\sqrt d, \max|x^{(0)}|)`.
    """
    sig = [float(s) for s in check_sigmas(sigmas)]
    if len(sig) < 2:
        raise ValueError(f"sigmas must hold at least two levels (a step goes from one to the next), got {len(sig)}")
    x0 = check_points(x0, name="x0")
    bk = backends.of(x0)
    bk.check_rng(rng)
    score_fn = unchecked(score_fn)
    check_finite(score_of(score_fn, x0, sig[0]), f"score_fn(x0, sigma={sig[0]:g})")
    radius = runaway_radius(x0, sig[0] * math.sqrt(x0.shape[1]), ANNEALED_RUNAWAY_FACTOR)
    n_steps = len(sig) - 1
    watch = Divergence(x0, radius, n_steps)
    t_of = iter(range(n_steps))

    def step(x):
        i = next(t_of)
        z = bk.normal(rng, x.shape, x.dtype)
        return watch.update(reverse_diffusion_move(x, score_of(score_fn, x, sig[i]), sig[i], sig[i + 1], z))

    x, traj, _ = run_chain(step, x0, n_steps, keep_every, "reverse diffusion", progress,
                           postfix=lambda t: {"sigma": f"{sig[t]:.4g}"})
    bad = watch.bad
    if final_denoise:
        x = tweedie.denoise_unchecked(lambda y: score_of(score_fn, y, sig[-1]), x, sig[-1])
        bad = bad | ~still_good(x, radius)
    info = sampler_info(n_steps, bad, traj)
    report_divergence(info, "reverse diffusion", "check the score's scale at the largest sigmas")
    return x, info
