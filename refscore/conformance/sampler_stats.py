r"""Statistical exactness tests of a sampler step, each with a null distribution that holds
exactly (or by the central limit theorem over independent groups), from exact starts.

Chains start at exact draws :math:`x_0\sim\pi` (the law the mode leaves invariant, see
:meth:`~refscore.conformance.sampler_targets.SamplerTarget.law`) and run ``T`` steps forward; a
second run of ``T`` steps leaves the same :math:`x_0` ("backward": for a reversible kernel the
backward chain is the same kernel). The ``n`` chains are split into ``G`` groups, each run by
its own calls of the step with its own generator, so groups are independent whatever the step
does inside one call.

* ``moments`` (Geweke 2004, "getting it right"): :math:`\bar f` over every visited state against
  :math:`\mathbb E_\pi f`, standard error by batch means over the G independent groups; the
  studentised mean :math:`T` is corrected for the skewness :math:`\hat\gamma` of the group means
  by Hall's (1992) monotone transformation,
  :math:`T_H = T + \frac{\hat\gamma}{6\sqrt G}(1 + 2T^2) + \frac{\hat\gamma^2}{27G}T^3`, against
  :math:`t_{G-1}` (a plain t is anti-conservative far in the tail for skewed functions such as
  :math:`x_1^2x_2` on the banana).
* ``ranks vs exact draws`` (Talts et al. 2018, SBC): the rank of :math:`f(x_T)` among ``L`` fresh
  exact draws is uniform on :math:`\{0..L\}` when :math:`x_T\sim\pi`; :math:`\chi^2_L` on the counts.
* ``Gandy–Scott ranks`` (Gandy & Scott 2020, §3): with :math:`J\sim U\{0..T\}`, the path
  :math:`(x^{b}_J,\dots,x^b_1,x_0,x^f_1,\dots,x^f_{T-J})` has the law of a stationary chain
  whatever ``J``, for a :math:`\pi`-reversible kernel; so the rank of :math:`f(x_0)` in it (ties broken at
  random) is uniform on :math:`\{0..T\}`; :math:`\chi^2_T`.
* ``detailed balance``: for one step from stationarity, :math:`(x, x')\overset d=(x', x)`, so
  antisymmetric statistics :math:`a(x,x') = -a(x',x)` — :math:`f(x')-f(x)`,
  :math:`x_jx'_k - x'_jx_k`, :math:`x_jx'^2_j - x'_jx_j^2` — have laws symmetric about 0, and so
  has their sum along a forward path :math:`x_0\dots x_T` (a reversible chain's path reversed has
  the same law and negates the sum). The G groups' mean sums are independent and symmetric about 0:
  Wilcoxon's signed-rank test (exact null distribution; Wilcoxon 1945).
* ``independent chains``: the between-group variance of per-chain statistics (moves, :math:`x_T`)
  against the within-group variance, Fisher's :math:`F_{G-1,\,n-G}` (upper tail): chains that share a
  uniform or a noise draw inside one call are over-dispersed.

Within a test, Bonferroni over its functions: :math:`p = \min(1, m\,\min_j p_j)`.
"""
from __future__ import annotations

import numpy as onp
from scipy import stats

from .sampler_replay import position_of

__all__ = ["run_paths", "exactness_tests", "TESTS"]

TESTS = ("moments", "ranks vs exact draws", "Gandy–Scott ranks", "detailed balance", "independent chains")


def run_paths(step, target, law, h, n, groups, n_steps, rng, init=None):
    r"""Forward and backward paths ``(2, T+1, n, d)`` from the same exact starts :math:`x_0\sim` ``law``,
    the chains split into ``groups`` independent calls (each its own generator).

    .. math:: x^{f}_{t+1} = \mathrm{step}(x^f_t),\quad x^{b}_{t+1} = \mathrm{step}(x^b_t),\quad x^f_0 = x^b_0 = x_0\sim\pi
    """
    d, size = target.d, n // groups
    x0 = law.draw(rng, n)
    paths = onp.empty((2, n_steps + 1, n, d))
    paths[:, 0] = x0
    seeds = rng.integers(0, 2**63, size=(2, groups))
    with onp.errstate(all="ignore"):  # a faulty step may overflow: reported as divergence, not a warning
        _fill(paths, step, target, h, groups, size, n_steps, seeds, init)
    return paths


def _fill(paths, step, target, h, groups, size, n_steps, seeds, init):
    x0, d = paths[0, 0], target.d
    for way in range(2):
        for g in range(groups):
            sl = slice(g * size, (g + 1) * size)
            grng = onp.random.default_rng(int(seeds[way, g]))
            state = init(x0[sl].copy(), target) if init is not None else x0[sl].copy()
            for t in range(n_steps):
                state = step(state, h, grng, target)
                pos = position_of(state)
                if pos.shape != (size, d):
                    raise ValueError(f"the step returned positions of shape {pos.shape} for {size} chains in "
                                     f"{d} dimensions (target {target.name!r}, step {t + 1})")
                paths[way, t + 1, sl] = pos


def _bonferroni(p, names):
    p = onp.atleast_1d(onp.asarray(p, dtype=float))
    j = int(onp.nanargmin(p))
    return min(1.0, p.size * float(p[j])), names[j]


def _batch_t(values, names, expected=0.0):
    r"""values (G, m) independent group means -> Bonferroni p of the t-tests of mean = expected, each
    studentised mean corrected for the skewness of the group means (Hall 1992, the module docstring)."""
    g = values.shape[0]
    sd = values.std(axis=0, ddof=1)
    se = sd / onp.sqrt(g)
    t = (values.mean(axis=0) - expected) / onp.where(se > 0, se, onp.inf)
    gamma = onp.mean((values - values.mean(axis=0)) ** 3, axis=0) / onp.where(sd > 0, sd, 1.0) ** 3
    t = t + gamma / (6 * onp.sqrt(g)) * (1 + 2 * t * t) + gamma**2 / (27 * g) * t**3
    t = onp.where((se == 0) & (values.mean(axis=0) != expected), onp.inf, t)
    return _bonferroni(2 * stats.t.sf(onp.abs(t), g - 1), names) + (float(onp.max(onp.abs(t))),)


def _group_means(a, groups):
    r"""a (..., n, m) -> (G, m): the mean over everything but the chains, per group of chains."""
    n, m = a.shape[-2:]
    return a.reshape(-1, groups, n // groups, m).mean(axis=(0, 2))


def _chi2_ranks(ranks, n_bins, names):
    p = [stats.chisquare(onp.bincount(r, minlength=n_bins)).pvalue for r in ranks.T]
    return _bonferroni(p, names) + (None,)


def _rank_among(value, others, rng):
    r"""Rank of ``value`` (n, m) among ``others`` (n, L, m), ties broken uniformly at random."""
    below = onp.sum(others < value[:, None], axis=1)
    ties = onp.sum(others == value[:, None], axis=1)
    return below + onp.floor(rng.uniform(size=below.shape) * (ties + 1)).astype(int)


def _moments_test(f, law, groups):
    return _batch_t(_group_means(f[:, 1:], groups), law.moment_names, law.expected)


def _sbc_test(f, law, n_exact, rng):
    n = f.shape[2]
    fy = law.moments(law.draw(rng, n * n_exact)).reshape(n, n_exact, -1)
    return _chi2_ranks(_rank_among(f[0, -1], fy, rng), n_exact + 1, law.moment_names)


def _gandy_scott_test(f, law, rng):
    steps, n = f.shape[1] - 1, f.shape[2]
    seq = onp.concatenate([f[1, ::-1], f[0, 1:]], axis=0)  # (2T+1, n, m): x^b_T..x^b_1, x0, x^f_1..x^f_T
    j = rng.integers(0, steps + 1, size=n)
    idx = (steps - j)[None, :] + onp.arange(steps + 1)[:, None]  # window of T+1 states holding x0 at J
    full = onp.moveaxis(onp.take_along_axis(seq, idx[:, :, None], axis=0), 0, 1)  # (n, T+1, m); x0 at J
    keep = onp.arange(steps + 1)[None, :] != j[:, None]
    others = full[keep].reshape(n, steps, -1)
    return _chi2_ranks(_rank_among(f[0, 0], others, rng), steps + 1, law.moment_names)


def _pair_statistics(x, y, df, law):
    d = x.shape[-1]
    cols = [df]
    names = [f"E[{m}(x') − {m}(x)]" for m in law.moment_names]
    for j in range(d):
        cols.append((x[:, j] * y[:, j] ** 2 - y[:, j] * x[:, j] ** 2)[:, None])
        names.append(f"E[x{j + 1}·x{j + 1}'² − x{j + 1}'·x{j + 1}²]")
        for k in range(j + 1, d):
            cols.append((x[:, j] * y[:, k] - y[:, j] * x[:, k])[:, None])
            names.append(f"E[x{j + 1}·x{k + 1}' − x{j + 1}'·x{k + 1}]")
    return onp.concatenate(cols, 1), names


def _detailed_balance_test(paths, f, law, groups):
    _, t1, n, d = paths.shape
    x, y = paths[0, :-1].reshape(-1, d), paths[0, 1:].reshape(-1, d)  # the forward path's pairs
    a, names = _pair_statistics(x, y, (f[0, 1:] - f[0, :-1]).reshape(len(x), -1), law)
    means = _group_means(a.reshape(t1 - 1, n, -1), groups)  # (G, m): symmetric about 0 under the null
    return _signed_rank(means, names)


def _signed_rank(values, names):
    r"""values (G, m) independent, each symmetric about 0 under the null -> Bonferroni p of Wilcoxon's
    signed-rank tests (exact null law; a column of zeros, a step that never moves, gives p = 1)."""
    p = onp.ones(values.shape[1])
    live = onp.any(values != 0, axis=0)
    if live.any():
        p[live] = stats.wilcoxon(values[:, live], method="exact", axis=0).pvalue
    return _bonferroni(onp.nan_to_num(p, nan=1.0), names) + (None,)


def _independence_test(paths, groups):
    n = paths.shape[2]
    moves = onp.sum(onp.any(onp.diff(paths, axis=1) != 0, axis=-1), axis=(0, 1)).astype(float)
    stat = onp.column_stack([moves, paths[0, -1], onp.sum(paths[0, -1] ** 2, 1)])
    names = ["moves per chain"] + [f"x{j + 1} at T" for j in range(paths.shape[-1])] + ["|x|² at T"]
    by = stat.reshape(groups, n // groups, -1)
    within = by.var(axis=1, ddof=1).mean(axis=0)
    between = (n // groups) * by.mean(axis=1).var(axis=0, ddof=1)
    ok = within > 0
    p = onp.where(ok, stats.f.sf(between / onp.where(ok, within, 1.0), groups - 1, n - groups), onp.nan)
    if not ok.any():
        return 1.0, names[0], None
    return _bonferroni(p, names) + (None,)


def exactness_tests(paths, law, groups, rng, n_exact=9):
    r"""The five tests (module docstring) on ``paths`` (2, T+1, n, d): a dict
    ``test -> (p, worst function, |t| or None)``; ``{"finite positions": (0, ...)}`` when a chain
    diverged (:math:`|x| > R = 10^6\max(1, \max|x_0|)`, NaN included): it fails without further tests.

    .. math:: p_{\text{test}} = \min\big(1,\ m\min_j p_j\big)\quad(\text{Bonferroni over the test's } m \text{ functions})
    """
    radius = 1e6 * max(1.0, float(onp.max(onp.abs(paths[0, 0]))))  # refscore's divergence radius
    bad = ~onp.all(onp.abs(paths) <= radius, axis=(0, 2, 3))  # NaN included
    if bad.any():
        return {"finite positions": (0.0, f"diverged (|x| > {radius:.0e}) at step {int(onp.argmax(bad))}", None)}
    with onp.errstate(all="ignore"):
        return _all_tests(paths, law, groups, rng, n_exact)


def _all_tests(paths, law, groups, rng, n_exact):
    f = law.moments(paths.reshape(-1, paths.shape[-1])).reshape(paths.shape[:-1] + (-1,))  # (2, T+1, n, m)
    return {"moments": _moments_test(f, law, groups),
            "ranks vs exact draws": _sbc_test(f, law, n_exact, rng),
            "Gandy–Scott ranks": _gandy_scott_test(f, law, rng),
            "detailed balance": _detailed_balance_test(paths, f, law, groups),
            "independent chains": _independence_test(paths, groups)}
