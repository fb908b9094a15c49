r"""The Gaussian–Bernoulli restricted Boltzmann machine (an EBM with latent binary units)."""
from __future__ import annotations


import autograd.numpy as anp

from .._math import softplus, sqnorm
from .base import Energy, _backend_for, _host

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
