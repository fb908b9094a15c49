r"""Unadjusted Langevin algorithm (ULA): the Langevin step with no correction.

.. math:: x_{t+1} = x_t + h\,s(x_t) + \sqrt{2h}\,z_t

Seed ``001_…`` ("Langevin (Monte Carlo) sampling": :math:`x_{i+1}=x_i+\epsilon\nabla\log p+\sqrt{2\epsilon}z`,
our :math:`h=\epsilon`). It is biased for :math:`h>0`: on :math:`\mathcal N(0,1)` the chain is
:math:`x'=(1-h)x+\sqrt{2h}z` with stationary variance :math:`1/(1-h/2)`.
"""
from __future__ import annotations

import warnings

from ._common import check_sampler_args, langevin_move, rows_finite, run_chain


def langevin_step(x, score_fn, step_size, rng, noise_var=None):
    """One ULA step for every chain (rows of ``x``)."""
    from .. import backends

    bk = backends.of(x)
    z = bk.normal(rng, x.shape, x.dtype)
    return langevin_move(x, score_fn(x), step_size, z, noise_var)


def langevin(score_fn, x0, step_size, n_steps, rng, keep_every=None, progress=False, noise_var=None):
    r"""Run ULA chains from the rows of ``x0``.

    Parameters
    ----------
    score_fn : (n, d) -> (n, d)
    x0 : (n, d) starting points, one chain per row
    step_size : h > 0
    n_steps : int
    rng : backend Generator
    keep_every : keep every k-th position in ``info["trajectory"]`` (T/k, n, d); none by default
    noise_var : the notes' variant (seed 003_…, §11.2.1) with noise variance η instead of 2h;
        leave ``None`` for the standard Langevin step.

    Returns
    -------
    x : (n, d) final positions
    info : dict with ``n_steps``, ``diverged`` (n,) bool, ``n_diverged``, and ``trajectory``
        when asked. Chains that become non-finite are reported, with a warning; if every chain
        diverges a ``FloatingPointError`` is raised (never a silent array of NaN).
    """
    bk, h, n_steps = check_sampler_args(x0, step_size, n_steps, rng)
    state = (x0, bk.xp.zeros(x0.shape[0], dtype=bool))

    def step(st):
        x, bad = st
        x = langevin_step(x, score_fn, h, rng, noise_var)
        return x, bad | ~rows_finite(x)

    (x, bad), traj = run_chain(step, state, n_steps, keep_every, "ULA", progress, extract=lambda s: s[0])
    n_bad = int(bad.sum())
    info = {"n_steps": n_steps, "diverged": bad, "n_diverged": n_bad}
    if traj:
        info["trajectory"] = bk.xp.stack(traj)
    if n_bad == x.shape[0]:
        raise FloatingPointError(f"every one of the {n_bad} ULA chains diverged (non-finite); "
                                 f"reduce step_size (h={h}) or use mala")
    if n_bad:
        warnings.warn(f"{n_bad} of {x.shape[0]} ULA chains diverged; see info['diverged']", RuntimeWarning)
    return x, info
