r"""Metropolis-adjusted Langevin (MALA): the Langevin proposal plus an *asymmetric*
Metropolis–Hastings correction (Roberts & Tweedie 1996; seed ``003_…``, §11.2.1).

.. math::
   y &= x + h\,s(x) + \sqrt{2h}\,z \\
   \log\alpha(x, y) &= \log\tilde p(y) - \log\tilde p(x) + \log q(x\mid y) - \log q(y\mid x),
   \qquad \log q(y\mid x) = -\frac{\|y-x-h\,s(x)\|^2}{4h}

The reverse density :math:`q(x\mid y)` uses the score *at y*; swapping the two (blackjax #653)
breaks detailed balance, which ``tests/test_samplers.py`` would catch. ``log_prob_fn`` may be
unnormalised.
"""
from __future__ import annotations

from autograd import elementwise_grad
import autograd.numpy as anp

from .. import backends
from ._common import (State, check_sampler_args, langevin_log_q, langevin_move, mh_accept,
                      rows_finite, run_chain, select_rows)


def _score_of(log_prob_fn, score_fn):
    return score_fn if score_fn is not None else elementwise_grad(lambda x: anp.sum(log_prob_fn(x)))


def mala_init(log_prob_fn, x, score_fn=None):
    """The initial :class:`State` (position, log-density, score) of every chain."""
    return State(x, log_prob_fn(x), _score_of(log_prob_fn, score_fn)(x))


def mala_step(state, log_prob_fn, score_fn, step_size, rng, noise_var=None):
    r"""One MALA step for every chain. Returns ``(new_state, accepted (n,) bool, finite (n,) bool)``."""
    x, lp_x, s_x = state
    bk = backends.of(x)
    h = step_size
    y = langevin_move(x, s_x, h, bk.normal(rng, x.shape, x.dtype), noise_var)
    lp_y, s_y = log_prob_fn(y), score_fn(y)
    finite = rows_finite(y) & rows_finite(s_y) & bk.xp.isfinite(lp_y)
    log_ratio = (lp_y - lp_x) + langevin_log_q(x, y, s_y, h, noise_var) - langevin_log_q(y, x, s_x, h, noise_var)
    acc = mh_accept(log_ratio, bk.uniform(rng, (x.shape[0],), x.dtype), finite)
    new = State(select_rows(acc, y, x), bk.xp.where(acc, lp_y, lp_x), select_rows(acc, s_y, s_x))
    return new, acc, finite


def mala(log_prob_fn, x0, step_size, n_steps, rng, score_fn=None, keep_every=None, progress=False,
         noise_var=None):
    r"""Run MALA chains from the rows of ``x0``.

    Parameters
    ----------
    log_prob_fn : (n, d) -> (n,), possibly unnormalised
    score_fn : optional closed-form score; default autograd of ``log_prob_fn``
    noise_var : the notes' proposal :math:`y=x+\eta s+\sqrt\eta\epsilon` is ``step_size=η,
        noise_var=η`` (its MH ratio then uses that proposal's exact density)

    Returns
    -------
    x, info : ``info`` has ``acceptance_rate`` (n,) per chain, ``n_steps``, ``n_nonfinite`` (n,)
        rejected non-finite proposals, and ``trajectory`` when ``keep_every`` is set.
    """
    bk, h, n_steps = check_sampler_args(x0, step_size, n_steps, rng)
    score_fn = _score_of(log_prob_fn, score_fn)
    state = mala_init(log_prob_fn, x0, score_fn)
    n = x0.shape[0]
    zero = bk.xp.zeros(n, dtype=x0.dtype)

    def step(carry):
        st, n_acc, n_bad = carry
        st, acc, finite = mala_step(st, log_prob_fn, score_fn, h, rng, noise_var)
        return st, n_acc + acc, n_bad + ~finite

    (state, n_acc, n_bad), traj = run_chain(step, (state, zero, zero), n_steps, keep_every, "MALA",
                                            progress, extract=lambda c: c[0].position)
    info = {"acceptance_rate": n_acc / max(n_steps, 1), "n_steps": n_steps, "n_nonfinite": n_bad,
            "state": state}
    if traj:
        info["trajectory"] = bk.xp.stack(traj)
    return state.position, info
