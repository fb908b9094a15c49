r"""Energy-based models :math:`p(x) = e^{-E(x)}/Z` and the toy targets of the notes.

Sign convention (API.md; ``docs/conventions.md`` maps the notes' three signs onto it):
:math:`E` is the **energy**, low energy is likely, the score is
:math:`s(x)=\nabla_x\log p(x) = -\nabla_x E(x)` and never depends on :math:`Z`
(``001_…``: :math:`\nabla_x\log Z_\theta = 0`). Points are rows: ``x.shape == (n, d)``.

Every energy has ``dim``, ``energy(x)`` -> ``(n,)``, ``unnormalized_log_prob(x)`` (= ``-energy``),
and ``score(x)`` -> ``(n, d)`` (closed form where one exists, else autograd of ``-energy``).
Where known: ``log_partition()``, ``log_prob(x)``, ``sample(n, rng)``.
"""
from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as onp
from autograd import elementwise_grad
from autograd.tracer import getval

from . import backends
from ._math import LOG_2PI, logsumexp, softmax, softplus, sqnorm
from ._validation import check_points, check_positive, check_positive_int, check_unit_interval

__all__ = [
    "Energy", "Gaussian", "GaussianMixture", "SumOfEnergies", "MLPEnergy",
    "DoubleWell", "Banana", "NealsFunnel", "Ring", "GaussianBernoulliRBM",
]


class Energy:
    r"""Base class: subclasses implement ``_energy`` (and ``_score`` where closed form exists).

    .. math:: p(x) = \frac{e^{-E(x)}}{Z},\qquad Z=\int e^{-E(x)}\,dx
              \qquad\text{(seed 002\_…, "What is an EBM?", with } E\to -E)
    """

    dim: int
    backend = None  # the Backend holding this energy's parameters

    # --- public, validated ---------------------------------------------------------------
    def energy(self, x):
        r"""Energy :math:`E(x)` of each row of ``x`` (n, d) -> (n,)."""
        self._check(x)
        return self._energy(x)

    def unnormalized_log_prob(self, x):
        r""":math:`\log\tilde p(x) = -E(x)`, the log-density up to :math:`\log Z`: (n, d) -> (n,)."""
        return -self.energy(x)

    def score(self, x):
        r"""Stein score :math:`s(x)=\nabla_x\log p(x) = -\nabla_x E(x)`: (n, d) -> (n, d).

        Seed ``001_…`` ("(Stein) score function"): :math:`\nabla_x \log p_\theta(x) =
        -\nabla_x f_\theta(x)`, the :math:`\nabla_x\log Z_\theta` term being 0.
        """
        self._check(x)
        return self._score(x)

    def log_partition(self):
        r""":math:`\log Z` in closed form (only where known)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no closed-form log Z; use "
            "refscore.partition.log_partition_quadrature(energy, bounds) for d <= 2"
        )

    def log_prob(self, x):
        r"""Normalised log-density :math:`-E(x) - \log Z` (needs :meth:`log_partition`)."""
        return -self.energy(x) - self.log_partition()

    def sample(self, n, rng):
        """Exact samples, shape ``(n, dim)`` (only where an exact sampler is known)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact sampler; use refscore.samplers")

    # --- internals -----------------------------------------------------------------------
    def _check(self, x):
        check_points(x, self.dim)
        if self.backend is not None:
            backends.of(getval(x), self._param_probe())
        return x

    def _param_probe(self):
        return None

    def _score(self, x):
        return elementwise_grad(lambda y: -anp.sum(self._energy(y)))(x)

    def _sample_backend(self, n, rng):
        check_positive_int(n, "n")
        bk = self.backend or backends.get("numpy")
        bk._check_rng(rng)
        return bk

    def __repr__(self):
        return f"{type(self).__name__}(dim={self.dim})"


def _host(a, name):
    """A parameter as a float64 NumPy array (parameters are validated on the host once)."""
    try:
        a = backends.of(getval(a)).to_numpy(getval(a))
    except TypeError:
        pass
    a = onp.asarray(a, dtype=onp.float64)
    if not onp.all(onp.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf: {a.tolist()}")
    return a


def _check_cov(cov, name, d):
    if cov.shape != (d, d):
        raise ValueError(f"{name} must have shape ({d}, {d}), got {cov.shape}")
    if not onp.allclose(cov, cov.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be symmetric, got {cov.tolist()}")
    try:
        return onp.linalg.cholesky(cov)
    except onp.linalg.LinAlgError:
        eig = onp.linalg.eigvalsh(cov).min()
        raise ValueError(
            f"{name} must be positive definite; its smallest eigenvalue is {eig:.3g}"
        ) from None


def _backend_for(backend, *arrays):
    if backend is not None:
        return backends.get(backend)
    return backends.of(*[getval(a) for a in arrays])


class Gaussian(Energy):
    r"""Gaussian :math:`\mathcal N(\mu,\Sigma)` as an EBM.

    .. math:: E(x) = \tfrac12 (x-\mu)^\top\Sigma^{-1}(x-\mu),\quad
              \log Z = \tfrac d2\log 2\pi + \tfrac12\log\det\Sigma,\quad
              s(x) = -\Sigma^{-1}(x-\mu)

    (Hyvärinen 2005, §3.1, the model whose score-matching estimator is closed form).

    Parameters
    ----------
    mean : array (d,)
    cov : array (d, d), symmetric positive definite
    backend : str, optional
        Where the parameters live; default: the backend of ``mean``.
    """

    def __init__(self, mean, cov, backend=None):
        bk = _backend_for(backend, mean, cov)
        mean = _host(mean, "mean")
        if mean.ndim != 1:
            raise ValueError(f"mean must be 1-D of shape (d,), got shape {mean.shape}")
        d = mean.shape[0]
        cov = _host(cov, "cov")
        chol = _check_cov(cov, "cov", d)
        prec = onp.linalg.inv(cov)
        self.dim, self.backend = d, bk
        self._logdet = 2.0 * float(onp.sum(onp.log(onp.diag(chol))))
        self.mean, self.cov = bk.asarray(mean), bk.asarray(cov)
        self.precision, self._chol = bk.asarray((prec + prec.T) / 2), bk.asarray(chol)

    def _param_probe(self):
        return self.mean

    def _energy(self, x):
        r = x - self.mean  # (n, d)
        return 0.5 * anp.sum((r @ self.precision) * r, axis=1)

    def _score(self, x):
        return -(x - self.mean) @ self.precision

    def log_partition(self):
        return 0.5 * self.dim * LOG_2PI + 0.5 * self._logdet

    def sample(self, n, rng):
        bk = self._sample_backend(n, rng)
        z = bk.normal(rng, (n, self.dim), self.mean.dtype)
        return self.mean + z @ self._chol.T


class GaussianMixture(Energy):
    r"""Gaussian mixture :math:`p(x)=\sum_k w_k\,\mathcal N(x;\mu_k,\Sigma_k)`, energy
    :math:`E=-\log p` (so :math:`\log Z = 0`).

    .. math:: s(x) = \sum_k r_k(x)\,\Sigma_k^{-1}(\mu_k - x),\qquad
              r_k(x) = \frac{w_k\mathcal N(x;\mu_k,\Sigma_k)}{\sum_j w_j\mathcal N(x;\mu_j,\Sigma_j)}

    Responsibilities are computed in matrix-product form (an ``(n, d) @ (d, K)`` product when
    every covariance is diagonal; ``(n, d) @ (d, K d)`` otherwise), never by an ``(n, K, d)``
    broadcast subtraction, and normalised with log-sum-exp.

    Parameters
    ----------
    weights : (K,) nonnegative, summing to 1
    means : (K, d)
    covs : (K, d, d) symmetric positive definite, or (K,) variances of isotropic components
    """

    def __init__(self, weights, means, covs, backend=None):
        bk = _backend_for(backend, weights, means, covs)
        w, mu, cov = _host(weights, "weights"), _host(means, "means"), _host(covs, "covs")
        if mu.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got shape {mu.shape}")
        K, d = mu.shape
        if w.shape != (K,):
            raise ValueError(f"weights must have shape ({K},) to match means, got {w.shape}")
        if onp.any(w < 0):
            raise ValueError(f"weights must be nonnegative, got {w.tolist()}")
        if abs(w.sum() - 1.0) > 1e-8:
            raise ValueError(f"weights must sum to 1, got sum {float(w.sum())!r} for weights {w.tolist()}")
        if cov.shape == (K,):
            if onp.any(cov <= 0):
                raise ValueError(f"isotropic variances in covs must be positive, got {cov.tolist()}")
            cov = cov[:, None, None] * onp.eye(d)
        if cov.shape != (K, d, d):
            raise ValueError(f"covs must have shape ({K}, {d}, {d}) or ({K},), got {cov.shape}")
        chols = onp.stack([_check_cov(c, f"covs[{k}]", d) for k, c in enumerate(cov)])
        prec = onp.linalg.inv(cov)
        prec = (prec + onp.swapaxes(prec, 1, 2)) / 2
        self.dim, self.n_components, self.backend = d, K, bk
        self._host = dict(weights=w, means=mu, covs=cov)
        self.weights, self.means, self.covs = bk.asarray(w), bk.asarray(mu), bk.asarray(cov)
        self._chol = bk.asarray(chols)  # (K, d, d), Σ_k = L_k L_kᵀ
        logdet = 2.0 * onp.log(onp.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)
        self._diag = bool(onp.all(cov == onp.eye(d) * onp.diagonal(cov, axis1=1, axis2=2)[:, None, :]))
        # log w_k + log N(x; μ_k, Σ_k) = const_k - ½ quad_k(x)
        self._const = bk.asarray(onp.log(onp.maximum(w, 1e-300)) - 0.5 * (d * LOG_2PI + logdet))
        self._prec_mu = bk.asarray(onp.einsum("kij,kj->ki", prec, mu))  # (K, d)  Σ_k⁻¹ μ_k
        self._mu_prec_mu = bk.asarray(onp.einsum("ki,ki->k", mu, onp.einsum("kij,kj->ki", prec, mu)))
        if self._diag:
            self._prec_diag = bk.asarray(onp.diagonal(prec, axis1=1, axis2=2).copy())  # (K, d)
        else:
            self._prec_cat = bk.asarray(onp.concatenate(list(prec), axis=1))  # (d, K d)

    def _param_probe(self):
        return self.means

    # (n, K) log w_k N(x; μ_k, Σ_k), matrix-product form
    def _component_log_joint(self, x):
        if self._diag:
            quad = (x * x) @ self._prec_diag.T - 2.0 * (x @ self._prec_mu.T) + self._mu_prec_mu
        else:
            n = x.shape[0]
            xp_ = anp.reshape(x @ self._prec_cat, (n, self.n_components, self.dim))  # (n, K, d) Σ_k⁻¹x
            xpx = anp.sum(xp_ * anp.reshape(x, (n, 1, self.dim)), axis=2)  # (n, K)
            quad = xpx - 2.0 * (x @ self._prec_mu.T) + self._mu_prec_mu
        return self._const - 0.5 * quad

    def responsibilities(self, x):
        r"""Posterior component probabilities :math:`r_k(x)`, (n, d) -> (n, K)."""
        self._check(x)
        return softmax(self._component_log_joint(x), axis=1)

    def _energy(self, x):
        return -logsumexp(self._component_log_joint(x), axis=1)

    def log_partition(self):
        return 0.0

    def _score(self, x):
        r = softmax(self._component_log_joint(x), axis=1)  # (n, K)
        if self._diag:
            return r @ self._prec_mu - x * (r @ self._prec_diag)
        n = x.shape[0]
        xp_ = anp.reshape(x @ self._prec_cat, (n, self.n_components, self.dim))
        return r @ self._prec_mu - anp.sum(anp.reshape(r, (n, -1, 1)) * xp_, axis=1)

    def sample(self, n, rng):
        bk = self._sample_backend(n, rng)
        k = bk.choice(rng, self.n_components, n, self.weights)  # (n,)
        z = bk.normal(rng, (n, self.dim), self.means.dtype)
        return self.means[k] + (self._chol[k] @ z[:, :, None])[:, :, 0]

    # --- the noised laws of the notes -----------------------------------------------------
    def _affine_noise(self, a, var):
        """Law of ``a x + sqrt(var) z``: a mixture with means a μ_k and covariances a² Σ_k + var I."""
        h = self._host
        return GaussianMixture(h["weights"], a * h["means"], a * a * h["covs"] + var * onp.eye(self.dim),
                               backend=self.backend)

    def perturbed(self, sigma):
        r"""The law of :math:`x+\sigma z`: covariances :math:`\Sigma_k+\sigma^2 I` (not
        :math:`\sigma^2 I`: that was ncsn issue #6).

        .. math:: p_\sigma(x) = \int p(y)\,\mathcal N(x; y, \sigma^2 I)\,dy
                  \qquad\text{(seed 001\_…, "Noise Conditional Score-Based Model")}
        """
        s = check_positive(sigma, "sigma")
        return self._affine_noise(1.0, s * s)

    def diffused(self, beta):
        r"""The law of :math:`\sqrt{1-\beta}\,x+\sqrt\beta\,\varepsilon` (seed 003_…, eqs.
        11.4–11.6): means :math:`\sqrt{1-\beta}\mu_k`, covariances :math:`(1-\beta)\Sigma_k+\beta I`."""
        b = check_unit_interval(beta, "beta")
        return self._affine_noise(math.sqrt(1.0 - b), b)

    def _posterior_mean(self, y, a, var):
        # y = a x + sqrt(var) ε.  Per component: E[x | y, k] = μ_k + a Σ_k (a²Σ_k + var I)⁻¹ (y - a μ_k)
        h, d, K = self._host, self.dim, self.n_components
        S = h["covs"]
        gains = onp.stack([a * S[k] @ onp.linalg.inv(a * a * S[k] + var * onp.eye(d)) for k in range(K)])
        offs = h["means"] - a * onp.einsum("kij,kj->ki", gains, h["means"])  # (K, d)
        G = self.backend.asarray(onp.concatenate(list(onp.swapaxes(gains, 1, 2)), axis=1))  # (d, K d)
        r = self._affine_noise(a, var).responsibilities(y)  # (n, K)
        n = y.shape[0]
        cond = anp.reshape(y @ G, (n, K, d)) + self.backend.asarray(offs)  # (n, K, d)
        return anp.sum(anp.reshape(r, (n, K, 1)) * cond, axis=1)

    def posterior_mean(self, y, sigma):
        r"""Closed-form :math:`\mathbb E[x\mid y]` for :math:`y=x+\sigma z`:

        .. math:: \mathbb E[x\mid y] = \sum_k r^\sigma_k(y)\,\big(\mu_k + \Sigma_k(\Sigma_k+\sigma^2I)^{-1}
                  (y-\mu_k)\big)

        with :math:`r^\sigma_k` the responsibilities of :meth:`perturbed`. Tweedie's formula
        (seed 003_…, eq. 11.12 with β→σ²) says this equals :math:`y+\sigma^2\nabla\log p_\sigma(y)`;
        the tests check it does, independently.
        """
        s = check_positive(sigma, "sigma")
        self._check(y)
        return self._posterior_mean(y, 1.0, s * s)

    def posterior_mean_vp(self, y, beta):
        r"""Closed-form :math:`\mathbb E[x\mid y]` for :math:`y=\sqrt{1-\beta}x+\sqrt\beta\varepsilon`
        (seed 003_…, eq. 11.13):

        .. math:: \mathbb E[x\mid y] = \sum_k r^\beta_k(y)\big(\mu_k + a\Sigma_k(a^2\Sigma_k+\beta I)^{-1}
                  (y-a\mu_k)\big),\quad a=\sqrt{1-\beta}
        """
        b = check_unit_interval(beta, "beta")
        self._check(y)
        return self._posterior_mean(y, math.sqrt(1.0 - b), b)

    def __repr__(self):
        return f"GaussianMixture(K={self.n_components}, dim={self.dim})"


class SumOfEnergies(Energy):
    r"""Product of experts :math:`E(x)=\sum_i E_i(x)`, so :math:`s(x)=\sum_i s_i(x)`
    (seed 002_…, "EBM drawing": :math:`E(x)=\sum_i E_i(x)`)."""

    def __init__(self, terms):
        terms = list(terms)
        if not terms:
            raise ValueError("SumOfEnergies needs at least one term")
        dims = {t.dim for t in terms}
        if len(dims) != 1:
            raise ValueError(f"all terms must have the same dim, got dims {[t.dim for t in terms]}")
        self.terms, self.dim = terms, dims.pop()
        bks = {t.backend.name for t in terms if t.backend is not None}
        if len(bks) > 1:
            raise TypeError(f"terms live on two backends: {' and '.join(sorted(bks))}")
        self.backend = next((t.backend for t in terms if t.backend is not None), None)

    def _param_probe(self):
        return next((t._param_probe() for t in self.terms if t._param_probe() is not None), None)

    def _energy(self, x):
        return sum(t._energy(x) for t in self.terms)

    def _score(self, x):
        return sum(t._score(x) for t in self.terms)


_ACTIVATIONS = {
    "softplus": softplus,
    "tanh": anp.tanh,
    "swish": lambda h: h * (0.5 * (anp.tanh(0.5 * h) + 1.0)),
}


def mlp_init(sizes, rng, backend=None, dtype="float64"):
    """Parameters of an MLP with layer ``sizes`` as a list of ``{"W", "b"}`` dicts (a pytree);
    weights :math:`\\sim\\mathcal N(0, 1/\\text{fan\\_in})`, biases 0."""
    bk = backends.get(backend) if backend is not None else _backend_of_rng(rng)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        W = bk.normal(rng, (fan_in, fan_out), dtype) / math.sqrt(fan_in)
        params.append({"W": W, "b": bk.xp.zeros((fan_out,), dtype=dtype)})
    return params


def mlp_apply(params, h, activation="softplus"):
    """Forward pass of :func:`mlp_init`'s MLP: activations between layers, linear output."""
    act = _ACTIVATIONS[activation]
    for layer in params[:-1]:
        h = act(h @ layer["W"] + layer["b"])
    return h @ params[-1]["W"] + params[-1]["b"]


def _backend_of_rng(rng):
    return backends.of_rng(rng)


class MLPEnergy(Energy):
    r"""A neural energy :math:`E_\theta(x)=\mathrm{MLP}_\theta(x)\in\mathbb R` (seed 001_…,
    "Neural net predicts energy of a given state"), parameters a pytree ``self.params``.

    The score :math:`s_\theta(x)=-\nabla_x E_\theta(x)` is autograd of the energy; use
    :meth:`score_fn` to get it as a function of ``x`` for given parameters, which every loss
    in :mod:`refscore.losses` can differentiate w.r.t. ``params`` (to third order).

    Parameters
    ----------
    dim : int
    hidden : tuple of int
    rng : Generator of the backend that will hold the parameters
    activation : "softplus" (default, smooth), "tanh" or "swish"
    """

    def __init__(self, dim, hidden=(64, 64), rng=None, activation="softplus", params=None, dtype="float64"):
        self.dim = check_positive_int(dim, "dim")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        if params is None:
            if rng is None:
                raise ValueError("MLPEnergy needs rng (a backend Generator) to initialise its parameters")
            params = mlp_init((self.dim, *hidden, 1), rng, dtype=dtype)
        self.params = params
        self.backend = backends.of(params[0]["W"])

    def _param_probe(self):
        return getval(self.params[0]["W"])

    def apply(self, params, x):
        """Energy for explicit parameters: (n, d) -> (n,)."""
        return mlp_apply(params, x, self.activation)[:, 0]

    def _energy(self, x):
        return self.apply(self.params, x)

    def score_fn(self, params=None):
        r"""The function :math:`x\mapsto s_\theta(x) = -\nabla_x E_\theta(x)` for ``params``."""
        params = self.params if params is None else params
        return elementwise_grad(lambda x: -anp.sum(self.apply(params, x)))

    def _score(self, x):
        return self.score_fn()(x)


# ----------------------------------------------------------------------------------------
# Toy targets for samplers
# ----------------------------------------------------------------------------------------
class DoubleWell(Energy):
    r"""Double well in the first coordinate, Gaussian in the rest:

    .. math:: E(x) = a\,(x_1^2-1)^2 + \tfrac12\sum_{i\ge 2} x_i^2

    Two modes at :math:`x_1=\pm1` separated by a barrier of height :math:`a`.
    """

    def __init__(self, dim=2, barrier=2.0):
        self.dim = check_positive_int(dim, "dim")
        self.barrier = check_positive(barrier, "barrier")

    def _energy(self, x):
        x1 = x[:, 0]
        return self.barrier * (x1 * x1 - 1.0) ** 2 + 0.5 * (sqnorm(x) - x1 * x1)

    def log_partition(self):
        from scipy.integrate import quad

        a = self.barrier
        z1, _ = quad(lambda t: math.exp(-a * (t * t - 1.0) ** 2), -math.inf, math.inf)
        return math.log(z1) + 0.5 * (self.dim - 1) * LOG_2PI


class Banana(Energy):
    r"""Banana (twisted Gaussian, Haario et al. 1999), d = 2:

    .. math:: E(x) = \frac{x_1^2}{2a^2} + \tfrac12\big(x_2 - b(x_1^2 - a^2)\big)^2,
              \qquad \log Z = \log(2\pi a)

    The map :math:`(x_1,x_2)\mapsto(x_1/a,\,x_2-b(x_1^2-a^2))` has unit Jacobian determinant up
    to :math:`1/a`, which gives :math:`Z` and an exact sampler.
    """

    def __init__(self, a=1.0, b=1.0):
        self.dim, self.a, self.b = 2, check_positive(a, "a"), float(b)

    def _energy(self, x):
        x1, x2 = x[:, 0], x[:, 1]
        return x1 * x1 / (2 * self.a**2) + 0.5 * (x2 - self.b * (x1 * x1 - self.a**2)) ** 2

    def log_partition(self):
        return math.log(2 * math.pi * self.a)

    def sample(self, n, rng):
        bk = self._sample_backend(n, rng)
        z = bk.normal(rng, (n, 2))
        x1 = self.a * z[:, 0]
        x2 = z[:, 1] + self.b * (x1 * x1 - self.a**2)
        return bk.xp.stack([x1, x2], axis=1)


class NealsFunnel(Energy):
    r"""Neal's funnel (Neal 2003, §8): :math:`v\sim\mathcal N(0,s^2)`,
    :math:`x_i\mid v\sim\mathcal N(0,e^{v})`, :math:`i=2..d`, with :math:`v=x_1`:

    .. math:: E(x) = \frac{v^2}{2s^2} + \frac{d-1}{2}v + \frac{e^{-v}}{2}\sum_{i\ge2}x_i^2,
              \qquad \log Z = \tfrac12\log(2\pi s^2) + \tfrac{d-1}2\log 2\pi
    """

    def __init__(self, dim=2, scale=3.0):
        self.dim = check_positive_int(dim, "dim", minimum=2)
        self.scale = check_positive(scale, "scale")

    def _energy(self, x):
        v = x[:, 0]
        rest = sqnorm(x) - v * v
        return v * v / (2 * self.scale**2) + 0.5 * (self.dim - 1) * v + 0.5 * anp.exp(-v) * rest

    def log_partition(self):
        return 0.5 * math.log(2 * math.pi * self.scale**2) + 0.5 * (self.dim - 1) * LOG_2PI

    def sample(self, n, rng):
        bk = self._sample_backend(n, rng)
        z = bk.normal(rng, (n, self.dim))
        v = self.scale * z[:, :1]
        return bk.xp.concatenate([v, z[:, 1:] * bk.xp.exp(0.5 * v)], axis=1)


class Ring(Energy):
    r"""Ring of radius :math:`r` and width :math:`w` in d = 2:

    .. math:: E(x) = \frac{(\|x\|-r)^2}{2w^2},\qquad
              Z = 2\pi\Big(w^2e^{-r^2/2w^2} + r\,w\sqrt{2\pi}\,\Phi(r/w)\Big)

    (:math:`Z=\int_0^\infty 2\pi\rho\,e^{-(\rho-r)^2/2w^2}d\rho` in polar coordinates.)
    """

    def __init__(self, radius=2.0, width=0.25):
        self.dim, self.radius, self.width = 2, check_positive(radius, "radius"), check_positive(width, "width")

    def _energy(self, x):
        rho = anp.sqrt(sqnorm(x) + 1e-300)
        return (rho - self.radius) ** 2 / (2 * self.width**2)

    def log_partition(self):
        from scipy.special import ndtr

        r, w = self.radius, self.width
        return math.log(2 * math.pi * (w * w * math.exp(-r * r / (2 * w * w)) + r * w * math.sqrt(2 * math.pi) * ndtr(r / w)))


class GaussianBernoulliRBM(Energy):
    r"""Gaussian–Bernoulli RBM (Hinton 2010, "A practical guide", §13.2; unit variances).

    Joint energy of visible :math:`x\in\mathbb R^d` and hidden :math:`h\in\{0,1\}^m`:

    .. math:: E(x,h) = \tfrac12\|x-b\|^2 - c^\top h - x^\top W h

    Its free energy (the energy of :math:`x` alone, :math:`h` summed out) is

    .. math:: E(x) = \tfrac12\|x-b\|^2 - \sum_j \operatorname{softplus}(c_j + (x^\top W)_j),

    and the conditionals used by block Gibbs sampling are
    :math:`p(h_j=1\mid x)=\sigma(c_j+(x^\top W)_j)`, :math:`x\mid h\sim\mathcal N(b+Wh, I)`.
    """

    def __init__(self, W, b, c, backend=None):
        bk = _backend_for(backend, W, b, c)
        W, b, c = _host(W, "W"), _host(b, "b"), _host(c, "c")
        if W.ndim != 2 or b.shape != (W.shape[0],) or c.shape != (W.shape[1],):
            raise ValueError(f"need W (d, m), b (d,), c (m,); got {W.shape}, {b.shape}, {c.shape}")
        self.dim, self.n_hidden, self.backend = W.shape[0], W.shape[1], bk
        self.W, self.b, self.c = bk.asarray(W), bk.asarray(b), bk.asarray(c)

    def _param_probe(self):
        return self.W

    def _energy(self, x):
        r = x - self.b
        return 0.5 * sqnorm(r) - anp.sum(softplus(x @ self.W + self.c), axis=1)

    def _score(self, x):
        p_h = 0.5 * (anp.tanh(0.5 * (x @ self.W + self.c)) + 1.0)  # σ(·), (n, m)
        return -(x - self.b) + p_h @ self.W.T

    def joint_energy(self, x, h):
        """:math:`E(x,h)` for visible rows ``x`` (n, d) and hidden rows ``h`` (n, m)."""
        return 0.5 * sqnorm(x - self.b) - h @ self.c - anp.sum((x @ self.W) * h, axis=1)
