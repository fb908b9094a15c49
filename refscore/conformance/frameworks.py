r"""A case's model as functions of another array library's arrays: the energy, the score and the
denoiser of every model kind (``quadratic``, ``mlp``, ``gaussian_family``), written once against a
small array namespace (:class:`Namespace`) so that NumPy, PyTorch (:mod:`refscore.conformance.torch`)
or any library with ``@``, ``exp``, ``log1p``, ``eye`` and a batched ``solve`` can run them. The
gradients are written out (no autograd), so the functions are plain array code in every library.

.. math:: E_\text{quad} = \tfrac12 x^\top A x - b^\top x,\quad
          s_\text{gauss}(x,\ell) = -C_\ell^{-1}(x-m_\ell),\quad D(x,\sigma) = x + \sigma^2 s(x,\sigma)
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as onp

__all__ = ["Namespace", "NUMPY", "model_functions"]


class Namespace(NamedTuple):
    r"""The array operations the model functions need, for one library.

    .. math:: \text{asarray},\ \exp,\ \log(1+\cdot),\ |\cdot|,\ I_d,\ A^{-1}b\ (\text{batched})
    """

    asarray: Callable  # list/NumPy array -> the library's float array
    exp: Callable
    log1p: Callable
    abs: Callable
    eye: Callable  # d -> (d, d) identity
    solve: Callable  # (..., d, d), (..., d, 1) -> (..., d, 1)


NUMPY = Namespace(lambda a: onp.asarray(a, dtype=float), onp.exp, onp.log1p, onp.abs, lambda d: onp.eye(d),
                  onp.linalg.solve)


def _softplus(ns, a):
    return ns.log1p(ns.exp(-ns.abs(a))) + (a + ns.abs(a)) / 2  # log(1 + e^a), stable


def _mlp(ns, model):
    params = [ns.asarray(p) for p in model["weights"]]
    layers = list(zip(params[0::2], params[1::2]))

    def forward(x):
        h, pre = x, []
        for W, c in layers[:-1]:
            a = h @ W + c
            pre.append(a)
            h = _softplus(ns, a)
        W, c = layers[-1]
        return (h @ W + c)[:, 0], pre

    def energy(x, level=None):
        return forward(x)[0]

    def score(x, level=None):
        _, pre = forward(x)
        grad = layers[-1][0][:, 0] + 0 * pre[-1] if pre else layers[-1][0][:, 0] + 0 * x  # dE/dh_{K-1}
        for (W, _), a in zip(reversed(layers[:-1]), reversed(pre)):
            grad = (grad * ns.exp(-_softplus(ns, -a))) @ W.T  # softplus' = sigmoid = exp(-softplus(-a))
        return -grad
    return energy, score


def _quadratic(ns, model):
    A, b = ns.asarray(model["A"]), ns.asarray(model["b"])
    return (lambda x, level=None: 0.5 * ((x @ A) * x).sum(1) - x @ b,
            lambda x, level=None: -(x @ A) + b)


def _gaussian(ns, model):
    mu, S = ns.asarray(model["mean"]), ns.asarray(model["cov"])
    d, vp = mu.shape[0], model.get("parametrization", "ve") == "vp"
    eye = ns.eye(d)

    def centred(x, level):
        if level is None:
            raise ValueError("a gaussian_family model needs its noise level (sigma or beta), one per row or one")
        lv = ns.asarray(level) + 0 * x[:, 0]  # one level per row
        keep = 1 - lv if vp else 1 + 0 * lv
        noise = lv if vp else lv * lv
        C = keep[:, None, None] * S + noise[:, None, None] * eye
        r = x - (keep**0.5)[:, None] * mu
        return r, ns.solve(C, r[:, :, None])[:, :, 0]

    def energy(x, level=None):
        r, Cr = centred(x, level)
        return 0.5 * (r * Cr).sum(1)

    def score(x, level=None):
        return -centred(x, level)[1]
    return energy, score


def model_functions(model, ns=NUMPY):
    r"""``(energy, score, denoiser)`` of a case's ``model`` on ``ns``'s arrays: ``energy(x, level=None)``
    ``(n,)``, ``score(x, level=None)`` ``(n, d)`` and ``denoiser(x, sigma)``; ``x`` is ``(n, d)``
    (flatten image-shaped points row-major), ``level`` a scalar or one per row (σ for ``ve``, β for
    ``vp``; quadratic and MLP models ignore it). The MLP's score is its energy gradient written
    out by the chain rule.

    .. math:: s = -\nabla_x E,\qquad D(x, \sigma) = x + \sigma^2 s(x, \sigma)\ (\text{Tweedie, VE})
    """
    kind = model["kind"]
    build = {"quadratic": _quadratic, "mlp": _mlp, "gaussian_family": _gaussian}.get(kind)
    if build is None:
        raise ValueError(f"model kind must be 'quadratic', 'mlp' or 'gaussian_family', got {kind!r}")
    energy, score = build(ns, model)

    def denoiser(x, sigma):
        sig = ns.asarray(sigma) + 0 * x[:, 0]
        return x + (sig * sig)[:, None] * score(x, sigma)
    return energy, score, denoiser
