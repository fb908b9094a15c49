r"""Random-walk Metropolis (Metropolis et al. 1953): symmetric Gaussian proposal, so the
proposal densities cancel.

.. math:: y = x + \delta z,\qquad \log\alpha = \log\tilde p(y) - \log\tilde p(x)
"""
from __future__ import annotations

from .. import backends
from ._common import State, check_sampler_args, mh_accept, rows_finite, run_chain, select_rows


def rwmh_step(state, log_prob_fn, step_size, rng):
    """One random-walk Metropolis step. Returns ``(new_state, accepted, finite)``."""
    x, lp_x, _ = state
    bk = backends.of(x)
    y = x + step_size * bk.normal(rng, x.shape, x.dtype)
    lp_y = log_prob_fn(y)
    finite = rows_finite(y) & bk.xp.isfinite(lp_y)
    acc = mh_accept(lp_y - lp_x, bk.uniform(rng, (x.shape[0],), x.dtype), finite)
    return State(select_rows(acc, y, x), bk.xp.where(acc, lp_y, lp_x), None), acc, finite


def rwmh(log_prob_fn, x0, step_size, n_steps, rng, keep_every=None, progress=False):
    r"""Run random-walk Metropolis chains; ``step_size`` is the proposal's standard deviation δ.

    Returns ``(x, info)`` with ``acceptance_rate`` (n,), ``n_steps``, ``n_nonfinite`` (n,)."""
    bk, h, n_steps = check_sampler_args(x0, step_size, n_steps, rng)
    zero = bk.xp.zeros(x0.shape[0], dtype=x0.dtype)

    def step(carry):
        st, n_acc, n_bad = carry
        st, acc, finite = rwmh_step(st, log_prob_fn, h, rng)
        return st, n_acc + acc, n_bad + ~finite

    (state, n_acc, n_bad), traj = run_chain(step, (State(x0, log_prob_fn(x0), None), zero, zero), n_steps,
                                            keep_every, "RWMH", progress, extract=lambda c: c[0].position)
    info = {"acceptance_rate": n_acc / max(n_steps, 1), "n_steps": n_steps, "n_nonfinite": n_bad}
    if traj:
        info["trajectory"] = bk.xp.stack(traj)
    return state.position, info
