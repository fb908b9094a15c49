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

from autograd import make_vjp
from autograd.tracer import getval

from .. import backends
from .._validation import check_finite, check_positive
from .chain import check_sampler_args, metropolis_chain, report_divergence
from .steps import (State, StepResult, langevin_log_q, langevin_move, log_prob_of, mh_accept, rows_finite, score_of,
                    select_rows, unchecked)


def log_prob_and_score(log_prob_fn, score_fn, x):
    r""":math:`(\log\tilde p(x), s(x))`, shapes ``(n,)`` and ``(n, d)``. Without ``score_fn``
    both come from **one** forward pass of ``log_prob_fn`` and one reverse pass:
    :math:`s = \nabla_x\sum_i\log\tilde p(x_i)` (rows do not interact)."""
    log_prob_fn = unchecked(log_prob_fn)
    if score_fn is not None:
        return log_prob_of(log_prob_fn, x), score_of(unchecked(score_fn), x)
    vjp, lp = make_vjp(lambda y: log_prob_of(log_prob_fn, y))(x)
    return lp, vjp(backends.of(getval(lp)).xp.ones(lp.shape, dtype=getval(lp).dtype))


def mala_init(log_prob_fn, x, score_fn=None):
    """The initial :class:`State` (position, log-density, score) of every chain."""
    return State(x, *log_prob_and_score(log_prob_fn, score_fn, x))


def mala_step(state, log_prob_fn, score_fn, step_size, rng, noise_var=None):
    r"""One MALA step for every chain, unvalidated (no host sync); ``score_fn=None`` takes the
    score from ``log_prob_fn`` by autograd in the same pass.

    .. math:: \log\alpha = \log\tilde p(y) - \log\tilde p(x) + \log q(x\mid y) - \log q(y\mid x)

    Returns a :class:`StepResult` ``(state, is_accepted (n,), is_finite (n,))``."""
    x, lp_x, s_x = state
    bk = backends.of(x)
    h = step_size
    y = langevin_move(x, s_x, h, bk.normal(rng, x.shape, x.dtype), noise_var, reuse_noise=True)
    lp_y, s_y = log_prob_and_score(log_prob_fn, score_fn, y)
    finite = rows_finite(y) & rows_finite(s_y) & bk.xp.isfinite(lp_y)
    log_q_reverse = langevin_log_q(to=x, given=y, score_given=s_y, h=h, noise_var=noise_var)  # q(x | y): score at y
    log_q_forward = langevin_log_q(to=y, given=x, score_given=s_x, h=h, noise_var=noise_var)  # q(y | x): score at x
    log_ratio = (lp_y - lp_x) + log_q_reverse - log_q_forward
    acc = mh_accept(log_ratio, bk.uniform(rng, (x.shape[0],), x.dtype), finite)
    new = State(select_rows(acc, y, x), bk.xp.where(acc, lp_y, lp_x), select_rows(acc, s_y, s_x))
    return StepResult(new, acc, finite)


def mala(log_prob_fn, x0, step_size, n_steps, rng, score_fn=None, keep_every=None, progress=False,
         noise_var=None, record_accepted=False):
    r"""Run MALA chains from the rows of ``x0`` (Roberts & Tweedie 1996; seed 003_…, §11.2.1):

    .. math:: y = x + h\,s(x) + \sqrt{2h}\,z,\qquad
              \log q(y\mid x) = -\frac{\|y-x-h\,s(x)\|^2}{4h}

    Parameters
    ----------
    log_prob_fn : (n, d) -> (n,), possibly unnormalised; another shape is a ``ValueError``
    score_fn : optional closed-form score (n, d) -> (n, d); default autograd of ``log_prob_fn``,
        computed in the same pass as the log-density
    noise_var : the notes' proposal :math:`y=x+\eta s+\sqrt\eta\epsilon` is ``step_size=η,
        noise_var=η`` (its MH ratio then uses that proposal's exact density)
    record_accepted : keep ``info["is_accepted"]`` (n_steps, n)

    Returns
    -------
    x, info : the sampler record (:data:`refscore.samplers.SAMPLER_INFO`) with ``acceptance_rate`` (n,),
        ``n_nonfinite`` (n,) rejected non-finite proposals, ``state`` (the last :class:`State`).
        A chain diverges when a coordinate exceeds :math:`R = 10^6\max(1,\max_{ij}|x^{(0)}_{ij}|)`;
        chains that never accept warn.
    """
    bk, x0, h, n_steps = check_sampler_args(x0, step_size, n_steps, rng)
    noise_var = None if noise_var is None else check_positive(noise_var, "noise_var")
    state = mala_init(log_prob_fn, x0, score_fn)
    check_finite(state.log_prob, "log_prob_fn(x0)")
    check_finite(state.score, "score at x0")
    x, info = metropolis_chain(lambda st: mala_step(st, log_prob_fn, score_fn, h, rng, noise_var), state,
                               n_steps, keep_every, "MALA", progress, record_accepted)
    report_divergence(info, "MALA", f"reduce step_size (h={h})")
    return x, info
