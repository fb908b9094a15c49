r"""Pieces every sampler shares: the one Langevin step, the Metropolis–Hastings accept/reject,
the sampler state, and the driver loop.

The Langevin step (API.md; seed 001_…, "Langevin (Monte Carlo) sampling"):

.. math:: x' = x + h\,s(x) + \sqrt{2h}\,z,\qquad z\sim\mathcal N(0,I)

NCSN (Song & Ermon 2019, Alg. 1) writes :math:`x+\tfrac{\alpha}{2}s+\sqrt\alpha z`: their
:math:`\alpha` is our :math:`2h`. This is the only place a Langevin move is written.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import autograd.numpy as anp

from .. import backends
from .._progress import progress
from .._validation import check_points, check_positive, check_positive_int, hot_loop


class State(NamedTuple):
    """What a Metropolis sampler carries between steps, so nothing is recomputed."""

    position: object  # (n, d)
    log_prob: object  # (n,)  log p̃ at position (unnormalised is fine)
    score: object  # (n, d) or None (RWMH)


def langevin_move(x, score_x, h, z, noise_var=None):
    r""":math:`x + h\,s(x) + \sqrt{\tau}\,z` with :math:`\tau = 2h` (our convention) unless
    ``noise_var`` gives another :math:`\tau` (the notes' MH proposal uses :math:`\tau=\eta=h`)."""
    tau = 2.0 * h if noise_var is None else noise_var
    return x + h * score_x + math.sqrt(tau) * z


def langevin_log_q(y, x, score_x, h, noise_var=None):
    r"""Log-density (up to a constant) of the Langevin proposal :math:`y\mid x`:

    .. math:: \log q(y\mid x) = -\frac{\|y - x - h\,s(x)\|^2}{2\tau},\qquad \tau=2h
              \;\Rightarrow\; -\frac{\|y-x-h s(x)\|^2}{4h}
    """
    tau = 2.0 * h if noise_var is None else noise_var
    r = y - x - h * score_x
    return -anp.sum(r * r, axis=1) / (2.0 * tau)


def mh_accept(log_ratio, u, finite):
    r"""Accept where :math:`\log u < \log\alpha` and the proposal is finite (non-finite
    proposals are always rejected). ``log_ratio`` (n,), ``u`` uniform (n,), ``finite`` (n,) bool."""
    xp = backends.of(u).xp
    return finite & (xp.log(u) < xp.where(finite, log_ratio, -xp.inf))


def rows_finite(a):
    """(n, d) -> (n,) True where the whole row is finite."""
    xp = backends.of(a).xp
    return xp.all(xp.isfinite(a), axis=1)


def select_rows(mask, a, b):
    """Row-wise ``where``: rows of ``a`` where ``mask`` (n,), else rows of ``b``."""
    xp = backends.of(a, b).xp
    m = mask.reshape((-1,) + (1,) * (a.ndim - 1))
    return xp.where(m, a, b)


def check_sampler_args(x0, step_size, n_steps, rng):
    check_points(x0, name="x0")
    h = check_positive(step_size, "step_size")
    n_steps = check_positive_int(n_steps, "n_steps", minimum=0)
    bk = backends.of(x0)
    bk.check_rng(rng)
    return bk, h, n_steps


def run_chain(step, state, n_steps, keep_every, desc, show_progress, extract=lambda s: s):
    """Drive ``state = step(state)`` for ``n_steps``; keep every ``keep_every``-th position."""
    traj = []
    if keep_every is not None:
        keep_every = check_positive_int(keep_every, "keep_every")
    bar = progress(n_steps, desc, enabled=show_progress)
    with hot_loop():
        for t in range(n_steps):
            state = step(state)
            if keep_every is not None and (t + 1) % keep_every == 0:
                traj.append(extract(state))
            bar.update()
    bar.close()
    return state, traj
