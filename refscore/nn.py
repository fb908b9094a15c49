r"""Models: a plain MLP and a noise-conditional score network, parameters as pytrees
(lists/dicts of arrays) initialised from a backend ``rng``.

The noise-conditional network follows NCSN (Song & Ermon 2019, §4.2 and the "v2" technique of
Song & Ermon 2020, §4.4): :math:`s_\theta(x,\sigma) = \mathrm{net}_\theta(x, \mathrm{emb}(\sigma))/\sigma`,
so the network predicts :math:`-z` and the :math:`1/\sigma` scale of the true score comes for free.
"""
from __future__ import annotations

import math

import autograd.numpy as anp
from .energies import _ACTIVATIONS, MLPEnergy, _backend_of_rng, mlp_apply, mlp_init

__all__ = ["mlp_init", "mlp_apply", "MLP", "NoiseConditionalScoreNet", "MLPEnergy"]


class MLP:
    r"""A multilayer perceptron :math:`\mathbb R^{d_{in}}\to\mathbb R^{d_{out}}`, smooth activations
    (softplus by default, so second and third derivatives exist for ISM/SSM)."""

    def __init__(self, sizes, rng, activation="softplus", dtype="float64"):
        self.sizes, self.activation = tuple(sizes), activation
        self.params = mlp_init(self.sizes, rng, dtype=dtype)

    def apply(self, params, x):
        return mlp_apply(params, x, self.activation)

    def __call__(self, x):
        return self.apply(self.params, x)


class NoiseConditionalScoreNet:
    r"""Noise-conditional score network :math:`s_\theta(x,\sigma)`:

    .. math:: h_1 = \phi(xW_x + e(\sigma)W_e + b),\quad
              s_\theta(x,\sigma) = \mathrm{MLP}(h_1)/\sigma,\quad
              e(\sigma) = [\sin(\omega_k\log\sigma), \cos(\omega_k\log\sigma)]_{k=1}^F

    (a Fourier embedding of :math:`\log\sigma`; the input layer is a sum, not a concatenation,
    which reads the same and keeps every operation differentiable on every backend).
    ``sigma`` may be a Python float or an ``(n,)`` array.
    """

    def __init__(self, dim, hidden=(128, 128), rng=None, n_freq=8, activation="softplus", dtype="float64"):
        if rng is None:
            raise ValueError("NoiseConditionalScoreNet needs rng (a backend Generator)")
        self.dim, self.activation, self.n_freq = dim, activation, n_freq
        bk = _backend_of_rng(rng)
        H = hidden[0]
        self.freqs = bk.asarray([2.0 ** (k - n_freq // 2) for k in range(n_freq)], dtype=dtype)  # (F,)
        self.params = {
            "in_x": bk.normal(rng, (dim, H), dtype) / math.sqrt(dim),
            "in_s": bk.normal(rng, (2 * n_freq, H), dtype) / math.sqrt(2 * n_freq),
            "b": bk.xp.zeros((H,), dtype=dtype),
            "mlp": mlp_init((*hidden, dim), rng, dtype=dtype),
        }

    def apply(self, params, x, sigma):
        F = self.n_freq
        ls = math.log(sigma) if isinstance(sigma, (int, float)) else anp.reshape(anp.log(sigma), (-1, 1))
        ang = anp.reshape(ls * self.freqs, (-1, F))  # (n or 1, F)
        emb = anp.sin(ang) @ params["in_s"][:F] + anp.cos(ang) @ params["in_s"][F:]  # (n or 1, H)
        act = _ACTIVATIONS[self.activation]
        h = act(x @ params["in_x"] + emb + params["b"])
        out = mlp_apply(params["mlp"], h, self.activation) if len(params["mlp"]) > 0 else h
        scale = sigma if isinstance(sigma, (int, float)) else anp.reshape(sigma, (-1, 1))
        return out / scale

    def score_fn(self, params=None):
        """``(x, sigma) -> s_θ(x, σ)`` for ``params`` (default: the current ones)."""
        params = self.params if params is None else params
        return lambda x, sigma: self.apply(params, x, sigma)
