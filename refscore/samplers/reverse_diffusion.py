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

On any :class:`refscore.sde.SDE` (``sde=``, ``times=``) the same predictor runs on the SDE's
discretisation :math:`x_{i+1} = x_i + f_i + G_i z` (``SDE.discretize``; Song et al. 2021, Appendix E,
eqs. 45–47): :math:`x' = x - f + G^2 s + G z`, so VP (DDPM's chain) works as VE does.

Any decreasing ladder works; spacing it as Karras et al. (2022, eq. 5;
:func:`refscore.diffusion.karras_sigmas`) puts most steps at small σ, where the image's details
form, instead of spending them at σ ≫ the data's scale as a geometric ladder does.
"""
from __future__ import annotations

import math

import numpy as onp

from .. import backends, tweedie
from .._validation import check_finite, check_points, check_sigmas
from ..diffusion.moves import reverse_diffusion_step
from ..diffusion.parametrisation import x0_from_score
from .annealed import ANNEALED_RUNAWAY_FACTOR
from .chain import Divergence, report_divergence, run_chain, runaway_radius, sampler_info, still_good
from .steps import score_of, unchecked

__all__ = ["reverse_diffusion", "reverse_diffusion_move"]


def reverse_diffusion_move(x, score, sigma_from, sigma_to, z):
    r"""One reverse-diffusion step from level ``sigma_from`` down to ``sigma_to`` (Song et al.
    2021, eq. 47), with ``score`` :math:`= s(x, \sigma_{from})` and noise ``z`` like ``x``: the
    predictor :func:`refscore.diffusion.reverse_diffusion_step` on the VE ladder's discretisation
    :math:`f = 0`, :math:`G^2 = \sigma_{from}^2-\sigma_{to}^2` (:func:`refscore.diffusion.ve_discretize`),

    .. math:: x' = x + (\sigma_{from}^2-\sigma_{to}^2)\,s + \sqrt{\sigma_{from}^2-\sigma_{to}^2}\;z
    """
    return reverse_diffusion_step(x, score, 0.0, sigma_from * sigma_from - sigma_to * sigma_to, z)


def _check_times(sde, times):
    """Host times, strictly decreasing in [0, 1], at least two, with an SDE that discretises."""
    if not callable(getattr(sde, "discretize", None)) or not callable(getattr(sde, "marginal_coeffs", None)):
        raise TypeError(f"sde must be a refscore.sde.SDE (discretize, marginal_coeffs), got {type(sde).__name__}")
    ts = onp.asarray(times, dtype=float)
    if ts.ndim != 1 or ts.size < 2 or not onp.all(onp.diff(ts) < 0) or ts[-1] < 0 or ts[0] > 1:
        raise ValueError(f"times must be at least two strictly decreasing times in [0, 1], got {times!r}")
    return [float(t) for t in ts]


def _plan(score_fn, x0, sigmas, sde, times):
    r"""The chain's steps as ``(label, step(x, z), denoise(x), scale)``: on the σ-ladder (VE, ``score_fn(x, σ)``)
    or on ``sde.discretize`` over ``times`` (``score_fn(x, t)``); ``scale`` the noise scale at the start."""
    if sde is None:
        if times is not None:
            raise ValueError("times need an sde (refscore.sde.VESDE, VPSDE...); a ladder of levels goes in sigmas")
        sig = [float(s) for s in check_sigmas(sigmas)]
        if len(sig) < 2:
            raise ValueError(f"sigmas must hold at least two levels (a step goes from one to the next), got {len(sig)}")
        move = lambda x, i, z: reverse_diffusion_move(x, score_of(score_fn, x, sig[i]), sig[i], sig[i + 1], z)  # noqa: E731
        denoise = lambda x: tweedie.denoise_unchecked(lambda y: score_of(score_fn, y, sig[-1]), x, sig[-1])  # noqa: E731
        return sig, "sigma", move, denoise, sig[0]
    if sigmas is not None:
        raise ValueError("give sigmas (a VE ladder) or an sde with times, not both")
    ts = _check_times(sde, times)

    def move(x, i, z):
        f, G = sde.discretize(x, ts[i], ts[i + 1])
        return reverse_diffusion_step(x, score_of(score_fn, x, ts[i]), f, G * G, z)

    def denoise(x):  # Tweedie at the last time: E[x_0 | x_t] = (x + s² ∇log p_t) / a
        a, s = sde.marginal_coeffs(ts[-1])
        return x0_from_score(x, score_of(score_fn, x, ts[-1]), a, s)

    return ts, "t", move, denoise, float(sde.marginal_coeffs(ts[0])[1])


def reverse_diffusion(score_fn, x0, sigmas=None, rng=None, keep_every=None, progress=False, final_denoise=True,
                      sde=None, times=None):
    r"""Run the reverse-diffusion chain (module docstring; Song et al. 2021, Appendix E, eqs. 46–47,
    the predictor :func:`refscore.diffusion.reverse_diffusion_step` on a forward discretisation
    :math:`x_{i+1} = x_i + f_i + G_i z`), then by default Tweedie's posterior mean (Efron 2011; seed
    003_…, eq. 11.12):

    .. math:: x \leftarrow x - f_i + G_i^2\,s(x) + G_i z,\qquad
              \text{VE ladder: } f_i = 0,\ G_i^2 = \sigma_i^2-\sigma_{i+1}^2

    Parameters
    ----------
    score_fn : callable ``(x, sigma) -> (n, d)`` on a ladder, ``(x, t) -> (n, d)`` with an ``sde``
        (``t``, ``sigma`` Python floats)
    x0 : (n, d) draws of the widest law, e.g. :math:`\mu + \sigma_1 z` (the data's scale is
        negligible beside :math:`\sigma_1`), or the SDE's prior at ``times[0]``
    sigmas : strictly decreasing levels :math:`\sigma_1>\dots>\sigma_N` (N − 1 steps, N ≥ 2): the VE chain
    rng : backend Generator
    final_denoise : Tweedie's step at the last level or time (default True):
        :math:`x+\sigma_N^2 s(x,\sigma_N)`, or :math:`(x + s(t_N)^2 s(x, t_N))/a(t_N)` with an SDE
    sde, times : instead of ``sigmas``, any :class:`refscore.sde.SDE` (its ``discretize``: VE, VP,
        sub-VP) and strictly decreasing times in [0, 1]

    Returns
    -------
    x, info : the sampler record (:data:`refscore.samplers.SAMPLER_INFO`); a chain diverges when a
        coordinate is non-finite or exceeds :math:`10^3\max(\sigma_1\sqrt d, \max|x^{(0)}|)`
        (with an SDE, :math:`s(t_1)` in place of :math:`\sigma_1`).
    """
    score_fn = unchecked(score_fn)
    grid, label, move, denoise, scale = _plan(score_fn, x0, sigmas, sde, times)
    x0 = check_points(x0, name="x0")
    bk = backends.of(x0)
    bk.check_rng(rng)
    check_finite(score_of(score_fn, x0, grid[0]), f"score_fn(x0, {label}={grid[0]:g})")
    radius = runaway_radius(x0, scale * math.sqrt(x0.shape[1]), ANNEALED_RUNAWAY_FACTOR)
    n_steps = len(grid) - 1
    watch = Divergence(x0, radius, n_steps)
    t_of = iter(range(n_steps))

    def step(x):
        i = next(t_of)
        z = bk.normal(rng, x.shape, x.dtype)
        return watch.update(move(x, i, z))

    x, traj, _ = run_chain(step, x0, n_steps, keep_every, "reverse diffusion", progress,
                           postfix=lambda t: {label: f"{grid[t]:.4g}"})
    bad = watch.bad
    if final_denoise:
        x = denoise(x)
        bad = bad | ~still_good(x, radius)
    info = sampler_info(n_steps, bad, traj)
    report_divergence(info, "reverse diffusion", "check the score's scale at the largest sigmas")
    return x, info
