r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1), in our step convention.

.. math:: h_i = h\,\frac{\sigma_i^2}{\sigma_L^2},\qquad
          x \leftarrow x + h_i\,s_\theta(x,\sigma_i) + \sqrt{2h_i}\,z
          \quad (T \text{ steps at each } \sigma_1>\dots>\sigma_L)

NCSN's :math:`\alpha_i=\epsilon\,\sigma_i^2/\sigma_L^2` with step :math:`x+\tfrac{\alpha_i}2 s+\sqrt{\alpha_i}z`
is this with :math:`h=\epsilon/2`. The step itself is :func:`refscore.samplers._common.langevin_move`.
"""
from __future__ import annotations

from .. import backends
from .._validation import check_positive_int
from ..losses import _check_sigmas
from ._common import check_sampler_args, langevin_move, rows_finite, run_chain


def annealed_langevin(score_fn, x0, sigmas, step_size, n_steps_each, rng, keep_every=None,
                      progress=False, final_denoise=False):
    r"""Run annealed Langevin chains.

    Parameters
    ----------
    score_fn : callable ``(x, sigma) -> (n, d)``, sigma a Python float
    sigmas : strictly decreasing noise levels
    step_size : h, the step at the last (smallest) level
    n_steps_each : T, steps per level
    final_denoise : apply Tweedie's :math:`x+\sigma_L^2 s(x,\sigma_L)` at the end (Jolicoeur-Martineau
        et al. 2021) — off by default to match Algorithm 1.

    Returns
    -------
    x, info : ``info`` has ``n_steps`` (L·T), ``step_sizes`` (L,), ``diverged`` (n,) and
        ``n_diverged``.
    """
    sig = _check_sigmas(sigmas)
    T = check_positive_int(n_steps_each, "n_steps_each")
    bk, h, _ = check_sampler_args(x0, step_size, 1, rng)
    hs = h * sig**2 / sig[-1] ** 2
    schedule = [(float(s), float(hi)) for s, hi in zip(sig, hs) for _ in range(T)]
    it = iter(schedule)

    def step(st):
        x, bad = st
        s, hi = next(it)
        x = langevin_move(x, score_fn(x, s), hi, bk.normal(rng, x.shape, x.dtype))
        return x, bad | ~rows_finite(x)

    (x, bad), traj = run_chain(step, (x0, bk.xp.zeros(x0.shape[0], dtype=bool)), len(schedule), keep_every,
                               "annealed Langevin", progress, extract=lambda s: s[0])
    if final_denoise:
        s_L = float(sig[-1])
        x = x + s_L**2 * score_fn(x, s_L)
    n_bad = int(bad.sum())
    if n_bad == x.shape[0]:
        raise FloatingPointError("every annealed Langevin chain diverged; reduce step_size")
    info = {"n_steps": len(schedule), "step_sizes": hs, "diverged": bad, "n_diverged": n_bad}
    if traj:
        info["trajectory"] = bk.xp.stack(traj)
    return x, info
