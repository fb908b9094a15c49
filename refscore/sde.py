r"""The diffusion view: forward SDEs, the reverse-time SDE, the probability-flow ODE, and
exact log-likelihoods (Song et al. 2021, "Score-Based Generative Modeling through SDEs";
seeds ``000_…``/``001_…``: "Sampling requires solving the reverse SDE", "Calculate
log-likelihoods exactly").

Forward SDE :math:`dx = f(x,t)\,dt + g(t)\,dw` on :math:`t\in[0,1]`; reverse-time SDE (Song et al.
2021, eq. 6) :math:`dx = [f - g^2\nabla_x\log p_t(x)]\,dt + g\,d\bar w`; probability-flow ODE
(eq. 13) :math:`dx/dt = f - \tfrac12 g^2\nabla_x\log p_t(x)`. Here ``score_fn(x, t)`` takes
``t`` as a Python float.
"""
from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as onp

from . import backends
from ._math import LOG_2PI, sqnorm
from ._progress import progress
from ._validation import check_points, check_positive, check_positive_int, hot_loop
from .losses import jacobian_trace

__all__ = ["VESDE", "VPSDE", "reverse_sde_sample", "probability_flow_sample", "log_likelihood"]


class _SDE:
    def marginal_prob(self, x0, t):
        r"""Mean and standard deviation of :math:`p_{0t}(x_t\mid x_0)`: ``(mean (n, d), std float)``."""
        m, v = self._mv(t)
        return m * x0, math.sqrt(v)

    def perturb(self, x0, t, rng):
        """Draw :math:`x_t \\sim p_{0t}(\\cdot\\mid x_0)`."""
        mean, std = self.marginal_prob(x0, t)
        return mean + std * backends.of(x0).normal(rng, x0.shape, x0.dtype)

    def reverse_drift(self, score_fn, x, t):
        r"""Drift of the reverse-time SDE, :math:`f(x,t) - g(t)^2 s(x,t)` (Song et al. 2021, eq. 6)."""
        return self.drift(x, t) - self.diffusion(t) ** 2 * score_fn(x, t)

    def ode_drift(self, score_fn, x, t):
        r"""Probability-flow ODE velocity :math:`f - \tfrac12 g^2 s` (Song et al. 2021, eq. 13)."""
        return self.drift(x, t) - 0.5 * self.diffusion(t) ** 2 * score_fn(x, t)


class VESDE(_SDE):
    r"""Variance-exploding SDE (Song et al. 2021, eq. 9; NCSN in continuous time):

    .. math:: \sigma(t)=\sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t,\quad f=0,\quad
              g(t)=\sigma(t)\sqrt{2\log(\sigma_{\max}/\sigma_{\min})}

    so :math:`x_t = x_0 + \sqrt{\sigma(t)^2-\sigma_{\min}^2}\,z` exactly (the noise added from 0
    to t). Prior at t = 1: :math:`\mathcal N(0,\sigma_{\max}^2 I)`.
    """

    def __init__(self, sigma_min=0.01, sigma_max=50.0):
        self.sigma_min, self.sigma_max = check_positive(sigma_min, "sigma_min"), check_positive(sigma_max, "sigma_max")
        if not self.sigma_max > self.sigma_min:
            raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_max} <= {sigma_min}")
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x, t):
        return 0.0 * x

    def diffusion(self, t):
        return self.sigma(t) * math.sqrt(2 * self._log_ratio)

    def drift_divergence(self, d, t):
        return 0.0

    def _mv(self, t):
        return 1.0, self.sigma(t) ** 2 - self.sigma_min**2

    def prior_sample(self, n, d, rng, backend=None):
        bk = backends.get(backend) if backend is not None else backends.of_rng(rng)
        return self.sigma_max * bk.normal(rng, (n, d))

    def prior_log_prob(self, x):
        d = x.shape[1]
        return -0.5 * d * (LOG_2PI + 2 * math.log(self.sigma_max)) - 0.5 * sqnorm(x) / self.sigma_max**2


class VPSDE(_SDE):
    r"""Variance-preserving SDE (Song et al. 2021, eq. 11; DDPM in continuous time):

    .. math:: \beta(t)=\beta_{\min}+t(\beta_{\max}-\beta_{\min}),\quad f=-\tfrac12\beta(t)x,\quad
              g=\sqrt{\beta(t)}

    with marginal :math:`x_t=e^{-B(t)/2}x_0+\sqrt{1-e^{-B(t)}}\,\varepsilon`,
    :math:`B(t)=\int_0^t\beta`. One step of it is seed 003_…, eq. 11.5 with
    :math:`\beta\to1-e^{-B}`. Prior at t = 1: :math:`\mathcal N(0,I)`.
    """

    def __init__(self, beta_min=0.1, beta_max=20.0):
        self.beta_min, self.beta_max = check_positive(beta_min, "beta_min"), check_positive(beta_max, "beta_max")
        if not self.beta_max >= self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got {beta_max} < {beta_min}")

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _B(self, t):
        return self.beta_min * t + 0.5 * t * t * (self.beta_max - self.beta_min)

    def drift(self, x, t):
        return -0.5 * self.beta(t) * x

    def diffusion(self, t):
        return math.sqrt(self.beta(t))

    def drift_divergence(self, d, t):
        return -0.5 * self.beta(t) * d

    def _mv(self, t):
        B = self._B(t)
        return math.exp(-0.5 * B), -math.expm1(-B)

    def prior_sample(self, n, d, rng, backend=None):
        bk = backends.get(backend) if backend is not None else backends.of_rng(rng)
        return bk.normal(rng, (n, d))

    def prior_log_prob(self, x):
        return -0.5 * x.shape[1] * LOG_2PI - 0.5 * sqnorm(x)


def reverse_sde_sample(sde, score_fn, x1, rng, n_steps=1000, t_min=1e-3, corrector_steps=0, snr=0.16,
                       progress_bar=False):
    r"""Sample by integrating the reverse-time SDE from :math:`t=1` to :math:`t_{\min}` with
    Euler–Maruyama (the *predictor*), optionally followed at each time by Langevin corrector
    steps (Song et al. 2021, Alg. 1–3, "PC sampling").

    .. math:: x_{t-\Delta t} = x_t - [f(x_t,t) - g(t)^2 s(x_t,t)]\Delta t + g(t)\sqrt{\Delta t}\,z

    Corrector (our Langevin convention): :math:`x\leftarrow x + h s + \sqrt{2h}z` with
    :math:`h = (\mathrm{snr}\,\|z\|/\|s\|)^2` (batch-averaged norms, Song et al. 2021, Alg. 4).
    ``x1`` are draws from the prior (``sde.prior_sample``).
    """
    check_points(x1, name="x1")
    n_steps = check_positive_int(n_steps, "n_steps")
    bk = backends.of(x1)
    bk.check_rng(rng)
    ts = onp.linspace(1.0, t_min, n_steps + 1)
    x = x1
    bar = progress(n_steps, "reverse SDE", progress_bar)
    with hot_loop():
        for i in range(n_steps):
            t, dt = float(ts[i]), float(ts[i] - ts[i + 1])
            for _ in range(corrector_steps):
                s = score_fn(x, t)
                z = bk.normal(rng, x.shape, x.dtype)
                h = (snr * anp.sqrt(anp.mean(sqnorm(z))) / anp.sqrt(anp.mean(sqnorm(s)))) ** 2
                x = x + h * s + anp.sqrt(2 * h) * z
            z = bk.normal(rng, x.shape, x.dtype)
            x = x - sde.reverse_drift(score_fn, x, t) * dt + sde.diffusion(t) * math.sqrt(dt) * z
            bar.update()
    bar.close()
    return x


def _solve_ode(fun, y0, t0, t1, rtol, atol):
    from scipy.integrate import solve_ivp

    sol = solve_ivp(fun, (t0, t1), y0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"probability-flow ODE solver failed: {sol.message}")
    return sol.y[:, -1], sol.nfev


def probability_flow_sample(sde, score_fn, x1, t_min=1e-3, rtol=1e-5, atol=1e-5):
    r"""Deterministic sampling: integrate the probability-flow ODE
    :math:`dx/dt = f - \tfrac12 g^2 s(x,t)` from t = 1 to ``t_min`` (SciPy RK45, adaptive).
    The state crosses to the host at each solver evaluation (SciPy's integrator)."""
    check_points(x1, name="x1")
    bk = backends.of(x1)
    n, d = x1.shape

    def fun(t, y):
        x = bk.asarray(y.reshape(n, d), dtype=x1.dtype)  # the score runs in the input's dtype
        return bk.to_numpy(sde.ode_drift(score_fn, x, float(t))).ravel()

    with hot_loop():
        y, _ = _solve_ode(fun, bk.to_numpy(x1).ravel(), 1.0, t_min, rtol, atol)
    return bk.asarray(y.reshape(n, d), dtype=x1.dtype)


def log_likelihood(sde, score_fn, x, t_min=0.0, rng=None, n_projections=1, prior_log_prob=None,
                   rtol=1e-6, atol=1e-6, return_nfev=False):
    r"""Exact log-density :math:`\log p_0(x)` of every row by the instantaneous change of
    variables along the probability-flow ODE (Song et al. 2021, eq. 39; Chen et al. 2018):

    .. math:: \log p_0(x(0)) = \log p_1(x(1)) + \int_0^1 \nabla\cdot\tilde f(x(t),t)\,dt,\qquad
              \tilde f = f - \tfrac12 g^2 s

    :math:`\nabla\cdot\tilde f = \nabla\cdot f - \tfrac12 g^2\operatorname{tr}\nabla_x s`: the
    trace is exact (d reverse passes, :func:`refscore.losses.jacobian_trace`) unless ``rng`` is
    given, then Hutchinson's estimate with ``n_projections`` Gaussian probes held fixed along
    the path (FFJORD, Grathwohl et al. 2019). ``prior_log_prob`` replaces the SDE's prior at
    t = 1 (e.g. the exact :math:`p_1` in tests).

    Returns ``(n,)`` log-densities (and the number of ODE evaluations with ``return_nfev``).
    """
    check_points(x)
    bk = backends.of(x)
    n, d = x.shape
    prior = prior_log_prob or sde.prior_log_prob
    v = None
    if rng is not None:
        bk.check_rng(rng)
        v = bk.normal(rng, (check_positive_int(n_projections, "n_projections"), n, d), x.dtype)

    def div_and_velocity(xt, t):
        if v is None:
            s, tr = jacobian_trace(lambda y: score_fn(y, t), xt)
        else:
            from autograd import make_vjp

            vjp, s = make_vjp(lambda y: score_fn(y, t))(xt)
            tr = sum(anp.sum(vjp(vm) * vm, axis=1) for vm in v) / v.shape[0]
        g2 = sde.diffusion(t) ** 2
        vel = sde.drift(xt, t) - 0.5 * g2 * s
        return sde.drift_divergence(d, t) - 0.5 * g2 * tr, vel

    def fun(t, y):
        xt = bk.asarray(y[: n * d].reshape(n, d))
        div, vel = div_and_velocity(xt, float(t))
        return onp.concatenate([bk.to_numpy(vel).ravel(), bk.to_numpy(div + 0.0 * xt[:, 0])])

    with hot_loop():
        y0 = onp.concatenate([bk.to_numpy(x).ravel(), onp.zeros(n)])
        y1, nfev = _solve_ode(fun, y0, t_min, 1.0, rtol, atol)
    x1 = bk.asarray(y1[: n * d].reshape(n, d))
    logp = prior(x1) + bk.asarray(y1[n * d:])
    return (logp, nfev) if return_nfev else logp
