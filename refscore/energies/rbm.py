r"""The Gaussian–Bernoulli restricted Boltzmann machine (an EBM with latent binary units)."""
from __future__ import annotations


import autograd.numpy as anp

from .._math import sqnorm
from ..models.activations import sigmoid, softplus
from .base import Energy, backend_for, host_param

__all__ = ["GaussianBernoulliRBM"]


class GaussianBernoulliRBM(Energy):
    r"""Gaussian–Bernoulli RBM (Hinton 2010, "A practical guide", §13.2; unit variances).

    Joint energy of visible :math:`x\in\mathbb R^d` and hidden :math:`h\in\{0,1\}^m`:

    .. math:: E(x,h) = \tfrac12\|x-b\|^2 - c^\top h - x^\top W h

    Its free energy (the energy of :math:`x` alone, :math:`h` summed out) is

    .. math:: E(x) = \tfrac12\|x-b\|^2 - \sum_j \operatorname{softplus}(c_j + (x^\top W)_j),

    and the conditionals used by block Gibbs sampling are
    :math:`p(h_j=1\mid x)=\sigma(c_j+(x^\top W)_j)`, :math:`x\mid h\sim\mathcal N(b+Wh, I)`.
    """

    def __init__(self, W, b, c, backend=None, dtype="float64"):
        bk = backend_for(backend, W, b, c)
        W, b, c = host_param(W, "W"), host_param(b, "b"), host_param(c, "c")
        if W.ndim != 2 or b.shape != (W.shape[0],) or c.shape != (W.shape[1],):
            raise ValueError(f"need W (d, m), b (d,), c (m,); got {W.shape}, {b.shape}, {c.shape}")
        self.dim, self.n_hidden, self.backend = W.shape[0], W.shape[1], bk
        p = self._store(bk, dtype, W=W, b=b, c=c)  # float64 kept; cast once per input dtype
        self.W, self.b, self.c = p["W"], p["b"], p["c"]

    def energy_unchecked(self, x):
        r"""The energy of each row, unvalidated: the formula in the class docstring."""
        p = self._params(x)
        return 0.5 * sqnorm(x - p["b"]) - anp.sum(softplus(x @ p["W"] + p["c"]), axis=1)

    def score_unchecked(self, x):
        r"""The closed-form score of each row, unvalidated (compared with autograd's in the tests)."""
        p = self._params(x)
        return -(x - p["b"]) + sigmoid(x @ p["W"] + p["c"]) @ p["W"].T  # σ(·) (n, m)

    def joint_energy(self, x, h):
        """:math:`E(x,h)` for visible rows ``x`` (n, d) and hidden rows ``h`` (n, m)."""
        return 0.5 * sqnorm(x - self.b) - h @ self.c - anp.sum((x @ self.W) * h, axis=1)
