r"""The :class:`Energy` base class — :math:`p(x) = e^{-E(x)}/Z`, the score :math:`-\nabla_x E` —
and the helpers every energy uses to take its parameters (validated once, on the host).
"""
from __future__ import annotations


import autograd.numpy as anp
import numpy as onp
from autograd import elementwise_grad
from autograd.tracer import getval

from .. import backends
from .._validation import check_points, check_positive_int

__all__ = ["Energy"]


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

    def energy_unchecked(self, x):
        r""":math:`E(x)` with no validation: for inner loops after the caller validated ``x``."""
        return self._energy(x)

    def score_unchecked(self, x):
        r""":math:`s(x)=-\nabla_x E(x)` with no validation (no host sync): for inner loops."""
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
        if self.backend is None:  # parameter-free toys sample with any backend's Generator
            return backends.of_rng(rng)
        self.backend.check_rng(rng)
        return self.backend

    def _store(self, bk, dtype, **host):
        """Keep float64 host parameters as device arrays, and expose them in ``dtype``."""
        self._by_dtype = {onp.dtype("float64"): {k: bk.asarray(v) for k, v in host.items()}}
        self.dtype = onp.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating dtype such as 'float32' or 'float64', got {dtype!r}")
        return self._params_in(self.dtype)

    def _params_in(self, dtype):
        r"""The device parameters cast to ``dtype`` once and cached, so that an energy computes in
        the dtype of its input (API.md: float32 in ⇒ float32 out) at no per-call cost."""
        dtype = onp.dtype(dtype)
        if dtype.kind != "f":
            dtype = onp.dtype("float64")
        p = self._by_dtype.get(dtype)
        if p is None:
            p = self._by_dtype[dtype] = {k: v.astype(dtype) for k, v in self._by_dtype[onp.dtype("float64")].items()}
        return p

    def _params(self, x):
        return self._params_in(getval(x).dtype)

    def __repr__(self):
        return f"{type(self).__name__}(dim={self.dim})"


def host_param(a, name):
    """A parameter as a float64 NumPy array (parameters are validated on the host once)."""
    try:
        a = backends.of(getval(a)).to_numpy(getval(a))
    except TypeError:
        pass
    a = onp.asarray(a, dtype=onp.float64)
    if not onp.all(onp.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf: {a.tolist()}")
    return a


def check_cov(cov, name, d):
    """Check that ``cov`` is a symmetric positive definite (d, d) matrix; return its Cholesky factor."""
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


def backend_for(backend, *arrays):
    """The named backend, or else the one owning ``arrays`` (where an energy's parameters live)."""
    if backend is not None:
        return backends.get(backend)
    return backends.of(*[getval(a) for a in arrays])
