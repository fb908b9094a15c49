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
    r"""Base class of every energy :math:`p(x) = e^{-E(x)}/Z`.

    .. math:: p(x) = \frac{e^{-E(x)}}{Z},\qquad Z=\int e^{-E(x)}\,dx
              \qquad\text{(seed 002\_…, "What is an EBM?", with } E\to -E)

    **Subclassing (the public contract).** Set ``self.dim`` (the dimension d) and implement
    :meth:`energy_unchecked` ``(n, d) -> (n,)``, written with ``autograd.numpy`` so that the score
    can be differentiated. Optionally override :meth:`score_unchecked` with a closed form (a
    test should compare it with autograd's), set ``self.backend`` to the
    :class:`~refscore.backends.Backend` holding your parameters (inputs from another backend are
    then refused), and implement :meth:`log_partition` / :meth:`sample` where known. The
    validated methods (:meth:`energy`, :meth:`score`, ...) are built on these; do not override them.

    >>> import autograd.numpy as anp
    >>> class Quartic(Energy):
    ...     def __init__(self, dim):
    ...         self.dim = dim
    ...     def energy_unchecked(self, x):       # E(x) = sum_j x_j^4 / 4, (n, d) -> (n,)
    ...         return anp.sum(x**4, axis=1) / 4
    >>> import numpy as np
    >>> Quartic(2).score(np.array([[1.0, -2.0]]))   # -grad E = -x^3
    array([[-1.,  8.]])
    """

    dim: int
    backend = None  # the Backend holding this energy's parameters

    # --- public, validated ---------------------------------------------------------------
    def energy(self, x):
        r"""Energy :math:`E(x)` of each row of ``x`` (n, d) -> (n,)."""
        self._check(x)
        return self._checked_energy(self.energy_unchecked(x), x)

    def unnormalized_log_prob(self, x):
        r""":math:`\log\tilde p(x) = -E(x)`, the log-density up to :math:`\log Z`: (n, d) -> (n,)."""
        return -self.energy(x)

    def score(self, x):
        r"""Stein score :math:`s(x)=\nabla_x\log p(x) = -\nabla_x E(x)`: (n, d) -> (n, d).

        Seed ``001_…`` ("(Stein) score function"): :math:`\nabla_x \log p_\theta(x) =
        -\nabla_x f_\theta(x)`, the :math:`\nabla_x\log Z_\theta` term being 0.
        """
        self._check(x)
        return self.score_unchecked(x)

    def energy_unchecked(self, x):
        r""":math:`E(x)` with no validation, ``(n, d) -> (n,)``: **the method a subclass implements**
        (with ``autograd.numpy``); inner loops call it after the caller validated ``x``."""
        raise NotImplementedError(f"{type(self).__name__} must implement energy_unchecked(x) -> (n,), "
                                  "the energy of each row written with autograd.numpy")

    def score_unchecked(self, x):
        r""":math:`s(x)=-\nabla_x E(x)` with no validation (no host sync): for inner loops.
        Autograd of :meth:`energy_unchecked` unless a subclass gives the closed form."""
        return elementwise_grad(lambda y: -anp.sum(self.energy_unchecked(y)))(x)

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
            owner = backends.of(getval(x))
            if owner.name != self.backend.name:
                raise TypeError(f"arrays from two backends in one call: {owner.name} and {self.backend.name} "
                                f"(x and the parameters of this {type(self).__name__}); move x to one backend "
                                f"first (backends.get({self.backend.name!r}).asarray(x))")
        return x

    def _checked_energy(self, e, x):
        """A subclass's energy must be one number per row: a scalar or (n, 1) is refused."""
        n = getval(x).shape[0]
        if tuple(getattr(getval(e), "shape", ())) != (n,):
            raise ValueError(f"{type(self).__name__}.energy_unchecked must return shape ({n},), one energy per "
                             f"row of x, got shape {tuple(getattr(getval(e), 'shape', ()))}; sum over axis=1, "
                             "not over everything")
        return e

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
        the dtype of its input (float32 in ⇒ float32 out, the dtype rule of every energy) at no per-call cost."""
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
