r"""An adaptive Runge–Kutta solver that controls the error of every row on its own, so that a row's
solution does not depend on which rows share its batch (issue 36, item 3).

SciPy's ``solve_ivp`` integrates a batch as one state vector: its error norm mixes the rows, so one
hard row sets every row's steps, and a row's answer moves (at the tolerance) with its company. Here
each row ``i`` has its own time :math:`t_i`, step :math:`h_i` and error test, while the right-hand
side is still evaluated for all unfinished rows at once (each at its own time). The method is
Dormand & Prince's embedded 5(4) pair (Dormand & Prince 1980, Table 2; Hairer, Nørsett & Wanner
1993, §II.5, Table 5.2), with the fifth-order solution kept, first same as last:

.. math:: y_{n+1} = y_n + h\sum_{j=1}^{6} b_j k_j,\qquad
          \mathrm{err}_i = \sqrt{\frac1m\sum_{c=1}^{m}\Big(\frac{h\sum_{j=1}^{7} e_j k_{j,ic}}
          {\mathrm{atol} + \mathrm{rtol}\max(|y_{n,ic}|, |y_{n+1,ic}|)}\Big)^2}

A row's step is accepted when :math:`\mathrm{err}_i \le 1`; its next step is
:math:`h_i\min(10, \max(0.2, 0.9\,\mathrm{err}_i^{-1/5}))` (no growth right after a rejection;
Hairer et al. 1993, §II.4, eq. 4.13), and its first step follows their starting-step rule (§II.4).

Every quantity of a row is computed from that row's numbers only, by elementwise operations and
sums along the row, so for a right-hand side whose rows do not interact the result of a row is the
same, bit for bit, whatever rows share its batch, in any order (``tests/test_rowwise.py``). Rows
may be split over threads (``threads``): they are independent, so the split changes nothing.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as onp

from .._progress import progress
from .._validation import check_positive, check_positive_int

__all__ = ["solve_rows"]

# Dormand & Prince (1980), Table 2: nodes, stages, fifth-order weights, and the fifth- minus
# fourth-order weights (the error estimate)
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = ((),
      (1 / 5,),
      (3 / 40, 9 / 40),
      (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)
_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


def _rms(a):
    return onp.sqrt(onp.mean(a * a, axis=1))


def _combine(y, h, coeffs, ks):
    """y + h Σ_j coeffs[j] k_j, summed in a fixed order (the same rounding for every row)."""
    acc = onp.zeros_like(y)
    for c, k in zip(coeffs, ks):
        if c != 0.0:
            acc = acc + c * k
    return y + h[:, None] * acc


class _Rows:
    """The right-hand side of some rows, checked: finite values and at most ``max_evals`` evaluations
    a row; errors name the row (its index in the caller's batch) and its time."""

    def __init__(self, fun, rows, what, max_evals):
        self.fun, self.rows, self.what, self.max_evals = fun, rows, what, max_evals
        self.count = onp.zeros(len(rows), dtype=int)
        self.calls = 0

    def __call__(self, idx, t, y):
        self.calls += 1
        self.count[idx] += 1
        if self.count[idx].max() > self.max_evals:
            bad = idx[int(onp.argmax(self.count[idx]))]
            raise RuntimeError(f"{self.what}: more than max_evals={self.max_evals} right-hand-side evaluations for "
                               f"row {int(self.rows[bad])} (stopped at t={float(t[idx == bad][0]):.6g}); the ODE "
                               "is stiff or the score is rough there: loosen rtol/atol, raise t_min, or raise max_evals")
        k = onp.asarray(self.fun(t, y, self.rows[idx]), dtype=float)
        if k.shape != y.shape:
            raise ValueError(f"{self.what}: the right-hand side returned shape {k.shape} for {y.shape}")
        bad = ~onp.isfinite(k).all(axis=1)
        if bad.any():
            j = int(onp.argmax(bad))
            kind = "NaN" if onp.isnan(k[j]).any() else "inf"
            raise ValueError(f"{self.what}: the right-hand side is non-finite ({kind}) at t={float(t[j]):.6g} for row "
                             f"{int(self.rows[idx[j]])}; check score_fn at that time")
        return k


def _first_step(rhs, idx, t0, y0, k0, t1, rtol, atol):
    """Hairer, Nørsett & Wanner (1993), §II.4, "starting step size", per row (order 5)."""
    span, sign = abs(t1 - t0), (1.0 if t1 > t0 else -1.0)
    scale = atol + rtol * onp.abs(y0)
    d0, d1 = _rms(y0 / scale), _rms(k0 / scale)
    h0 = onp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / onp.where(d1 > 0, d1, 1.0))
    h0 = onp.minimum(h0, span)
    k1 = rhs(idx, t0 + sign * h0, y0 + (sign * h0)[:, None] * k0)
    d2 = _rms((k1 - k0) / scale) / h0
    dm = onp.maximum(d1, d2)
    h1 = onp.where(dm <= 1e-15, onp.maximum(1e-6, h0 * 1e-3), (0.01 / onp.where(dm > 0, dm, 1.0)) ** 0.2)
    return onp.minimum(onp.minimum(100 * h0, h1), span)


def _attempt(rhs, idx, t, y, k1, h):
    """One Dormand–Prince step of rows ``idx`` from (t, y) with signed steps h: (y_new, k7, err)."""
    ks = [k1]
    for j in range(1, 7):
        ks.append(rhs(idx, t + _C[j] * h, _combine(y, h, _A[j], ks)))
    y_new = _combine(y, h, _A[6], ks)  # the fifth-order solution; ks[6] = f(t + h, y_new)
    err = _combine(onp.zeros_like(y), h, _E, ks)
    return y_new, ks[6], err


class _SharedBar:
    """A progress bar over finished rows, updated from the threads of the blocks."""

    def __init__(self, n, what, enabled):
        self.bar, self.lock = progress(n, f"{what}, rows done", enabled), threading.Lock()

    def update(self, k):
        if k:
            with self.lock:
                self.bar.update(k)


def _solve_block(fun, y0, t0, t1, rtol, atol, max_evals, what, rows, bar):
    n = len(y0)
    rhs = _Rows(fun, rows, what, max_evals)
    sign = 1.0 if t1 > t0 else -1.0
    all_rows = onp.arange(n)
    y, t = y0.astype(float).copy(), onp.full(n, float(t0))
    k = rhs(all_rows, t, y)
    h = sign * _first_step(rhs, all_rows, float(t0), y, k, float(t1), rtol, atol)
    just_rejected = onp.zeros(n, dtype=bool)
    live = onp.ones(n, dtype=bool)
    while live.any():
        idx = onp.flatnonzero(live)
        ti, yi, hi = t[idx], y[idx], h[idx]
        last = sign * (ti + hi - t1) >= 0  # this step would reach t1: take it exactly there
        hi = onp.where(last, t1 - ti, hi)
        tiny = onp.abs(hi) < 10 * onp.spacing(onp.abs(ti))
        if tiny.any():
            raise RuntimeError(f"{what}: the step size of row {int(rows[idx[tiny][0]])} fell below round-off at "
                               f"t={float(ti[tiny][0]):.6g}; the ODE is stiff or the score is rough there")
        y_new, k_new, err = _attempt(rhs, idx, ti, yi, k[idx], hi)
        norm = _rms(err / (atol + rtol * onp.maximum(onp.abs(yi), onp.abs(y_new))))
        ok = norm <= 1.0
        with onp.errstate(divide="ignore"):
            grow = onp.where(norm == 0, _MAX_FACTOR, _SAFETY * norm ** -0.2)
        factor = onp.where(ok, onp.minimum(_MAX_FACTOR, grow), onp.maximum(_MIN_FACTOR, onp.minimum(1.0, grow)))
        factor = onp.where(ok & just_rejected[idx], onp.minimum(1.0, factor), factor)
        acc = idx[ok]
        t[acc] = onp.where(last[ok], t1, ti[ok] + hi[ok])
        y[acc], k[acc] = y_new[ok], k_new[ok]
        live[acc[last[ok]]] = False
        bar.update(int(onp.count_nonzero(last[ok])))
        h[idx] = hi * factor
        just_rejected[idx] = ~ok
    return y, rhs.count, rhs.calls


def solve_rows(fun, y0, t0, t1, rtol=1e-6, atol=1e-6, max_evals=50_000, threads=1, what="ODE", progress_bar=False):
    r"""Integrate :math:`dy_i/dt = f_i(t_i, y_i)` for every row ``i`` of ``y0`` (n, m) from ``t0`` to
    ``t1`` (either direction) with Dormand–Prince 5(4) and per-row error control (module docstring).

    .. math:: y_i(t_1) = y_i(t_0) + \int_{t_0}^{t_1} f_i\big(t, y_i(t)\big)\,dt,\qquad
              \mathrm{err}_i \le 1 \text{ at every accepted step of row } i

    Parameters
    ----------
    fun : ``fun(t, y, rows) -> (k, m)``: the right-hand side of ``k`` rows at once, ``t`` (k,) their
        own times, ``y`` (k, m), ``rows`` (k,) their indices in ``y0``; host float arrays. Its rows
        must not interact (row ``i`` of the output depends on row ``i`` of the input only).
    y0 : (n, m) initial values; t0, t1 : the interval
    rtol, atol : tolerances of each row's error test; max_evals : evaluations allowed per row
    threads : split the rows into this many blocks solved on threads (the same results)
    what : the name used in error messages and on the progress bar
    progress_bar : a bar over the rows finished (long exact-trace runs)

    Returns
    -------
    y1 : (n, m) the solution at ``t1``; nfev : (n,) right-hand-side evaluations of each row;
    calls : number of calls of ``fun`` (what the batch costs)
    """
    y0 = onp.asarray(y0, dtype=float)
    if y0.ndim != 2 or y0.shape[0] == 0:
        raise ValueError(f"y0 must be (n, m) with n >= 1, got shape {y0.shape}")
    rtol, atol = check_positive(rtol, "rtol"), check_positive(atol, "atol")
    max_evals, threads = check_positive_int(max_evals, "max_evals"), check_positive_int(threads, "threads")
    t0, t1 = float(t0), float(t1)
    if t0 == t1:
        return y0.copy(), onp.zeros(len(y0), dtype=int), 0
    blocks = onp.array_split(onp.arange(len(y0)), min(threads, len(y0)))
    bar = _SharedBar(len(y0), what, progress_bar)
    run = lambda rows: _solve_block(fun, y0[rows], t0, t1, rtol, atol, max_evals, what, rows, bar)  # noqa: E731
    try:
        if len(blocks) == 1:
            parts = [run(blocks[0])]
        else:
            with ThreadPoolExecutor(len(blocks)) as pool:
                parts = list(pool.map(run, blocks))
    finally:
        bar.bar.close()
    return (onp.concatenate([p[0] for p in parts]), onp.concatenate([p[1] for p in parts]),
            sum(p[2] for p in parts))
