r"""Forward SDEs on :math:`t\in[0,1]` (Song et al. 2021, §3 and Appendix B): the contract
(:class:`SDE`), the variance-exploding and variance-preserving processes, and the law of
Gaussian / mixture data at time t (:func:`marginal_law`).

Every method takes ``t`` as a Python scalar **or** an ``(n,)`` array, one time per row of ``x``;
coefficients are then ``(n,)`` arrays and multiply the rows of ``x``. Scalar times are checked
to be finite reals; array times are checked for shape only (reading their values would cost a
host synchronisation on a GPU).
"""
from __future__ import annotations

import abc
import math
import numbers

import numpy as onp

from autograd.tracer import getval

from .. import backends
from .._math import LOG_2PI, sqnorm
from .._validation import (as_float_array, check_coefficient, check_examples, check_output, check_points,
                           check_positive, check_positive_int, check_real, check_whole_number)
from ..diffusion.parametrisation import per_example as per_row  # the one per-example helper (old name kept)
from ..diffusion.processes import (ops, ve_discretize, ve_marginal_coeffs, vp_discretize,  # noqa: F401  (ops: old path)
                                   vp_marginal_coeffs, vp_step_rate)

__all__ = ["SDE", "VESDE", "VPSDE", "marginal_law"]


def as_time(t, x=None):
    """``t`` as a Python float in [0, 1], or as a float array of shape ``()`` or ``(n,)`` matching
    ``x`` (values in [0, 1] checked where the array is on the host: no device sync)."""
    if isinstance(t, (bool, str, bytes)) or (not isinstance(t, numbers.Real) and not hasattr(t, "shape")):
        raise TypeError(f"t must be a real number or an (n,) array of times, got {t!r}")
    if isinstance(t, numbers.Real):
        return _in_horizon(check_real(t, "t"), None)
    t = as_float_array(t, "t")
    shape = tuple(getval(t).shape)
    n = None if x is None else getval(x).shape[0]
    if len(shape) > 1 or (len(shape) == 1 and n is not None and shape[0] != n):
        want = "a scalar or shape (n,)" if n is None else f"a scalar or shape ({n},), one time per row of x"
        raise ValueError(f"t must be {want}, got shape {shape}")
    tv = getval(t)
    if backends.of(tv).host_memory:
        outside = onp.flatnonzero(~((tv >= 0.0) & (tv <= 1.0)))
        if outside.size:
            _in_horizon(float(tv.reshape(-1)[outside[0]]), int(outside[0]))
    return t


def _score(score_fn, x, t):
    """``score_fn(x, t)``, which must be callable and return x's shape (never a broadcast (1, d) score)."""
    if not callable(score_fn):
        raise TypeError(f"score_fn must be a callable score_fn(x, t), got {type(score_fn).__name__}")
    return check_output(score_fn(x, t), getval(x).shape, "score_fn")


def _in_horizon(t, index):
    """``t`` if 0 <= t <= 1, else a ValueError showing it (the SDEs live on t in [0, 1])."""
    if not 0.0 <= t <= 1.0:
        where = "" if index is None else f" (entry {index})"
        raise ValueError(f"t must lie in [0, 1], the SDE's time horizon (Song et al. 2021), got {t!r}{where}")
    return t


class SDE(abc.ABC):
    r"""A forward SDE :math:`dx = f(x,t)\,dt + g(t)\,dw` on :math:`t\in[0,1]` (Song et al. 2021,
    eq. 5) with an affine Gaussian transition kernel

    .. math:: x_t = a(t)\,x_0 + s(t)\,z,\qquad z\sim\mathcal N(0,I)

    (Appendix B: VE has :math:`a=1`, VP has :math:`a^2+s^2=1`). Its reverse-time SDE (eq. 6)

    .. math:: dx = [f(x,t) - g(t)^2\nabla_x\log p_t(x)]\,dt + g(t)\,d\bar w

    and probability-flow ODE (eq. 13) :math:`dx/dt = f - \tfrac12 g^2\nabla_x\log p_t(x)` share
    its marginals :math:`p_t`. Subclasses implement :meth:`drift`, :meth:`diffusion`,
    :meth:`drift_divergence`, :meth:`marginal_coeffs`, :meth:`prior_sample`, :meth:`prior_log_prob`.
    """

    @abc.abstractmethod
    def drift(self, x, t):
        r""":math:`f(x, t)`, shape ``(n, d)``."""

    @abc.abstractmethod
    def diffusion(self, t):
        r""":math:`g(t)`: a float, or ``(n,)`` for per-row ``t``."""

    @abc.abstractmethod
    def drift_divergence(self, d, t):
        r""":math:`\nabla_x\cdot f(x,t)` (f is linear in x here, so it depends on ``d`` and ``t`` only)."""

    @abc.abstractmethod
    def marginal_coeffs(self, t):
        r"""``(a, s)`` with :math:`x_t = a(t)x_0 + s(t)z`: floats, or ``(n,)`` arrays for per-row ``t``."""

    @abc.abstractmethod
    def prior_sample(self, n, d, rng, backend=None):
        r"""``(n, d)`` draws from the prior :math:`p_1`."""

    @abc.abstractmethod
    def prior_log_prob(self, x):
        r""":math:`\log p_1(x)` of each row, ``(n,)``."""

    def discretize(self, x, t, t_prev):
        r"""The forward step from ``t_prev`` up to ``t`` as :math:`x_t = x_{t_{prev}} + f + G z`
        (Song et al. 2021, Appendix E, eq. 45; score_sde's ``SDE.discretize``): here Euler–Maruyama,

        .. math:: f = f(x, t)\,\Delta t,\qquad G = g(t)\sqrt{\Delta t},\qquad \Delta t = t - t_{prev}

        (VE and VP override it with their exact steps, eqs. 46–47). ``t``, ``t_prev`` floats or
        (n,) arrays. Returns ``(f, G)``: ``f`` like ``x``, ``G`` a float or (n,).
        """
        t, t_prev = as_time(t, x), as_time(t_prev, x)
        dt = check_coefficient(t - t_prev, "t - t_prev (the forward step goes up: t >= t_prev)", closed=True)
        return self.drift(x, t) * per_row(dt, x), self.diffusion(t) * ops(dt).sqrt(dt)

    def noise_level(self, t):
        r"""``(a, σ)`` with :math:`x_t = a(t)\,(x_0 + \sigma(t) z)`: the process as a VE one scaled by
        :math:`a` (Karras et al. 2022, eq. 4 and Table 1), so a noise-conditional model
        :math:`s_\theta(x,\sigma)` gives its score (:func:`refscore.diffusion.noise_conditional_score`).

        .. math:: \sigma(t) = s(t)/a(t)
        """
        a, s = self.marginal_coeffs(as_time(t))
        return a, s / a

    def marginal_prob(self, x0, t):
        r"""Mean and standard deviation of :math:`p_{0t}(x_t\mid x_0)=\mathcal N(a x_0, s^2 I)`:
        ``(mean (n, d), std)``, ``std`` a float or ``(n,)`` for per-row ``t``."""
        x0 = check_examples(x0, "x0")
        a, s = self.marginal_coeffs(as_time(t, x0))
        return per_row(a, x0) * x0, s

    def reverse_drift(self, score_fn, x, t):
        r"""Drift of the reverse-time SDE, :math:`f(x,t) - g(t)^2 s(x,t)` (Song et al. 2021, eq. 6)."""
        x, t = check_examples(x, "x"), as_time(t, x)
        return self.drift(x, t) - per_row(self.diffusion(t) ** 2, x) * _score(score_fn, x, t)

    def ode_drift(self, score_fn, x, t):
        r"""Probability-flow ODE velocity :math:`f - \tfrac12 g^2 s` (Song et al. 2021, eq. 13)."""
        x, t = check_examples(x, "x"), as_time(t, x)
        return self.drift(x, t) - 0.5 * per_row(self.diffusion(t) ** 2, x) * _score(score_fn, x, t)

    def ode_drift_divergence(self, score_trace, d, t):
        r"""Divergence of the probability-flow velocity, given :math:`\operatorname{tr}\nabla_x s`
        (``score_trace``, (n,)) in dimension ``d`` (Song et al. 2021, eq. 39; Chen et al. 2018):

        .. math:: \nabla_x\cdot\big(f - \tfrac12 g^2 s\big) = \nabla_x\cdot f - \tfrac12 g(t)^2\operatorname{tr}\nabla_x s
        """
        return self.drift_divergence(d, t) - 0.5 * self.diffusion(t) ** 2 * score_trace


class VESDE(SDE):
    r"""Variance-exploding SDE (Song et al. 2021, eq. 9 and Appendix B; NCSN in continuous time):

    .. math:: \sigma(t)=\sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t,\quad f=0,\quad
              g(t)=\sigma(t)\sqrt{2\log(\sigma_{\max}/\sigma_{\min})}

    so :math:`x_t = x_0 + \sqrt{\sigma(t)^2-\sigma_{\min}^2}\,z` exactly (the noise added from 0
    to t): :math:`a=1`, :math:`s=\sqrt{\sigma(t)^2-\sigma_{\min}^2}`. Prior at t = 1:
    :math:`\mathcal N(0,\sigma_{\max}^2 I)`.
    """

    def __init__(self, sigma_min=0.01, sigma_max=50.0):
        self.sigma_min, self.sigma_max = check_positive(sigma_min, "sigma_min"), check_positive(sigma_max, "sigma_max")
        if not self.sigma_max > self.sigma_min:
            raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_max} <= {sigma_min}")
        self.log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t):
        r""":math:`\sigma(t)=\sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t`."""
        t = as_time(t)
        return self.sigma_min * ops(t).exp(t * self.log_ratio)

    def drift(self, x, t):
        return 0.0 * x

    def diffusion(self, t):
        return self.sigma(t) * math.sqrt(2 * self.log_ratio)

    def drift_divergence(self, d, t):
        check_whole_number(d, "d", minimum=1)
        return 0.0 * as_time(t)

    def marginal_coeffs(self, t):
        return ve_marginal_coeffs(as_time(t), self.sigma_min, self.log_ratio)

    def discretize(self, x, t, t_prev):
        r"""SMLD's forward step from ``t_prev`` up to ``t`` (Song et al. 2021, Appendix E, eq. 47;
        :func:`refscore.diffusion.ve_discretize`):

        .. math:: f = 0,\qquad G = \sqrt{\sigma(t)^2-\sigma(t_{prev})^2}
        """
        return ve_discretize(x, self.sigma(as_time(t, x)), self.sigma(as_time(t_prev, x)))

    def noise_level(self, t):
        r"""``(1, σ(t))``: the model of the score at t is that of the data perturbed at σ(t), σ_min
        included (NCSN's levels; :func:`refscore.diffusion.noise_conditional_score`).

        .. math:: a = 1,\qquad \sigma = \sigma_{\min}(\sigma_{\max}/\sigma_{\min})^t
        """
        return 1.0, self.sigma(t)

    def prior_sample(self, n, d, rng, backend=None):
        n, d = check_positive_int(n, "n"), check_positive_int(d, "d")
        bk = backends.get(backend) if backend is not None else backends.of_rng(rng)
        return self.sigma_max * bk.normal(rng, (n, d))

    def prior_log_prob(self, x):
        d = check_points(x).shape[1]
        return -0.5 * d * (LOG_2PI + 2 * math.log(self.sigma_max)) - 0.5 * sqnorm(x) / self.sigma_max**2


class VPSDE(SDE):
    r"""Variance-preserving SDE (Song et al. 2021, eq. 11 and Appendix B; DDPM in continuous time):

    .. math:: \beta(t)=\beta_{\min}+t(\beta_{\max}-\beta_{\min}),\quad f=-\tfrac12\beta(t)x,\quad
              g=\sqrt{\beta(t)}

    with marginal :math:`x_t=e^{-B(t)/2}x_0+\sqrt{1-e^{-B(t)}}\,\varepsilon`,
    :math:`B(t)=\int_0^t\beta` (:meth:`integrated_beta`). One step of it is seed 003_…, eq. 11.5
    with :math:`\beta\to1-e^{-B}`. Prior at t = 1: :math:`\mathcal N(0,I)`.
    """

    def __init__(self, beta_min=0.1, beta_max=20.0):
        self.beta_min, self.beta_max = check_positive(beta_min, "beta_min"), check_positive(beta_max, "beta_max")
        if not self.beta_max >= self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min, got {beta_max} < {beta_min}")

    @classmethod
    def for_levels(cls, sigma_max, beta_min=0.1):
        r"""The VP SDE whose VE-equivalent level :math:`\sigma(t) = s(t)/a(t)` (:meth:`noise_level`)
        reaches ``sigma_max`` at t = 1, so that a model trained on the levels up to ``sigma_max``
        covers the whole process (Karras et al. 2022, eq. 4: VP is VE scaled; Song et al. 2021,
        Appendix B): :math:`B(1) = (\beta_{\min}+\beta_{\max})/2 = \log(1+\sigma_{\max}^2)`,

        .. math:: \beta_{\max} = 2\log(1+\sigma_{\max}^2) - \beta_{\min}
        """
        sigma_max, beta_min = check_positive(sigma_max, "sigma_max"), check_positive(beta_min, "beta_min")
        beta_max = 2.0 * math.log1p(sigma_max**2) - beta_min
        if not beta_max >= beta_min:
            raise ValueError(f"sigma_max={sigma_max} is too small for beta_min={beta_min}: need "
                             f"log(1 + sigma_max^2) >= beta_min")
        return cls(beta_min, beta_max)

    def beta(self, t):
        r""":math:`\beta(t)=\beta_{\min}+t(\beta_{\max}-\beta_{\min})`."""
        return self.beta_min + as_time(t) * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        r""":math:`B(t)=\int_0^t\beta(u)\,du=\beta_{\min}t+\tfrac12 t^2(\beta_{\max}-\beta_{\min})`."""
        t = as_time(t)
        return self.beta_min * t + 0.5 * t * t * (self.beta_max - self.beta_min)

    def drift(self, x, t):
        return -0.5 * per_row(self.beta(as_time(t, x)), x) * x

    def diffusion(self, t):
        b = self.beta(t)
        return ops(b).sqrt(b)

    def drift_divergence(self, d, t):
        return -0.5 * self.beta(t) * check_whole_number(d, "d", minimum=1)

    def marginal_coeffs(self, t):
        return vp_marginal_coeffs(self.integrated_beta(t))

    def discretize(self, x, t, t_prev):
        r"""DDPM's forward step from ``t_prev`` up to ``t`` (Song et al. 2021, Appendix E, eq. 45;
        :func:`refscore.diffusion.vp_discretize`) with the exact step rate, so that the chain has the
        SDE's marginals at every grid time (score_sde takes :math:`\beta_i = \beta(t_i)\Delta t`, equal
        to first order):

        .. math:: \beta_i = 1 - e^{-(B(t)-B(t_{prev}))},\qquad f = (\sqrt{1-\beta_i}-1)\,x,\qquad G = \sqrt{\beta_i}
        """
        B, B_prev = self.integrated_beta(as_time(t, x)), self.integrated_beta(as_time(t_prev, x))
        return vp_discretize(x, vp_step_rate(B, B_prev))

    def time_of_level(self, sigma):
        r"""The time at which the VE-equivalent level :math:`\sigma(t) = s/a = \sqrt{e^{B(t)}-1}`
        (:meth:`noise_level`) equals ``sigma`` (float or host array): the root of
        :math:`B(t) = \log(1+\sigma^2)` (Song et al. 2021, Appendix B),

        .. math:: t = \frac{-\beta_{\min} + \sqrt{\beta_{\min}^2 + 2(\beta_{\max}-\beta_{\min})\log(1+\sigma^2)}}
                  {\beta_{\max}-\beta_{\min}}
        """
        target = onp.log1p(onp.square(onp.asarray(check_coefficient(sigma, "sigma", closed=True), dtype=float)))
        db = self.beta_max - self.beta_min
        if db == 0:
            return target / self.beta_min
        return (-self.beta_min + onp.sqrt(self.beta_min**2 + 2.0 * db * target)) / db

    def prior_sample(self, n, d, rng, backend=None):
        n, d = check_positive_int(n, "n"), check_positive_int(d, "d")
        bk = backends.get(backend) if backend is not None else backends.of_rng(rng)
        return bk.normal(rng, (n, d))

    def prior_log_prob(self, x):
        return -0.5 * check_points(x).shape[1] * LOG_2PI - 0.5 * sqnorm(x)


def marginal_law(data, sde, t):
    r"""The law :math:`p_t` of :math:`x_t = a(t)x_0 + s(t)z` when :math:`x_0` follows a
    :class:`~refscore.energies.Gaussian` or :class:`~refscore.energies.GaussianMixture`:

    .. math:: p_t = \sum_k w_k\,\mathcal N\big(a\mu_k,\ a^2\Sigma_k + s^2 I\big)

    (Song et al. 2021, Appendix B; for VE this is ``data.perturbed(s)``, for VP
    ``data.diffused(s**2)``, seed 003_…, eqs. 11.4–11.6). ``t`` a scalar in [0, 1]; returns the
    same kind of energy as ``data``, on its backend. Its ``score`` is the exact
    :math:`\nabla\log p_t` a solver needs.
    """
    from ..energies import Gaussian, GaussianMixture

    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be a refscore.sde.SDE (VESDE, VPSDE...), got {type(sde).__name__}")
    t = check_real(t, "t")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must lie in [0, 1], got {t!r}")
    a, s = sde.marginal_coeffs(t)
    if isinstance(data, GaussianMixture):
        return data.affine_noise(a, s * s)
    if isinstance(data, Gaussian):
        bk = data.backend
        return Gaussian(a * bk.to_numpy(data.mean), a * a * bk.to_numpy(data.cov) + s * s * onp.eye(data.dim),
                        backend=bk.name, dtype=data.dtype)
    raise TypeError(f"data must be a Gaussian or GaussianMixture, got {type(data).__name__}")
