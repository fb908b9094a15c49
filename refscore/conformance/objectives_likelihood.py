r"""Likelihoods: bits per dimension and the probability-flow ODE log-likelihood, each a record with
its cases, its reference (:mod:`refscore.diffusion`) and its known faults.

.. math:: \texttt{bits\_per\_dim} = -\frac{\log p}{D\ln 2} + 8 - \log_2 a,\qquad
          \texttt{pf\_ode\_log\_likelihood} = \log p_\varepsilon(x)

(Theis et al. 2016, §3.1; Song et al. 2021, eq. 39 and Appendix D.2.)
"""
from __future__ import annotations

import math

import numpy as onp
from scipy import integrate

from .. import diffusion as D
from .models import make_sde, spd
from .objective import Fault, Objective, case
from .objectives_sde import sde_spec

__all__ = ["RECORDS", "hutchinson_log_likelihood", "standard_prior_log_likelihood"]


# ---- bits per dimension ---------------------------------------------------------------------------
def _bpd_as_code(c, offset=None, in_bits=True):
    r""":math:`-\log p/(D\ln 2) + \text{offset}` (right: offset :math:`8 - \log_2 a`), or in nats."""
    lp, dim, a = c["log_p"], c["x"][0].size, c["scale"]
    if not in_bits:
        return -lp / dim + 8.0 - math.log2(a)
    return -lp / (dim * math.log(2.0)) + (0.0 if offset is None else offset)


def _bpd_inputs(o, n, shape, rng):
    x = rng.standard_normal((n, *shape))
    return {"x": x, "log_p": rng.uniform(-3.0, 1.0, n) * x[0].size, "scale": o["scale"]}


BITS_PER_DIM = Objective(
    name="bits_per_dim", fields="`x` (for D only), `log_p` (n,), `scale` $a$", text="−log p/(D ln 2) + 8 − log₂ a",
    equation=r"$-\log p/(D\ln2)+8-\log_2a$", source="Theis et al. 2016, §3.1", inputs=_bpd_inputs,
    reference=lambda c: D.bits_per_dim(c["log_p"], c["x"][0].size, c["scale"]),
    cases=(case("01-img", "img", scale=1.0), case("pm1-chw", "chw", scale=2.0)),
    faults=(Fault("missing offset", "−log p/(D ln 2) without + 8 − log₂ a: no dequantisation offset "
                  "(yang-song/score_sde #24; yang-song/score_sde_pytorch #51)", _bpd_as_code),
            Fault("+8 for [−1, 1] data", "+8 (data in [0, 1]) on data scaled to [−1, 1], where +7 belongs "
                  "(jhjacobsen/invertible-resnet #9 hard-codes + 8)", lambda c: _bpd_as_code(c, offset=8.0)),
            Fault("nats for bits", "−log p/D: the log-density not divided by ln 2",
                  lambda c: _bpd_as_code(c, in_bits=False)),
            Fault("bits per image", "−log p/ln 2 + D(8 − log₂ a): the bits of the whole image, not divided by the D "
                  "dimensions (Theis et al. 2016, §3.1: per dimension)",
                  lambda c: c["expected"] * c["x"][0].size),
            Fault("entirely in nats", "−log p/D + (8 − log₂ a) ln 2: every term in nats, the bits/dim times ln 2 "
                  "(Theis et al. 2016, §3.1: bits = nats/ln 2)", lambda c: c["expected"] * math.log(2.0))))


# ---- pf_ode_log_likelihood --------------------------------------------------------------------------
def hutchinson_log_likelihood(c):
    r"""What a PF-ODE log-likelihood computes with Hutchinson's trace (probes ``c["v"]`` held along
    the path) where the exact trace is claimed, on Gaussian data, where :math:`\nabla s=-C_t^{-1}`
    does not depend on x:

    .. math:: \widehat{\log p} = \log p_\varepsilon(x) + \int_\varepsilon^1 \tfrac12 g(t)^2
              \big(v^\top C_t^{-1}v - \operatorname{tr}C_t^{-1}\big)\,dt,\qquad C_t = a_t^2S + s_t^2I
    """
    sde, lam, Q = make_sde(c["sde"]), *onp.linalg.eigh(onp.asarray(c["model"]["cov"], dtype=float))
    V2 = (c["v"].reshape(len(c["v"]), -1) @ Q) ** 2  # (n, d): (Qᵀv)²

    def gap(t, i):
        a, s = sde.marginal_coeffs(t)
        inv = 1.0 / (a * a * lam + s * s)
        return 0.5 * sde.diffusion(t) ** 2 * (V2[i] @ inv - inv.sum())
    extra = [integrate.quad(gap, c["t_min"], 1.0, args=(i,), epsabs=0, epsrel=1e-12, limit=200)[0]
             for i in range(len(V2))]
    return c["expected"] + onp.asarray(extra)


def _gaussian_logpdf(r, var):
    """log N(r; 0, diag(var)) per row of r (n, d)."""
    return -0.5 * (onp.sum(r * r / var, axis=1) + onp.sum(onp.log(2 * onp.pi * var)))


def standard_prior_log_likelihood(c, trace=None):
    r"""The PF-ODE log-likelihood with the SDE's standard prior, :math:`\mathcal N(0,\sigma_\max^2 I)` (VE)
    or :math:`\mathcal N(0, I)` (VP), where the exact :math:`p_1` belongs; on Gaussian data the ODE's end
    point is exact: in the eigenbasis of S, :math:`x_1 - a_1\mu = (x - a_\varepsilon\mu)\sqrt{c_1/c_\varepsilon}`,
    :math:`c_t = a_t^2\lambda + s_t^2`. ``trace``: the value to correct (default the exact one).

    .. math:: \widehat{\log p} = \log p_\varepsilon(x) - \log p_1(x_1) + \log\pi(x_1)
    """
    sde, (lam, Q) = make_sde(c["sde"]), onp.linalg.eigh(onp.asarray(c["model"]["cov"], dtype=float))
    mu = onp.asarray(c["model"]["mean"], dtype=float) @ Q
    (a0, s0), (a1, s1) = sde.marginal_coeffs(float(c["t_min"])), sde.marginal_coeffs(1.0)
    c0, c1 = a0 * a0 * lam + s0 * s0, a1 * a1 * lam + s1 * s1
    y1 = (c["x"].reshape(len(c["x"]), -1) @ Q - a0 * mu) * onp.sqrt(c1 / c0)
    x1 = y1 + a1 * mu
    prior = c["sde"]["sigma_max"] ** 2 if c["sde"]["kind"] == "ve" else 1.0
    base = c["expected"] if trace is None else trace
    return base - _gaussian_logpdf(y1, c1) + _gaussian_logpdf(x1, prior * onp.ones_like(lam))


def _loglik_inputs(o, n, shape, rng):
    """Gaussian data N(mean, cov): its score and prior are exact."""
    x = rng.standard_normal((n, *shape))
    d = x[0].size
    model = {"kind": "gaussian_family", "mean": rng.standard_normal(d), "cov": spd(d, rng, 0.3, 1.5)}
    return {"x": x, "model": model, "sde": sde_spec(o), "t_min": o["t_min"], "v": rng.standard_normal((n, *shape))}


def _loglik(c, t_min=None):
    m = c["model"]
    return D.gaussian_flow_log_likelihood(m["mean"], m["cov"], make_sde(c["sde"]), c["x"],
                                          c["t_min"] if t_min is None else t_min)


PF_ODE_LOG_LIKELIHOOD = Objective(
    name="pf_ode_log_likelihood", fields="`model` (gaussian_family mean, cov: the data law $\\mathcal N(\\mu,S)$), "
    "`sde`, `t_min` ε, `x`, `v` (probes, for Hutchinson estimators)", text="log p_ε(x), exact",
    equation=r"$\log p_\varepsilon(x)=\log\mathcal N(x;a\mu,a^2S+s^2I)$ at ε",
    source="Song et al. 2021, eq. 39, App. D.2", inputs=_loglik_inputs, reference=_loglik,
    tolerances={"float64": (1e-5, 1e-6), "float32": (1e-4, 1e-5)},  # implementations solve an ODE
    cases=(case("vp-flat", "flat", sde="vp", t_min=0.05),
           case("ve-img", "img", sde={"kind": "ve", "sigma_min": 0.1, "sigma_max": 10.0}, t_min=0.1)),
    faults=(Fault("Hutchinson for the exact trace", "vᵀ∇s v with fixed probes where the exact trace is claimed "
                  "(FFJORD's estimator, Grathwohl et al. 2019; score_sde likelihood.py uses it by default)",
                  hutchinson_log_likelihood),
            Fault("integral started at t = 0", "the ODE integrated from 0 instead of ε: log p₀(x), the data density, "
                  "not log p_ε(x) (Song et al. 2021, Appendix D.2)", lambda c: _loglik(c, t_min=0.0)),
            Fault("standard prior", "the ODE's end point scored by the SDE's prior N(0, σ_max²I) (VE) or N(0, I) "
                  "(VP), not the exact p₁ (yang-song/score_sde likelihood.py, sde.prior_logp; Song et al. 2021, "
                  "App. D.2)", standard_prior_log_likelihood, convention=True),
            Fault("Hutchinson trace and the standard prior", "Hutchinson's trace with probes v and the prior N(0, "
                  "σ_max²I) or N(0, I): score_sde's likelihood.py as shipped (Grathwohl et al. 2019; Song et al. "
                  "2021, App. D.2)", lambda c: standard_prior_log_likelihood(c, hutchinson_log_likelihood(c)),
                  convention=True)))

RECORDS = (BITS_PER_DIM, PF_ODE_LOG_LIKELIHOOD)
