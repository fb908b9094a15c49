r"""The constants of the score-matching identities, so that users can check "equal up to a
constant" themselves (re-exported as ``refscore.losses.esm_ism_gap`` / ``dsm_esm_gap``).

.. math::
   \mathrm{ESM}(\theta) - \mathrm{ISM}(\theta) &= \tfrac12\mathbb E\|s^*\|^2
        &&\text{(Hyvärinen 2005, Thm 1)}\\
   \mathrm{DSM}_\sigma(\theta) - \mathrm{ESM}_{p_\sigma}(\theta) &= C(\sigma)
        &&\text{(Vincent 2011, §4.2; seed 004\_…, Q1)}
"""
from __future__ import annotations

import math

import autograd.numpy as anp
from autograd.tracer import getval

from ._math import sqnorm
from ._validation import check_choice, check_points, check_positive, check_positive_int

__all__ = ["esm_ism_gap", "dsm_esm_gap"]


def esm_ism_gap(true_score_fn, x):
    r"""The constant :math:`\mathrm{ESM}(\theta)-\mathrm{ISM}(\theta)=\tfrac12\mathbb E_{p^*}\|s^*(x)\|^2`
    (Hyvärinen 2005, Thm 1), estimated on the sample ``x`` (a batch mean, like the losses).

    For Gaussian data :math:`\mathcal N(\mu,S)` its expectation is :math:`\tfrac12\operatorname{tr}S^{-1}`.
    """
    x = check_points(x)
    s = true_score_fn(x)
    if tuple(getval(s).shape) != tuple(getval(x).shape):
        raise ValueError(f"true_score_fn must map (n, d) to (n, d); got {tuple(getval(s).shape)} "
                         f"for input {tuple(getval(x).shape)}")
    return anp.mean(0.5 * sqnorm(s))


def dsm_esm_gap(data, sigma, method="auto", rng=None, n_mc=200_000, bounds=None, return_stderr=False):
    r"""The constant :math:`C(\sigma)=\mathrm{DSM}_\sigma(\theta)-\mathrm{ESM}_{p_\sigma}(\theta)`
    (Vincent 2011, §4.2; seed 004_…, Q1 derivation, ½ convention):

    .. math:: C(\sigma) = \frac{d}{2\sigma^2} - \tfrac12\,\mathbb E_{p_\sigma}\|\nabla\log p_\sigma(\tilde x)\|^2

    (the first term is :math:`\tfrac12\mathbb E\|\nabla\log q_\sigma(\tilde x\mid x)\|^2=\tfrac12\mathbb E\|z\|^2/\sigma^2`).

    Methods (``method="auto"`` picks the first that applies):

    * ``"closed"`` for a :class:`~refscore.energies.Gaussian` :math:`\mathcal N(\mu,S)`:
      :math:`C=\tfrac12\big(d/\sigma^2-\operatorname{tr}(S+\sigma^2I)^{-1}\big)`;
    * ``"quadrature"`` for a :class:`~refscore.energies.GaussianMixture` with d ≤ 2 (SciPy);
    * ``"mc"`` otherwise: Monte Carlo over :math:`n_{mc}` samples of :math:`p_\sigma`, with its
      standard error (``return_stderr=True`` returns ``(value, stderr)``; the closed form and
      quadrature report stderr 0). ``n_mc`` >= 2, so that the standard error is defined.

    ``data`` must be a :class:`~refscore.energies.Gaussian` or a
    :class:`~refscore.energies.GaussianMixture` (anything else is a ``TypeError``).
    """
    import numpy
    from scipy import integrate

    from .energies import Gaussian, GaussianMixture

    s = check_positive(sigma, "sigma")
    check_choice(method, "method", ("auto", "closed", "quadrature", "mc"))
    if not isinstance(data, (Gaussian, GaussianMixture)):
        raise TypeError(f"data must be the law of the data as a refscore.energies.Gaussian or GaussianMixture "
                        f"(C(sigma) needs its score), got {type(data).__name__}; pass the law the samples "
                        "were drawn from")
    d = data.dim
    if method == "auto":
        method = ("closed" if isinstance(data, Gaussian) else
                  "quadrature" if isinstance(data, GaussianMixture) and d <= 2 else "mc")
    se = 0.0
    if method == "closed":
        if not isinstance(data, Gaussian):
            raise ValueError("method='closed' needs Gaussian data")
        S = data.backend.to_numpy(data.cov)
        value = 0.5 * (d / s**2 - numpy.trace(numpy.linalg.inv(S + s**2 * numpy.eye(d))))
    else:
        if not isinstance(data, GaussianMixture):
            raise ValueError("quadrature/mc gaps need GaussianMixture data (Gaussian: method='closed')")
        p = data.perturbed(s)
        if method == "quadrature":
            if d > 2:
                raise ValueError("quadrature is offered for d <= 2")
            h = p.host_params
            spread = float(numpy.sqrt(h["covs"].diagonal(axis1=1, axis2=2).max()))
            lo, hi = float(h["means"].min()) - 12 * spread, float(h["means"].max()) + 12 * spread
            ref = GaussianMixture(h["weights"], h["means"], h["covs"])  # host copy

            def f(pts):
                return numpy.exp(-ref.energy(pts)) * sqnorm(ref.score(pts))

            if d == 1:
                e2 = integrate.quad(lambda t: f(numpy.array([[t]]))[0], lo, hi, limit=400)[0]
            else:
                inner = lambda t: integrate.fixed_quad(
                    lambda u: f(numpy.stack([numpy.full_like(u, t), u], 1)), lo, hi, n=400)[0]
                e2 = integrate.quad(inner, lo, hi, limit=200)[0]
            value = 0.5 * (d / s**2 - e2)
        else:
            if rng is None:
                raise ValueError("method='mc' needs rng")
            bk = data.backend
            xs = p.sample(check_positive_int(n_mc, "n_mc", minimum=2), rng)  # 2+: a standard error
            sq = bk.to_numpy(sqnorm(p.score(xs)))
            value = 0.5 * (d / s**2 - sq.mean())
            se = 0.5 * sq.std(ddof=1) / math.sqrt(sq.size)
    return (float(value), float(se)) if return_stderr else float(value)
