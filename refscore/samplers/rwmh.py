r"""Random-walk Metropolis (Metropolis et al. 1953): symmetric Gaussian proposal, so the
proposal densities cancel.

.. math:: y = x + \delta z,\qquad \log\alpha = \log\tilde p(y) - \log\tilde p(x)
"""
from __future__ import annotations

from .. import backends
from .._validation import check_finite
from .chain import check_sampler_args, metropolis_chain, report_divergence
from .steps import State, StepResult, log_prob_of, mh_accept, rows_finite, select_rows, unchecked


def rwmh_step(state, log_prob_fn, step_size, rng):
    r"""One random-walk Metropolis step, unvalidated (no host sync):
    :math:`y = x+\delta z`, accepted with :math:`\log u < \log\tilde p(y)-\log\tilde p(x)`.

    Returns a :class:`~refscore.samplers.StepResult` ``(state, is_accepted (n,), is_finite (n,))``."""
    x, lp_x, _ = state
    bk = backends.of(x)
    y = x + step_size * bk.normal(rng, x.shape, x.dtype)
    lp_y = log_prob_of(unchecked(log_prob_fn), y)
    finite = rows_finite(y) & bk.xp.isfinite(lp_y)
    acc = mh_accept(lp_y - lp_x, bk.uniform(rng, (x.shape[0],), x.dtype), finite)
    return StepResult(State(select_rows(acc, y, x), bk.xp.where(acc, lp_y, lp_x), None), acc, finite)


def rwmh(log_prob_fn, x0, step_size, n_steps, rng, keep_every=None, progress=False, record_accepted=False):
    r"""Run random-walk Metropolis chains; ``step_size`` is the proposal's standard deviation δ.

    .. math:: y = x + \delta z,\qquad \log\alpha = \log\tilde p(y) - \log\tilde p(x)
              \qquad\text{(Metropolis et al. 1953)}

    ``log_prob_fn`` : (n, d) -> (n,) (another shape, a scalar included, is a ``ValueError``).
    Returns ``(x, info)``: the sampler record (:data:`refscore.samplers.SAMPLER_INFO`) with
    ``acceptance_rate`` (n,), ``n_nonfinite`` (n,), ``is_accepted`` (n_steps, n) with
    ``record_accepted=True``. A chain diverges when a coordinate exceeds
    :math:`R = 10^6\max(1, \max_{ij}|x^{(0)}_{ij}|)`; chains that never accept warn.
    """
    bk, x0, h, n_steps = check_sampler_args(x0, step_size, n_steps, rng)
    log_prob_fn = unchecked(log_prob_fn)
    state = State(x0, check_finite(log_prob_of(log_prob_fn, x0), "log_prob_fn(x0)"), None)
    x, info = metropolis_chain(lambda st: rwmh_step(st, log_prob_fn, h, rng), state, n_steps, keep_every,
                               "RWMH", progress, record_accepted)
    report_divergence(info, "RWMH", f"reduce step_size (delta={h})")
    return x, info
