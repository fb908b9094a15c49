r"""A case's model as JAX functions (``jax.numpy`` arrays), so that a user only writes the call into
their own code. JAX is optional: it is imported when a function here is called, and refscore never
depends on it. Enable float64 first (``jax.config.update("jax_enable_x64", True)``) to meet the
float64 tolerance; otherwise verify with ``dtype="float32"``.

.. math:: s = -\nabla_x E,\qquad D(x, \sigma) = x + \sigma^2 s(x, \sigma)
"""
from __future__ import annotations

from .frameworks import Namespace, model_functions

__all__ = ["namespace", "energy_fn", "score_fn", "denoiser_fn"]


def namespace():
    r"""The :class:`.frameworks.Namespace` of ``jax.numpy`` (the default float dtype: float64 with x64 enabled).

    .. math:: \text{asarray} = \texttt{jnp.asarray}
    """
    try:
        import jax.numpy as jnp
    except ImportError as e:
        raise ImportError("refscore.conformance.jax needs JAX, which refscore does not install; pip install jax") from e
    return Namespace(lambda a: jnp.asarray(a, dtype=float), jnp.exp, jnp.log1p, jnp.abs, jnp.eye, jnp.linalg.solve)


def energy_fn(model):
    r"""``E(x, level=None)`` of ``(n, d)`` arrays, ``(n,)``.

    .. math:: E(x)
    """
    return model_functions(model, namespace())[0]


def score_fn(model):
    r"""``s(x, level=None)`` of ``(n, d)`` arrays, ``(n, d)``; differentiable by ``jax.grad`` too.

    .. math:: s(x) = -\nabla_x E(x)
    """
    return model_functions(model, namespace())[1]


def denoiser_fn(model):
    r"""``D(x, sigma)``: the exact denoiser of a ``gaussian_family`` (ve) model.

    .. math:: D(x,\sigma) = x + \sigma^2 s(x,\sigma)
    """
    return model_functions(model, namespace())[2]
