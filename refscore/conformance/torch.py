r"""A case's model as PyTorch functions, so that a user only writes the call into their own code.
PyTorch is optional: it is imported when a function here is called (``pip install torch``), and
refscore never depends on it.

::

    from refscore.conformance import torch as ct

    def my_dsm(case):
        c = ct.tensors(case)                       # every array of the case, as float64 tensors
        score = ct.score_fn(case["model"])        # (n, d) tensor -> (n, d) score, torch code
        return my_library.dsm_loss(score, c["x"], c["x_noisy"], c["sigma"], reduction="none")

.. math:: s = -\nabla_x E,\qquad D(x, \sigma) = x + \sigma^2 s(x, \sigma)
"""
from __future__ import annotations

import numpy as onp

from .frameworks import Namespace, model_functions

__all__ = ["namespace", "tensors", "energy_fn", "score_fn", "denoiser_fn"]


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("refscore.conformance.torch needs PyTorch, which refscore does not install; "
                          "pip install torch") from e
    return torch


def namespace(dtype=None, device=None):
    r"""The :class:`.frameworks.Namespace` of PyTorch: tensors of ``dtype`` (default float64) on ``device``.

    .. math:: \text{asarray} = \texttt{torch.as\_tensor}
    """
    torch = _torch()
    dtype = torch.float64 if dtype is None else dtype

    def asarray(a):
        return torch.as_tensor(a, dtype=dtype, device=device) if not torch.is_tensor(a) else a.to(dtype)
    return Namespace(asarray, torch.exp, torch.log1p, torch.abs,
                     lambda d: torch.eye(d, dtype=dtype, device=device), torch.linalg.solve)


def tensors(case, dtype=None, device=None):
    r"""``case`` with every floating or integer NumPy array a tensor (floats as ``dtype``, default
    float64; integer steps stay int64); dicts (``model``, ``sde``) are converted inside, the rest kept.

    .. math:: \text{array} \mapsto \texttt{torch.as\_tensor(array)}
    """
    torch = _torch()
    dtype = torch.float64 if dtype is None else dtype

    def convert(v):
        if isinstance(v, dict):
            return {k: convert(u) for k, u in v.items()}
        if isinstance(v, list):
            return [convert(u) for u in v]
        if isinstance(v, onp.ndarray) and onp.issubdtype(v.dtype, onp.floating):
            return torch.as_tensor(v, dtype=dtype, device=device)
        if isinstance(v, onp.ndarray) and onp.issubdtype(v.dtype, onp.integer):
            return torch.as_tensor(v, dtype=torch.int64, device=device)
        return v
    return convert(case)


def _fn(model, which, dtype, device):
    return model_functions(model, namespace(dtype, device))[which]


def energy_fn(model, dtype=None, device=None):
    r"""``E(x, level=None)``: the case model's energy of ``(n, d)`` tensors, ``(n,)``.

    .. math:: E(x)\ \text{(quadratic, mlp)};\quad \tfrac12(x-m_\ell)^\top C_\ell^{-1}(x-m_\ell)\ \text{(gaussian)}
    """
    return _fn(model, 0, dtype, device)


def score_fn(model, dtype=None, device=None):
    r"""``s(x, level=None)``: the case model's score of ``(n, d)`` tensors, ``(n, d)`` (differentiable
    in x by autograd too).

    .. math:: s(x) = -\nabla_x E(x)
    """
    return _fn(model, 1, dtype, device)


def denoiser_fn(model, dtype=None, device=None):
    r"""``D(x, sigma)``: the exact denoiser of a ``gaussian_family`` (ve) model, for EDM samplers.

    .. math:: D(x,\sigma) = x + \sigma^2 s(x,\sigma)
    """
    return _fn(model, 2, dtype, device)
