r"""The three model kinds a conformance case can carry, evaluated on flattened points, and its SDEs.

A case stores its model as plain arrays so that any framework can rebuild it:

* ``{"kind": "quadratic", "A": (d, d) symmetric, "b": (d,)}``:

  .. math:: E(x) = \tfrac12 x^\top A x - b^\top x,\qquad s(x) = -Ax + b

* ``{"kind": "mlp", "weights": [W1, c1, ..., WK, cK], "activation": "softplus"}``:

  .. math:: h_0 = x,\quad h_k = \operatorname{softplus}(h_{k-1}W_k + c_k)\ (k<K),\quad
            E(x) = h_{K-1}W_K + c_K,\qquad s(x) = -\nabla_x E(x)

  with ``W_k`` of shape (fan_in, fan_out) (rows times weights, as in :mod:`refscore.models.nn`) and a
  linear output of width 1 (seed ``001_…``, "Neural net predicts energy of a given state").

* ``{"kind": "gaussian_family", "mean": (d,), "cov": (d, d), "parametrization": "ve" | "vp"}``:
  the exact score of the noised Gaussian at noise level ``t``,

  .. math:: \text{ve: } \mathcal N(\mu, S + \sigma^2 I),\qquad
            \text{vp: } \mathcal N(\sqrt{1-\beta}\,\mu,\ (1-\beta)S + \beta I)

  (the VP law is seed ``003_…``, eq. 11.5 applied to :math:`\mathcal N(\mu,S)`).

An SDE is ``{"kind": "ve", "sigma_min", "sigma_max"}`` or ``{"kind": "vp" | "subvp", "beta_min",
"beta_max"}`` (:func:`make_sde`).

The noise-conditional objectives (``ncsn``, ``vp_denoising``) call ``score(x, level)``; for the
quadratic and MLP kinds the level is ignored. Everything here is evaluated through refscore's
own energies (:class:`~refscore.energies.Gaussian`, :class:`~refscore.energies.MLPEnergy`).
"""
from __future__ import annotations

import math

import autograd.numpy as anp
import numpy as onp
from autograd import elementwise_grad

from ..sde import VESDE, VPSDE, SubVPSDE

__all__ = ["energy_fn", "score_fn", "noise_conditional_score_fn", "flat", "log_prob_fn", "score_jacobian", "spd",
           "random_model", "make_sde"]


def flat(a):
    r"""Flatten image-shaped points ``(n, *shape)`` to rows ``(n, d)`` (row-major).

    .. math:: d = \textstyle\prod_k \text{shape}_k
    """
    return anp.reshape(a, (a.shape[0], -1))


def _mlp_energy(model):
    from ..energies import MLPEnergy

    w = model["weights"]
    if len(w) % 2 or not w:
        raise ValueError(f"mlp weights must be [W1, c1, ..., WK, cK], got {len(w)} arrays")
    params = [{"W": onp.asarray(w[i]), "b": onp.asarray(w[i + 1])} for i in range(0, len(w), 2)]
    if params[-1]["W"].shape[1] != 1:
        raise ValueError(f"the mlp output width must be 1, got {params[-1]['W'].shape[1]}")
    return MLPEnergy(params[0]["W"].shape[0], activation=model.get("activation", "softplus"),
                     params=params)


def energy_fn(model):
    r"""The energy of a ``quadratic`` or ``mlp`` model: (n, d) -> (n,), autograd-traceable.

    .. math:: E(x) = \tfrac12 x^\top A x - b^\top x \quad\text{or}\quad E(x) = \mathrm{MLP}(x)
    """
    kind = model["kind"]
    if kind == "quadratic":
        A, b = onp.asarray(model["A"]), onp.asarray(model["b"])
        return lambda x: 0.5 * anp.sum((x @ A) * x, axis=1) - x @ b
    if kind == "mlp":
        return _mlp_energy(model).energy
    raise ValueError(f"model kind {kind!r} has no energy here; expected 'quadratic' or 'mlp'")


def score_fn(model, level=None):
    r"""The score :math:`s=-\nabla E` of a model as a function of flattened ``x`` (n, d) -> (n, d).

    For ``gaussian_family`` the noise ``level`` (σ for ``ve``, β for ``vp``) must be given.

    .. math:: s(x) = -\nabla_x E(x)\quad(\text{seed } 001\_\ldots,\ \text{score function})
    """
    kind = model["kind"]
    if kind == "quadratic":
        A, b = onp.asarray(model["A"]), onp.asarray(model["b"])
        return lambda x: b - x @ A  # (n, d); A symmetric
    if kind == "mlp":
        return _mlp_energy(model).score_fn()
    if kind == "gaussian_family":
        return _gaussian_at(model, level).score
    raise ValueError(f"unknown model kind {kind!r}; expected 'quadratic', 'mlp' or 'gaussian_family'")


def _gaussian_at(model, level):
    from ..energies import Gaussian

    if level is None:
        raise ValueError("a gaussian_family model needs its noise level (sigma or beta)")
    mu, S = onp.asarray(model["mean"]), onp.asarray(model["cov"])
    eye = onp.eye(mu.shape[0])
    t = float(level)
    if model.get("parametrization", "ve") == "ve":
        return Gaussian(mu, S + t * t * eye)
    return Gaussian(math.sqrt(1.0 - t) * mu, (1.0 - t) * S + t * eye)


def noise_conditional_score_fn(model):
    r"""``(x, level) -> s(x, level)``: the gaussian family's exact noised score, or the
    level-free score of a quadratic / MLP model.

    .. math:: s(x,\sigma) = -(S+\sigma^2 I)^{-1}(x-\mu)\quad(\text{ve})
    """
    if model["kind"] == "gaussian_family":
        return lambda x, level: _rowwise(model, x, level)
    s = score_fn(model)
    return lambda x, level: s(x)


def _rowwise(model, x, level):
    """The exact noised score with one level for the batch, or an ``(n,)`` level per row."""
    if onp.ndim(level) == 0:
        return _gaussian_at(model, level).score(x)
    level = onp.asarray(level, dtype=float).reshape(-1)
    out = onp.empty(x.shape)
    for t in onp.unique(level):
        rows = level == t
        out[rows] = _gaussian_at(model, t).score(x[rows])
    return out


def log_prob_fn(model):
    r"""The unnormalised log-density of a quadratic / MLP model.

    .. math:: \log\tilde p(x) = -E(x)\quad(p = e^{-E}/Z,\ \text{API.md conventions})
    """
    E = energy_fn(model)
    return lambda x: -E(x)


def score_jacobian(model, x, level=None):
    r"""Per-example Jacobians of the score: (n, d, d).

    .. math:: J_{ij}(x) = \partial s_i(x)/\partial x_j = -\partial^2 E/\partial x_i\partial x_j

    One reverse pass per output coordinate (autograd); the rows of the batch do not interact.
    """
    s = score_fn(model, level)
    n, d = x.shape
    J = onp.empty((n, d, d))
    for i in range(d):
        J[:, i, :] = elementwise_grad(lambda y: anp.sum(s(y)[:, i]))(x)
    return J


def spd(d, rng, lo, hi):
    r"""A random symmetric positive-definite (d, d) matrix with eigenvalues in [lo, hi].

    .. math:: S = Q\,\mathrm{diag}(\lambda)\,Q^\top,\quad \lambda_k\sim U(lo, hi)
    """
    q, _ = onp.linalg.qr(rng.standard_normal((d, d)))
    S = (q * rng.uniform(lo, hi, d)) @ q.T
    return (S + S.T) / 2


def random_model(kind, d, rng, parametrization="ve"):
    r"""A random model of ``kind`` on d features, drawn from ``rng``, as a case stores it:
    ``quadratic`` (A with eigenvalues in [0.5, 2]), ``mlp`` (d → 8 → 8 → 1, softplus, weights
    scaled by 1/√fan_in) or ``gaussian_family`` (covariance eigenvalues in [0.3, 1.5]).

    .. math:: E(x) = \tfrac12 x^\top A x - b^\top x,\quad \mathrm{MLP}(x),\quad
              \text{or } \mathcal N(\mu, S)\ \text{noised}
    """
    if kind == "quadratic":
        return {"kind": "quadratic", "A": spd(d, rng, 0.5, 2.0), "b": 0.5 * rng.standard_normal(d)}
    if kind == "mlp":
        weights = []
        for fan_in, fan_out in zip((d, 8, 8), (8, 8, 1)):
            weights += [rng.standard_normal((fan_in, fan_out)) / onp.sqrt(fan_in),
                        0.3 * rng.standard_normal(fan_out)]
        return {"kind": "mlp", "weights": weights, "activation": "softplus"}
    if kind == "gaussian_family":
        return {"kind": "gaussian_family", "mean": rng.standard_normal(d), "cov": spd(d, rng, 0.3, 1.5),
                "parametrization": parametrization}
    raise ValueError(f"model kind must be 'quadratic', 'mlp' or 'gaussian_family', got {kind!r}")


def make_sde(spec):
    r"""The :class:`refscore.sde.SDE` of a case's ``sde`` dict: ``{"kind": "ve", "sigma_min",
    "sigma_max"}`` or ``{"kind": "vp" | "subvp", "beta_min", "beta_max"}``.

    .. math:: \text{ve: } \sigma(t)=\sigma_\min(\sigma_\max/\sigma_\min)^t;\quad
              \text{vp, subvp: } \beta(t)=\beta_\min+t(\beta_\max-\beta_\min)
              \quad(\text{Song et al. 2021, Appendix B})
    """
    kind = spec["kind"]
    if kind == "ve":
        return VESDE(spec["sigma_min"], spec["sigma_max"])
    if kind in ("vp", "subvp"):
        return (VPSDE if kind == "vp" else SubVPSDE)(spec["beta_min"], spec["beta_max"])
    raise ValueError(f"sde kind must be 've', 'vp' or 'subvp', got {kind!r}")
