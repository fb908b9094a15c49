r"""MCMC diagnostics on host arrays: effective sample size, split-R̂, acceptance summaries, the
sliced Wasserstein distance, and mode occupancy of samples from a mixture.

Chains are laid out as ``(n_steps, n_chains)`` or ``(n_steps, n_chains, d)`` (a trajectory from
``keep_every``). Formulas follow Gelman et al., *Bayesian Data Analysis* (3rd ed.), §11.4–11.5:
split-R̂ (eq. 11.4) and the ESS with Geyer's initial positive sequence (eq. 11.8).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as onp

from . import backends
from ._validation import check_positive, check_positive_int

__all__ = ["effective_sample_size", "split_rhat", "acceptance_summary", "sliced_wasserstein", "in_mode_share",
           "mode_weights"]


def _host(a):
    return backends.of(a).to_numpy(a) if not isinstance(a, onp.ndarray) else a


def _as_3d(chains, name="chains"):
    """(n_steps, n_chains[, d]) host float array; NaN/inf chains and stuck (constant) chains refused."""
    c = _host(chains)
    if getattr(c, "dtype", None) is not None and c.dtype.kind == "b" or isinstance(chains, (str, bytes)):
        raise TypeError(f"{name} must hold real numbers, got {chains!r:.80}")
    c = onp.asarray(c, dtype=float)
    if c.ndim == 2:
        c = c[:, :, None]
    if c.ndim != 3 or c.shape[0] < 4:
        raise ValueError(f"{name} must be (n_steps >= 4, n_chains[, d]), got shape {c.shape}")
    finite = onp.isfinite(c).all(axis=(0, 2))
    if not finite.all():
        raise ValueError(f"{name} contain NaN or inf (chain {int(onp.argmin(finite))} first); a diverged "
                         "chain has no effective sample size — drop it (see info['diverged'])")
    stuck = (c.max(axis=0) == c.min(axis=0)).all(axis=1)  # (m,) chains that never moved
    if stuck.any():
        raise ValueError(f"{int(stuck.sum())} of {c.shape[1]} {name} are stuck (constant over all "
                         f"{c.shape[0]} steps, chain {int(onp.argmax(stuck))} first): the sampler never "
                         "accepted a move; ESS and R-hat are undefined — reduce the step size")
    return c


def split_rhat(chains):
    r"""Split-:math:`\hat R` per dimension (BDA3 eq. 11.4): each chain is halved, then

    .. math:: \hat R = \sqrt{\frac{\tfrac{n-1}{n}W + \tfrac1n B}{W}}

    with :math:`W` the mean within-chain variance and :math:`B/n` the variance of chain means.
    Values near 1 (say < 1.01) indicate mixing. Returns ``(d,)``. Chains with NaN/inf, or stuck
    (constant) chains, are a ``ValueError`` saying which.
    """
    c = _as_3d(chains)
    n = c.shape[0] // 2
    halves = onp.concatenate([c[:n], c[n:2 * n]], axis=1)  # (n, 2m, d)
    means = halves.mean(0)
    W = halves.var(0, ddof=1).mean(0)
    B_over_n = means.var(0, ddof=1)
    var_plus = (n - 1) / n * W + B_over_n
    return onp.sqrt(var_plus / W)


def effective_sample_size(chains):
    r"""Effective sample size per dimension (BDA3 eq. 11.8):

    .. math:: \hat n_{\mathrm{eff}} = \frac{mn}{1 + 2\sum_{t=1}^{T}\hat\rho_t}

    with :math:`\hat\rho_t = 1 - \frac{V_t}{2\widehat{\mathrm{var}}^+}` from the variogram
    :math:`V_t` pooled over chains, truncated by Geyer's initial positive sequence (sums of
    adjacent pairs kept while positive). Returns ``(d,)``. Chains with NaN/inf, or stuck
    (constant) chains, are a ``ValueError`` saying which.
    """
    c = _as_3d(chains)
    n, m, d = c.shape
    W = c.var(0, ddof=1).mean(0)
    var_plus = (n - 1) / n * W + c.mean(0).var(0, ddof=1) if m > 1 else W
    # autocovariance by FFT, per chain and dimension
    x = c - c.mean(0)
    f = onp.fft.rfft(x, n=2 * n, axis=0)
    acov = onp.fft.irfft(f * onp.conj(f), axis=0)[:n] / n  # (n, m, d)
    acov_mean = acov.mean(1)  # (n, d)
    rho = 1.0 - (W - acov_mean) / var_plus  # (n, d)
    rho[0] = 1.0
    ess = onp.empty(d)
    for j in range(d):
        total, t = 0.0, 1
        while t + 1 < n:
            pair = rho[t, j] + rho[t + 1, j]
            if pair < 0:
                break
            total += pair
            t += 2
        ess[j] = m * n / (1.0 + 2.0 * total)
    return ess


def acceptance_summary(info):
    r"""Mean, min and max per-chain acceptance rate from a Metropolis sampler's ``info``,

    .. math:: \bar a_c = \frac1T\sum_{t=1}^T \mathbb 1[\text{step } t \text{ of chain } c \text{ accepted}]

    (Roberts & Rosenthal 1998 tune MALA to :math:`\bar a\approx0.574`, random walk to 0.234).
    Only Metropolis samplers (``mala``, ``rwmh``) accept or reject: the ``info`` of ``langevin``
    (ULA) or ``annealed_langevin`` has no ``acceptance_rate`` and is a ``ValueError`` saying so."""
    if not isinstance(info, Mapping):
        raise TypeError(f"info must be the record a sampler returns beside x, got {type(info).__name__}")
    if "acceptance_rate" not in info:
        raise ValueError("info has no 'acceptance_rate': only Metropolis samplers (mala, rwmh) accept or "
                         f"reject; langevin (ULA) never does. Its keys: {sorted(info)}")
    a = _host(info["acceptance_rate"])
    return {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()), "n_chains": int(a.size)}


def _sample_quantiles(values, n_q):
    """The ``n_q`` interior quantiles :math:`q_k=k/(n_q+1)` of each column, by one sort
    (O(n log n)), with NumPy's default linear interpolation between order statistics."""
    v = onp.sort(values, axis=0)  # (n, P)
    h = onp.linspace(0, 1, n_q + 2)[1:-1] * (v.shape[0] - 1)  # fractional ranks
    lo = onp.floor(h).astype(int)
    hi = onp.minimum(lo + 1, v.shape[0] - 1)
    w = (h - lo)[:, None]
    return v[lo] + w * (v[hi] - v[lo])  # (n_q, P)


def _check_sample(a, name):
    a = _host(a)
    if getattr(a, "ndim", None) != 2:
        raise ValueError(f"{name} must be an (n, d) array of points, got shape {getattr(a, 'shape', None)}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape}); need at least one point")
    a = onp.asarray(a, dtype=float)
    bad = ~onp.isfinite(a).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} contains NaN or inf in {int(bad.sum())} of {a.shape[0]} rows (row "
                         f"{int(onp.argmax(bad))} first); drop diverged samples first (see info['diverged'])")
    return a


def sliced_wasserstein(x, y, rng=None, n_projections=128):
    r"""Sliced 2-Wasserstein distance between two samples (Bonneel et al. 2015):

    .. math:: SW_2(x,y)^2 = \mathbb E_{\theta\sim U(S^{d-1})}\,W_2^2(\theta^\top x,\theta^\top y),
              \qquad W_2^2(u, v) \approx \frac1K\sum_{k=1}^K\big(F_u^{-1}(q_k)-F_v^{-1}(q_k)\big)^2

    with 1-D :math:`W_2` from sorted projections at :math:`K=\min(n,m)` quantile levels
    :math:`q_k=k/(K+1)` (linear interpolation between order statistics, as
    ``numpy.quantile``); one sort per sample, so
    :math:`O(n\log n)` per projection. Computed on the host; ``rng`` a NumPy Generator (default
    seed 0) for the directions. NaN/inf or empty samples are a ``ValueError``.
    """
    x, y = _check_sample(x, "x"), _check_sample(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, d) and (m, d) with the same d, got {x.shape} and {y.shape}")
    P = check_positive_int(n_projections, "n_projections")
    if rng is None:
        rng = onp.random.default_rng(0)
    if not isinstance(rng, onp.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {rng!r}")
    th = rng.standard_normal((x.shape[1], P))
    th /= onp.linalg.norm(th, axis=0)
    k = min(x.shape[0], y.shape[0])
    px, py = _sample_quantiles(x @ th, k), _sample_quantiles(y @ th, k)
    return float(onp.sqrt(onp.mean((px - py) ** 2)))


def in_mode_share(samples, means, std, k=3.0):
    r"""The share of samples within ``k`` standard deviations of their nearest mode: for a mixture
    of isotropic Gaussians :math:`\mathcal N(\mu_j, s^2 I)`,

    .. math:: \widehat P_{\text{in}} = \frac1n\sum_{i=1}^n \mathbb 1\big[\min_j\|x_i-\mu_j\| < k s\big],
              \qquad P_{\text{in}} = P(\chi^2_d < k^2) \ \text{for exact samples}

    when the modes are far apart (more than :math:`2ks`); in :math:`d = 2`,
    :math:`P(\chi^2_2 < k^2) = 1 - e^{-k^2/2}` (0.9889 for :math:`k = 3`), since
    :math:`\|x-\mu_j\|^2/s^2\sim\chi^2_d` (e.g. Johnson, Kotz & Balakrishnan, *Continuous
    Univariate Distributions* 1, ch. 18). A sampler that smears mass between the modes scores less.
    ``samples`` host ``(n, d)``, ``means`` ``(K, d)``, ``std`` the modes' :math:`s`. Returns a float.
    """
    x, mu = _check_points_and_means(samples, means)
    radius = check_positive(k, "k") * check_positive(std, "std")
    return float(onp.mean(_nearest_mode(x, mu)[1] < radius))


def mode_weights(samples, means):
    r"""The share of samples whose nearest mode is :math:`\mu_j`, for each mode :math:`j`:

    .. math:: \hat w_j = \frac1n\sum_{i=1}^n \mathbb 1\big[\arg\min_l\|x_i-\mu_l\| = j\big]

    an estimate of the mixture weight :math:`w_j` when the modes are well separated (each
    :math:`\hat w_j` has binomial standard error :math:`\sqrt{w_j(1-w_j)/n}`). ``samples`` host
    ``(n, d)``, ``means`` ``(K, d)``. Returns ``(K,)`` summing to one.
    """
    x, mu = _check_points_and_means(samples, means)
    return onp.bincount(_nearest_mode(x, mu)[0], minlength=mu.shape[0]) / x.shape[0]


def _nearest_mode(x, mu):
    """Index ``(n,)`` and distance ``(n,)`` of each row's nearest mean."""
    d2 = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(-1)  # (n, K)
    j = d2.argmin(1)
    return j, onp.sqrt(d2[onp.arange(x.shape[0]), j])


def _check_points_and_means(samples, means):
    x, mu = _check_sample(samples, "samples"), _check_sample(means, "means")
    if x.shape[1] != mu.shape[1]:
        raise ValueError(f"samples (n, d) and means (K, d) need the same d, got {x.shape} and {mu.shape}")
    return x, mu
