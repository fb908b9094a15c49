r"""Models: a plain MLP and a noise-conditional score network, parameters as pytrees
(lists/dicts of arrays) initialised from a backend ``rng``.

The noise-conditional network follows NCSN (Song & Ermon 2019, §4.2 and the "v2" technique of
Song & Ermon 2020, §4.4): :math:`s_\theta(x,\sigma) = \mathrm{net}_\theta(x, \mathrm{emb}(\sigma))/\sigma`,
so the network predicts :math:`-z` and the :math:`1/\sigma` scale of the true score comes for free.
"""
from __future__ import annotations

import math

import autograd.numpy as anp
from autograd import elementwise_grad
from autograd.tracer import getval

from . import backends
from . import activations
from ._validation import check_positive_int
from .energies.base import Energy

__all__ = ["mlp_init", "mlp_apply", "MLP", "NoiseConditionalScoreNet", "MLPEnergy"]



# fused autograd primitives: every derivative order is one elementwise pass (refscore.activations)
_ACTIVATIONS = {"softplus": activations.softplus, "tanh": activations.tanh, "swish": activations.silu}


def mlp_init(sizes, rng, backend=None, dtype="float64"):
    """Parameters of an MLP with layer ``sizes`` as a list of ``{"W", "b"}`` dicts (a pytree);
    weights :math:`\\sim\\mathcal N(0, 1/\\text{fan\\_in})`, biases 0."""
    bk = backends.get(backend) if backend is not None else backends.of_rng(rng)
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
        bk = backends.of_rng(rng)
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
