r"""Solvers for the diffusion view (Song et al. 2021): the reverse-time SDE (Euler–Maruyama
predictor with an optional Langevin corrector), the probability-flow ODE, and exact
log-likelihoods by the instantaneous change of variables.

.. math:: dx = [f - g^2 s(x,t)]\,dt + g\,d\bar w \quad\text{(eq. 6)},\qquad
          \frac{dx}{dt} = f - \tfrac12 g^2 s(x,t) \quad\text{(eq. 13)}

Nothing here hangs or returns silent NaN: the ODE right-hand side is checked for non-finite
values at every evaluation (it is on the host already, for SciPy), the number of evaluations is
capped (``max_evals``), and the reverse SDE tracks diverging chains like the samplers do.
"""
from __future__ import annotations


import numpy as onp

from .. import backends
from .._progress import progress
from .._validation import (check_finite, check_output, check_points, check_positive, check_positive_int,
                           check_time_interval)
from ..diffusion.moves import corrector_step_size, langevin_move
from ..diffusion.steps import reverse_sde_step
from ..samplers.chain import Divergence, report_divergence, runaway_radius, sampler_info
from ..traces import hutchinson_trace, jacobian_trace
from .rowwise import solve_rows
from .sdes import SDE

__all__ = ["reverse_sde_sample", "probability_flow_sample", "log_likelihood", "corrector_step_size"]

def _check_sde(sde):
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a refscore.sde.SDE (VESDE, VPSDE...), got {type(sde).__name__}")
    return sde


def _score(score_fn, x, t):
    return check_output(score_fn(x, t), x.shape, "score_fn")


def _corrector(score_fn, x, t, snr, bk, rng):
    r"""One Langevin corrector step :math:`x + \epsilon s + \sqrt{2\epsilon}z` with the step of
    :func:`corrector_step_size`, taken by the one Langevin move (:func:`refscore.diffusion.langevin_move`)."""
    s = _score(score_fn, x, t)
    z = bk.normal(rng, x.shape, x.dtype)
    return langevin_move(x, s, corrector_step_size(s, z, snr), z, reuse_noise=True)


def reverse_sde_sample(sde, score_fn, x1, rng, n_steps=1000, t_min=1e-3, corrector_steps=0, snr=0.16,
                       progress_bar=False, t_max=1.0, return_info=False):
    r"""Sample by integrating the reverse-time SDE from :math:`t_{\max}` (default 1) to
    :math:`t_{\min}` with Euler–Maruyama (the *predictor*), optionally followed at each time by
    Langevin corrector steps (Song et al. 2021, Alg. 1–3, "PC sampling").

    .. math:: x_{t-\Delta t} = x_t - [f(x_t,t) - g(t)^2 s(x_t,t)]\Delta t + g(t)\sqrt{\Delta t}\,z

    Corrector (our Langevin convention): :math:`x\leftarrow x + h s + \sqrt{2h}z` with
    :math:`h = 2(\mathrm{snr}\,\overline{\|z\|}/\overline{\|s\|})^2` (batch means of per-example
    norms, Song et al. 2021, Alg. 4; :func:`corrector_step_size`).
    ``x1`` are draws from the prior (``sde.prior_sample``). ``score_fn(x, t)`` must return
    ``(n, d)``; its first output is checked to be finite.

    A chain diverges when a coordinate becomes non-finite or exceeds
    :math:`R = 10^6\max(1, \max_{ij}|x^{(1)}_{ij}|)` (tracked on the device, read once at the end):
    some diverging warn, all raise ``FloatingPointError``. Returns ``x`` (n, d), or ``(x, info)``
    with ``return_info=True`` (``n_steps``, ``diverged`` (n,), ``n_diverged``).
    """
    _check_sde(sde)
    x1 = check_points(x1, name="x1")
    n_steps = check_positive_int(n_steps, "n_steps")
    corrector_steps = check_positive_int(corrector_steps, "corrector_steps", minimum=0)
    snr = check_positive(snr, "snr")
    t_min, t_max = check_time_interval(t_min, t_max)
    bk = backends.of(x1)
    bk.check_rng(rng)
    check_finite(_score(score_fn, x1, t_max), f"score_fn(x1, t={t_max})")
    watch = Divergence(x1, runaway_radius(x1), n_steps)
    ts = onp.linspace(t_max, t_min, n_steps + 1)  # host times: no device sync to read them
    checked = lambda y, s: _score(score_fn, y, s)  # noqa: E731  (the score, shape-checked)
    x = x1
    bar = progress(n_steps, "reverse SDE", progress_bar)
    for i in range(n_steps):
        t, dt = float(ts[i]), float(ts[i] - ts[i + 1])
        for _ in range(corrector_steps):
            x = _corrector(score_fn, x, t, snr, bk, rng)
        z = bk.normal(rng, x.shape, x.dtype)
        x = watch.update(reverse_sde_step(sde, x, t, dt, checked(x, t), z))
        bar.update()
    bar.close()
    info = sampler_info(n_steps, watch.bad)
    hint = "a zero score makes the corrector step infinite; " if corrector_steps else ""
    report_divergence(info, "reverse-SDE", hint + "check score_fn or raise n_steps")
    return (x, info) if return_info else x


class _GuardedRHS:
    """An ODE right-hand side on the host that refuses non-finite values (naming t and the first
    bad row) and more than ``max_evals`` evaluations, so SciPy can neither hang nor return NaN.

    ``fun(t, y)`` returns host arrays with one leading row per point (``(n, d)`` velocities,
    ``(n,)`` divergences); the guard checks them and returns them flattened for SciPy.
    """

    def __init__(self, fun, what, max_evals):
        self.fun, self.what, self.max_evals, self.nfev = fun, what, max_evals, 0

    def __call__(self, t, y):
        self.nfev += 1
        if self.nfev > self.max_evals:
            raise RuntimeError(f"{self.what}: more than max_evals={self.max_evals} right-hand-side evaluations "
                               f"(stopped at t={t:.6g}); the ODE is stiff or the score is rough: loosen "
                               "rtol/atol, raise t_min, or raise max_evals")
        parts = [onp.asarray(p, dtype=float) for p in self.fun(float(t), y)]
        bad = onp.zeros(parts[0].shape[0], dtype=bool)
        for p in parts:
            bad |= ~onp.isfinite(p.reshape(p.shape[0], -1)).all(axis=1)
        if bad.any():
            kind = "NaN" if any(onp.isnan(p).any() for p in parts) else "inf"
            raise ValueError(f"{self.what}: the right-hand side is non-finite ({kind}) at t={float(t):.6g}, "
                             f"first bad row {int(onp.argmax(bad))}; check score_fn at that time")
        return onp.concatenate([p.ravel() for p in parts])


def _solve_ode(fun, y0, t0, t1, rtol, atol):
    from scipy.integrate import solve_ivp

    sol = solve_ivp(fun, (t0, t1), y0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE solver failed at t={sol.t[-1]:.6g}: {sol.message}")
    return sol.y[:, -1]


def probability_flow_sample(sde, score_fn, x1, t_min=1e-3, rtol=1e-5, atol=1e-5, t_max=1.0, max_evals=50_000):
    r"""Deterministic sampling: integrate the probability-flow ODE (Song et al. 2021, eq. 13)

    .. math:: \frac{dx}{dt} = f(x,t) - \tfrac12 g(t)^2 s(x,t)

    from ``t_max`` (default 1) down to ``t_min`` (SciPy RK45, adaptive). The state crosses to the
    host at each evaluation (SciPy's integrator); there it is checked: a non-finite velocity stops
    with a ``ValueError`` naming t and the first bad row, more than ``max_evals`` evaluations with
    a ``RuntimeError``. ``score_fn(x, t)`` must return ``(n, d)``.
    """
    _check_sde(sde)
    x1 = check_points(x1, name="x1")
    t_min, t_max = check_time_interval(t_min, t_max)
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    max_evals = check_positive_int(max_evals, "max_evals")
    bk = backends.of(x1)
    n, d = x1.shape

    def velocity(t, y):
        x = bk.asarray(y.reshape(n, d), dtype=x1.dtype)
        return [bk.to_numpy(sde.ode_drift(lambda v, s: _score(score_fn, v, s), x, t))]

    rhs = _GuardedRHS(velocity, "probability-flow ODE", max_evals)
    y = _solve_ode(rhs, bk.to_numpy(x1).ravel(), t_max, t_min, rtol, atol)
    return bk.asarray(y.reshape(n, d), dtype=x1.dtype)


def _trace_fn(score_fn, v, chunk=None):
    r"""``(xt, t) -> (s, tr ∇s)``: exact (:func:`refscore.traces.jacobian_trace`, d reverse passes, or
    batched over ``chunk`` replicated rows), or Hutchinson's :math:`\frac1M\sum_m v_m^\top\nabla s\,v_m`
    with probes ``v`` (M, n, d) held fixed."""
    if v is None:
        return lambda xt, t: jacobian_trace(lambda y: score_fn(y, t), xt, chunk=chunk)

    return lambda xt, t: hutchinson_trace(lambda y: _score(score_fn, y, t), xt, v)


def log_likelihood(sde, score_fn, x, t_min=0.0, rng=None, n_projections=1, prior_log_prob=None,
                   rtol=1e-6, atol=1e-6, return_nfev=False, t_max=1.0, max_evals=50_000, trace_chunk=None,
                   per_row=False, threads=1, progress_bar=False):
    r"""Exact log-density :math:`\log p_0(x)` of every row by the instantaneous change of
    variables along the probability-flow ODE (Song et al. 2021, eq. 39; Chen et al. 2018):

    .. math:: \log p_0(x(0)) = \log p_1(x(1)) + \int_0^1 \nabla\cdot\tilde f(x(t),t)\,dt,\qquad
              \tilde f = f - \tfrac12 g^2 s

    :math:`\nabla\cdot\tilde f = \nabla\cdot f - \tfrac12 g^2\operatorname{tr}\nabla_x s`: the
    trace is exact (d reverse passes, :func:`refscore.losses.jacobian_trace`) unless ``rng`` is
    given, then Hutchinson's estimate with ``n_projections`` Gaussian probes held fixed along
    the path (FFJORD, Grathwohl et al. 2019); ``trace_chunk`` batches the exact trace's d passes
    over that many replicated rows (:func:`refscore.traces.jacobian_trace`). ``prior_log_prob`` replaces the SDE's prior at
    ``t_max`` (e.g. the exact :math:`p_1` in tests). Integrates from ``t_min`` (default 0) to
    ``t_max`` (default 1); a non-finite right-hand side stops with a ``ValueError`` naming t and
    the first bad row, more than ``max_evals`` evaluations with a ``RuntimeError``.

    ``per_row=True``: every row is integrated with its own steps and error test
    (:func:`refscore.sde.rowwise.solve_rows`), so a row's log-density does not depend on the rows
    beside it; ``threads`` splits the rows over threads (the same numbers); ``progress_bar`` shows
    the rows finished. ``score_fn`` is then
    called with an ``(n,)`` array of per-row times when it has a true attribute ``row_times``
    (:func:`refscore.diffusion.noise_conditional_score` of a model whose ``score_fn`` takes
    per-example levels), else once per distinct time with a float.

    Returns ``(n,)`` log-densities (and the number of ODE evaluations with ``return_nfev``: with
    ``per_row``, the calls of the right-hand side over all rows' batches).
    """
    _check_sde(sde)
    x = check_points(x)
    t_min, t_max = check_time_interval(t_min, t_max)
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    max_evals = check_positive_int(max_evals, "max_evals")
    if prior_log_prob is not None and not callable(prior_log_prob):
        raise TypeError(f"prior_log_prob must be callable (n, d) -> (n,), got {prior_log_prob!r}")
    n_projections = check_positive_int(n_projections, "n_projections")
    if trace_chunk is not None:
        trace_chunk = check_positive_int(trace_chunk, "trace_chunk")
    bk = backends.of(x)
    n, d = x.shape
    v = None
    if rng is not None:
        bk.check_rng(rng)
        v = bk.normal(rng, (n_projections, n, d), x.dtype)
    if per_row:
        threads = check_positive_int(threads, "threads")
        y1, calls = _rows_ode(sde, score_fn, x, v, trace_chunk, (t_min, t_max), rtol, atol, max_evals, threads,
                              progress_bar)
        x1, nfev = bk.asarray(y1[:, :d], dtype=x.dtype), calls
        logp_path = bk.asarray(y1[:, d], dtype=x.dtype)
    else:
        x1, logp_path, nfev = _joint_ode(sde, _trace_fn(score_fn, v, trace_chunk), x, t_min, t_max, rtol, atol,
                                         max_evals)
    prior = prior_log_prob or sde.prior_log_prob
    logp = check_output(prior(x1), (n,), "prior_log_prob") + logp_path
    return (logp, nfev) if return_nfev else logp


def _joint_ode(sde, score_and_trace, x, t_min, t_max, rtol, atol, max_evals):
    """All rows as one state vector of SciPy's RK45: (x(t_max), ∫ div, evaluations)."""
    bk = backends.of(x)
    n, d = x.shape

    def rhs(t, y):
        xt = bk.asarray(y[: n * d].reshape(n, d), dtype=x.dtype)
        s, tr = score_and_trace(xt, t)
        vel = sde.ode_drift(lambda *_: s, xt, t)  # the score at (xt, t), computed once with its trace
        div = sde.ode_drift_divergence(tr, d, t)
        return [bk.to_numpy(vel), bk.to_numpy(div + 0.0 * xt[:, 0])]

    guarded = _GuardedRHS(rhs, "log-likelihood ODE", max_evals)
    y0 = onp.concatenate([bk.to_numpy(x).ravel(), onp.zeros(n)])
    y1 = _solve_ode(guarded, y0, t_min, t_max, rtol, atol)
    return (bk.asarray(y1[: n * d].reshape(n, d), dtype=x.dtype), bk.asarray(y1[n * d:], dtype=x.dtype),
            guarded.nfev)


def _rows_ode(sde, score_fn, x, v, chunk, span, rtol, atol, max_evals, threads, bar):
    """Each row its own ODE (:func:`refscore.sde.rowwise.solve_rows`): ((n, d+1) at t_max, calls)."""
    bk = backends.of(x)
    d = x.shape[1]
    score_and_trace = _row_trace_fn(score_fn, v, chunk, bk, x.dtype)

    def rhs(t, y, rows):
        xt, tt = bk.asarray(y[:, :d], dtype=x.dtype), bk.asarray(t, dtype=x.dtype)
        s, tr = score_and_trace(xt, t, rows)
        vel = sde.ode_drift(lambda *_: s, xt, tt)  # the score at (xt, t), computed once with its trace
        div = sde.ode_drift_divergence(tr, d, tt)
        return onp.concatenate([bk.to_numpy(vel), bk.to_numpy(div + 0.0 * xt[:, 0])[:, None]], axis=1)

    y0 = onp.concatenate([bk.to_numpy(x), onp.zeros((x.shape[0], 1))], axis=1)
    y1, _, calls = solve_rows(rhs, y0, *span, rtol, atol, max_evals, threads, "log-likelihood ODE", bar)
    return y1, calls


def _row_trace_fn(score_fn, v, chunk, bk, dtype):
    r"""``(xt, t, rows) -> (s, tr ∇s)`` at per-row host times ``t``: one call with the times as an
    array when ``score_fn.row_times`` (and the trace is not the replicated exact one), else one call
    of :func:`_trace_fn` per distinct time, the rows put back in their order."""
    def at(rows):
        return _trace_fn(score_fn, None if v is None else v[:, bk.asarray(rows)], chunk)

    def score_and_trace(xt, t, rows):
        if getattr(score_fn, "row_times", False) and chunk is None:
            return at(rows)(xt, bk.asarray(t, dtype=dtype))
        times, group = onp.unique(t, return_inverse=True)
        parts = [(onp.flatnonzero(group == g), at(rows[group == g])) for g in range(len(times))]
        out = [(i, f(xt[bk.asarray(i)], float(tg))) for (i, f), tg in zip(parts, times)]
        order = bk.asarray(onp.argsort(onp.concatenate([i for i, _ in out])))
        s = bk.xp.concatenate([p[0] for _, p in out])[order]
        tr = bk.xp.concatenate([p[1] for _, p in out])[order]
        return s, tr

    return score_and_trace
