r"""The Gaussian family as EBMs: a Gaussian, a Gaussian mixture (with its perturbed and diffused
laws and closed-form posterior means, seed 003_… eqs. 11.7–11.13), and a product of experts."""
from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as onp
from autograd.tracer import getval

from .. import backends

from .._math import LOG_2PI, logsumexp, softmax
from .._validation import check_positive, check_unit_interval
from .base import Energy, backend_for, check_cov, host_param

__all__ = ["Gaussian", "GaussianMixture", "SumOfEnergies"]


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
    dtype : "float64" (default) or "float32"
        The dtype of the public attributes and of :meth:`sample`. Energies and scores always
        compute in the dtype of ``x`` (float64 parameters are kept and cast once per dtype).
    """

    def __init__(self, mean, cov, backend=None, dtype="float64"):
        bk = backend_for(backend, mean, cov)
        mean = host_param(mean, "mean")
        if mean.ndim != 1:
            raise ValueError(f"mean must be 1-D of shape (d,), got shape {mean.shape}")
        d = mean.shape[0]
        cov = host_param(cov, "cov")
        chol = check_cov(cov, "cov", d)
        prec = onp.linalg.inv(cov)
        self.dim, self.backend = d, bk
        self._logdet = 2.0 * float(onp.sum(onp.log(onp.diag(chol))))
        prec = (prec + prec.T) / 2
        self._centred = not onp.any(mean)  # s(x) = -xP: one matmul, no broadcast subtraction
        self._diagonal = not onp.any(prec - onp.diag(onp.diag(prec)))  # s(x) = -x·diag(P): no matmul
        # P = cI: s(x) = -c x, one scalar pass (a broadcast over a short last axis runs ~20x slower)
        self._isotropic = self._diagonal and bool(onp.all(onp.diag(prec) == prec[0, 0]))
        self._neg_c = -float(prec[0, 0])
        p = self._store(bk, dtype, mean=mean, cov=cov, precision=prec, chol=chol, neg_precision=-prec,
                        neg_precision_diag=-onp.diag(prec), prec_mu=prec @ mean)
        self.mean, self.cov, self.precision = p["mean"], p["cov"], p["precision"]

    def energy_unchecked(self, x):
        r"""The energy of each row, unvalidated: the formula in the class docstring."""
        p = self._params(x)
        r = x - p["mean"]  # (n, d)
        return 0.5 * anp.sum((r @ p["precision"]) * r, axis=1)

    def score_unchecked(self, x):
        r"""The closed-form score of each row, unvalidated (compared with autograd's in the tests)."""
        p = self._params(x)
        # s = Pμ - xP: one pass fewer than -(x - μ)P; a diagonal P scales columns (a (n, d) @ (d, d)
        # product with small d costs ~10× the elementwise pass in BLAS)
        if self._isotropic:
            sx = x * self._neg_c  # a Python float keeps the array's dtype
        else:
            sx = x * p["neg_precision_diag"] if self._diagonal else x @ p["neg_precision"]
        return sx if self._centred else sx + p["prec_mu"]

    def log_partition(self):
        return 0.5 * self.dim * LOG_2PI + 0.5 * self._logdet

    def sample(self, n, rng):
        bk = self._sample_backend(n, rng)
        z = bk.normal(rng, (n, self.dim), self.dtype)
        return self.mean + z @ self._params_in(self.dtype)["chol"].T


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
    backend : str, optional
    dtype : "float64" (default) or "float32"; as for :class:`Gaussian`, computations follow ``x``.

    Attributes
    ----------
    host_params : dict
        Float64 NumPy copies of ``weights``, ``means``, ``covs`` (for quadrature and host-side checks).

    Notes
    -----
    Far from the data (up to :math:`|x|\sim10^{300}`) the quadratic forms are evaluated on
    :math:`\tilde x = x/s`, :math:`s=\max(1,\max_i|x_i|)`, and the part common to every
    component is dropped before the softmax, so responsibilities and the score stay finite
    where :math:`x^\top x` overflows (the energy is then :math:`+\infty`, as for :class:`Gaussian`).
    """

    def __init__(self, weights, means, covs, backend=None, dtype="float64"):
        bk = backend_for(backend, weights, means, covs)
        w, mu, cov = host_param(weights, "weights"), host_param(means, "means"), host_param(covs, "covs")
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
        chols = onp.stack([check_cov(c, f"covs[{k}]", d) for k, c in enumerate(cov)])
        prec = onp.linalg.inv(cov)
        prec = (prec + onp.swapaxes(prec, 1, 2)) / 2
        self.dim, self.n_components, self.backend = d, K, bk
        self.host_params = dict(weights=w, means=mu, covs=cov)
        logdet = 2.0 * onp.log(onp.diagonal(chols, axis1=1, axis2=2)).sum(axis=1)
        self._diag = bool(onp.all(cov == onp.eye(d) * onp.diagonal(cov, axis1=1, axis2=2)[:, None, :]))
        # log w_k + log N(x; μ_k, Σ_k) = const_k - ½ quad_k(x)
        prec_mu = onp.einsum("kij,kj->ki", prec, mu)  # (K, d)  Σ_k⁻¹ μ_k
        p = self._store(
            bk, dtype, weights=w, means=mu, covs=cov, chol=chols,  # chol (K, d, d): Σ_k = L_k L_kᵀ
            const=onp.log(onp.maximum(w, 1e-300)) - 0.5 * (d * LOG_2PI + logdet),
            prec_mu=prec_mu, mu_prec_mu=onp.einsum("ki,ki->k", mu, prec_mu),
            prec=onp.diagonal(prec, axis1=1, axis2=2).copy() if self._diag  # (K, d)
            else onp.concatenate(list(prec), axis=1))  # (d, K d)
        self.weights, self.means, self.covs = p["weights"], p["means"], p["covs"]

    def _scaled_log_joint(self, x):
        r"""``(ℓ, c)`` with :math:`\log w_k\mathcal N(x;\mu_k,\Sigma_k) = \ell_k - c`, (n, K) and (n,).

        :math:`\tfrac12(x-\mu_k)^\top P_k(x-\mu_k) = \tfrac12 s^2 a_k - s\,b_k + \tfrac12\mu_k^\top P_k\mu_k`
        with :math:`a_k=\tilde x^\top P_k\tilde x`, :math:`b_k=\tilde x^\top P_k\mu_k`, :math:`\tilde x=x/s`;
        :math:`c=\tfrac12 s^2\min_k a_k` is common to every k. ``s`` is a constant for autograd
        (the identity holds for any s), so gradients are unchanged.
        """
        p = self._params(x)
        xp = backends.of(getval(x)).xp
        s = xp.maximum(xp.max(xp.abs(getval(x)), axis=1, keepdims=True), 1.0)  # (n, 1)
        xs = x / s
        if self._diag:
            a = (xs * xs) @ p["prec"].T  # (n, K)
        else:
            n = x.shape[0]
            px = anp.reshape(xs @ p["prec"], (n, self.n_components, self.dim))  # (n, K, d) Σ_k⁻¹x̃
            a = anp.sum(px * anp.reshape(xs, (n, 1, self.dim)), axis=2)  # (n, K)
        a_min = xp.min(getval(a), axis=1, keepdims=True)  # (n, 1)
        # s·(s·(a - a_min)), not s²·(…): s² overflows at |x|~1e300, and inf·0 would be NaN.
        # Overflow to +inf is the right answer here (a component, or the energy, infinitely unlikely).
        with onp.errstate(over="ignore"):
            quad = s * (s * (a - a_min)) - 2.0 * s * (xs @ p["prec_mu"].T) + p["mu_prec_mu"]
            return p["const"] - 0.5 * quad, 0.5 * (s * (s * a_min))[:, 0]

    def responsibilities(self, x):
        r"""Posterior component probabilities :math:`r_k(x)`, (n, d) -> (n, K)."""
        self._check(x)
        return softmax(self._scaled_log_joint(x)[0], axis=1)

    def energy_unchecked(self, x):
        r"""The energy of each row, unvalidated: the formula in the class docstring."""
        ell, c = self._scaled_log_joint(x)
        return c - logsumexp(ell, axis=1)

    def log_partition(self):
        return 0.0

    def score_unchecked(self, x):
        r"""The closed-form score of each row, unvalidated (compared with autograd's in the tests)."""
        p = self._params(x)
        r = softmax(self._scaled_log_joint(x)[0], axis=1)  # (n, K)
        if self._diag:
            return r @ p["prec_mu"] - x * (r @ p["prec"])
        n = x.shape[0]
        px = anp.reshape(x @ p["prec"], (n, self.n_components, self.dim))
        return r @ p["prec_mu"] - anp.sum(anp.reshape(r, (n, -1, 1)) * px, axis=1)

    def sample(self, n, rng):
        bk = self._sample_backend(n, rng)
        k = bk.choice(rng, self.n_components, n, self.weights)  # (n,)
        z = bk.normal(rng, (n, self.dim), self.dtype)
        return self.means[k] + (self._params_in(self.dtype)["chol"][k] @ z[:, :, None])[:, :, 0]

    # --- the noised laws of the notes -----------------------------------------------------
    def affine_noise(self, a, var):
        r"""The law of :math:`a\,x + \sqrt{v}\,z` (x from this mixture, z ~ N(0, I) independent):

        .. math:: \sum_k w_k\,\mathcal N\big(a\mu_k,\ a^2\Sigma_k + v I\big)

        (seed 003_…, eqs. 11.4–11.6); :meth:`perturbed` is ``a = 1``, :meth:`diffused` is
        ``a = sqrt(1-β), v = β``, and :func:`refscore.sde.marginal_law` any SDE's ``a(t), s(t)²``."""
        h = self.host_params
        return GaussianMixture(h["weights"], a * h["means"], a * a * h["covs"] + var * onp.eye(self.dim),
                               backend=self.backend, dtype=self.dtype)

    def perturbed(self, sigma):
        r"""The law of :math:`x+\sigma z`: covariances :math:`\Sigma_k+\sigma^2 I` (not
        :math:`\sigma^2 I`: that was ncsn issue #6).

        .. math:: p_\sigma(x) = \int p(y)\,\mathcal N(x; y, \sigma^2 I)\,dy
                  \qquad\text{(seed 001\_…, "Noise Conditional Score-Based Model")}
        """
        s = check_positive(sigma, "sigma")
        top = float(onp.abs(self.host_params["covs"]).max())
        if not math.isfinite(s * s + top):
            raise ValueError(f"sigma={sigma!r} is too large: the covariances Sigma_k + sigma^2 I overflow float64; "
                             f"sigma must be below {math.sqrt(onp.finfo(float).max - top):.3g}")
        return self.affine_noise(1.0, s * s)

    def diffused(self, beta):
        r"""The law of :math:`\sqrt{1-\beta}\,x+\sqrt\beta\,\varepsilon` (seed 003_…, eqs.
        11.4–11.6): means :math:`\sqrt{1-\beta}\mu_k`, covariances :math:`(1-\beta)\Sigma_k+\beta I`."""
        b = check_unit_interval(beta, "beta")
        return self.affine_noise(math.sqrt(1.0 - b), b)

    def _posterior_mean(self, y, a, var):
        # y = a x + sqrt(var) ε.  Per component: E[x | y, k] = μ_k + a Σ_k (a²Σ_k + var I)⁻¹ (y - a μ_k)
        h, d, K = self.host_params, self.dim, self.n_components
        S = h["covs"]
        gains = onp.stack([a * S[k] @ onp.linalg.inv(a * a * S[k] + var * onp.eye(d)) for k in range(K)])
        offs = h["means"] - a * onp.einsum("kij,kj->ki", gains, h["means"])  # (K, d)
        dt = getval(y).dtype if getval(y).dtype.kind == "f" else onp.float64
        G = self.backend.asarray(onp.concatenate(list(onp.swapaxes(gains, 1, 2)), axis=1), dtype=dt)  # (d, K d)
        r = self.affine_noise(a, var).responsibilities(y)  # (n, K)
        n = y.shape[0]
        cond = anp.reshape(y @ G, (n, K, d)) + self.backend.asarray(offs, dtype=dt)  # (n, K, d)
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

    def energy_unchecked(self, x):
        r"""The energy of each row, unvalidated: the formula in the class docstring."""
        return sum(t.energy_unchecked(x) for t in self.terms)

    def score_unchecked(self, x):
        r"""The closed-form score of each row, unvalidated (compared with autograd's in the tests)."""
        return sum(t.score_unchecked(x) for t in self.terms)
