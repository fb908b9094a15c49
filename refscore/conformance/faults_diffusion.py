r"""Known faults of the diffusion objectives, as the faulty code computes them on a case
(registered in :data:`refscore.conformance.faults.FAULTS`). Each explanation names its source:
a repository file or issue, or the paper and equation the code departs from.

A fault that does not apply to a case (the sub-VP std on a VE case) returns the reference
values: the verifier then treats it as invisible there.

.. math:: \text{e.g. bits/dim without the offset:}\quad -\frac{\log p}{D\ln 2}
          \ \text{instead of}\ -\frac{\log p}{D\ln 2} + 8 - \log_2 a\quad(\text{score\_sde \#24, \#51})
"""
from __future__ import annotations

import math

import numpy as onp
from scipy import integrate

from .. import diffusion as D
from .fault_registry import register
from .reference_diffusion import make_sde

__all__ = ["hutchinson_log_likelihood"]


def _col(c, x):
    return onp.asarray(c, dtype=float).reshape((-1,) + (1,) * (onp.ndim(x) - 1)) if onp.ndim(c) else float(c)


def _steps(objective, explanation_by_name, fn):
    for name, explanation in explanation_by_name.items():
        register(objective, name, explanation)(lambda c, name=name: fn(c, name))


# ---- sde_marginal: (mean coefficient, std) ----------------------------------------------------
def _marginal(c, fault):
    sde, t = c["sde"], onp.asarray(c["t"], dtype=float)
    a, s = c["expected"][:, 0], c["expected"][:, 1]
    if fault == "variance as std":
        return onp.stack([a, s * s], 1)
    if fault == "VE std σ(t)" and sde["kind"] == "ve":
        return onp.stack([a, sde["sigma_min"] * (sde["sigma_max"] / sde["sigma_min"]) ** t], 1)
    if sde["kind"] == "ve":
        return c["expected"]
    B = t * sde["beta_min"] + 0.5 * t * t * (sde["beta_max"] - sde["beta_min"])
    if fault == "discrete β as β(t)":  # score_sde's discrete_betas = β(t)/N, N = 1000
        B = B / 1000.0
        return onp.stack([onp.exp(-0.5 * B), -onp.expm1(-B) if sde["kind"] == "subvp" else onp.sqrt(-onp.expm1(-B))], 1)
    if fault == "sub-VP std √(1−e^{−B})" and sde["kind"] == "subvp":
        return onp.stack([a, onp.sqrt(-onp.expm1(-B))], 1)
    return c["expected"]


_steps("sde_marginal", {
    "variance as std": "the variance s² returned where the std s belongs (the slip of wjmaddox/drbayes #6, "
                       "here in marginal_prob)",
    "discrete β as β(t)": "the discrete DDPM βᵢ = β(t)/N (score_sde sde_lib.py, VPSDE.discrete_betas, N = 1000) "
                          "used as the continuous β(t): B(t) shrinks by N",
    "VE std σ(t)": "VE std σ(t), score_sde's marginal_prob, where the noise added since t = 0 has std "
                   "√(σ(t)² − σ_min²) (refscore's choice; docs/conformance.md)",
    "sub-VP std √(1−e^{−B})": "the VP std for sub-VP, whose std is 1 − e^{−B(t)} (Song et al. 2021, eq. 29; "
                              "score_sde subVPSDE.marginal_prob)"}, _marginal)


# ---- DDPM -------------------------------------------------------------------------------------
def _ab(c):
    return onp.cumprod(1.0 - onp.asarray(c["betas"], dtype=float))


def _ddpm_marginal(c, fault):
    ab, t, x0, eps = _ab(c), onp.asarray(c["t"]), c["x"], c["eps"]
    a = {"ᾱ_{t−1} for ᾱ_t": onp.concatenate([[1.0], ab[:-1]]),
         "α_t for ᾱ_t": 1.0 - onp.asarray(c["betas"])}.get(fault, ab)[t]
    noise = (1.0 - a) if fault == "variance as std" else onp.sqrt(1.0 - a)
    return _col(onp.sqrt(a), x0) * x0 + _col(noise, x0) * eps


_steps("ddpm_marginal", {
    "ᾱ_{t−1} for ᾱ_t": "an index off by one: ᾱ of the previous step (the paper's 1-based t on 0-based arrays; "
                       "Ho et al. 2020, eq. 4)",
    "α_t for ᾱ_t": "the one-step αₜ = 1 − βₜ where the product ᾱₜ = Π αₛ belongs (Ho et al. 2020, eq. 4)",
    "variance as std": "(1 − ᾱₜ)ε where √(1 − ᾱₜ)ε belongs (Ho et al. 2020, eq. 4)"}, _ddpm_marginal)


def _posterior(c, fault):
    b, t = onp.asarray(c["betas"], dtype=float), onp.asarray(c["t"])
    ab = _ab(c)
    prev = ab[t] if fault == "ᾱ_t for ᾱ_{t−1}" else onp.concatenate([[1.0], ab[:-1]])[t]
    bt, abt = b[t], ab[t]
    c0 = (prev if fault == "ᾱ_{t−1} for √ᾱ_{t−1}" else onp.sqrt(prev)) * bt / (1 - abt)
    var = bt if fault == "β for β̃" else bt * (1 - prev) / (1 - abt)
    return onp.stack([c0, onp.sqrt(1 - bt) * (1 - prev) / (1 - abt), var], 1)


_steps("ddpm_posterior", {
    "β for β̃": "the posterior variance taken as βₜ where β̃ₜ = βₜ(1−ᾱₜ₋₁)/(1−ᾱₜ) belongs "
               "(jhbastek/PhysicsInformedDiffusionModels #4; KimRass/DDPM #1; Ho et al. 2020, eq. 7)",
    "ᾱ_t for ᾱ_{t−1}": "ᾱₜ where ᾱₜ₋₁ belongs in the posterior (an index off by one; Ho et al. 2020, eq. 7)",
    "ᾱ_{t−1} for √ᾱ_{t−1}": "the x₀ coefficient with ᾱₜ₋₁ where √ᾱₜ₋₁ belongs (Ho et al. 2020, eq. 7)"},
    _posterior)


def _log_variance(c, fault):
    b, t = onp.asarray(c["betas"], dtype=float), onp.asarray(c["t"])
    small, large = c["expected"][:, 0], c["expected"][:, 1]
    if fault == "fixed-large first entry unclipped":
        large = onp.log(b[t])
    elif fault == "variance stored as log-variance":
        small, large = onp.exp(small), onp.exp(large)
    elif fault == "small and large swapped":
        small, large = large, small
    return onp.stack([small, large], 1)


_steps("ddpm_log_variance", {
    "fixed-large first entry unclipped": "log βₜ at t = 0 while the variance is [β̃₁, β₁, …]: variance and "
        "log-variance disagree at t = 0 (zoubohao/DenoisingDiffusionProbabilityModel-ddpm- #18; "
        "openai/improved-diffusion gaussian_diffusion.py, FIXED_LARGE)",
    "variance stored as log-variance": "the variance where its log belongs (tqch/ddpm-torch #9)",
    "small and large swapped": "log β̃ and log β exchanged: the other choice of σₜ² (Ho et al. 2020, §3.2)"},
    _log_variance)


def _ancestral(c, fault):
    b, t, x = onp.asarray(c["betas"], dtype=float), onp.asarray(c["t"]), c["x"]
    ab = _ab(c)[t]
    small = c["variance"] == "small" and fault != "β for β̃"
    var = D.posterior_coefficients(b, t)[2] if small else b[t]
    std = onp.sqrt(var) if fault == "noise at t = 0" else onp.where(t == 0, 0.0, onp.sqrt(var))
    coef = b[t] / ((1 - ab) if fault == "√(1−ᾱ_t) missing" else onp.sqrt(1 - ab))
    return (x - _col(coef, x) * c["eps_pred"]) / _col(onp.sqrt(1 - b[t]), x) + _col(std, x) * c["z"]


_steps("ddpm_ancestral_step", {
    "noise at t = 0": "noise added at the last step too (Ho et al. 2020, Algorithm 2: z = 0 when t = 1)",
    "β for β̃": "σₜ² = βₜ where the case asks for β̃ₜ (jhbastek/PhysicsInformedDiffusionModels #4)",
    "√(1−ᾱ_t) missing": "βₜ/(1−ᾱₜ) ε̂ where βₜ/√(1−ᾱₜ) ε̂ belongs (Ho et al. 2020, eq. 11)"}, _ancestral)


# ---- parametrisation conversions --------------------------------------------------------------
_steps("score_from_eps", {
    "sign": "+ε/σ: the score is −ε/σ (Song et al. 2021, Appendix B; score_sde losses.py)",
    "σ² for σ": "−ε/σ²: the variance where the std belongs",
    "σ missing": "−ε: the noise prediction used as the score"},
    lambda c, f: -c["eps"] * {"sign": -1.0}.get(f, 1.0) / _col({"σ² for σ": c["sigma"] ** 2, "σ missing": 1.0 + 0 * c["sigma"]}
                                                               .get(f, c["sigma"]), c["x"]))
_steps("x0_from_score", {
    "σ for σ²": "(x + σ s)/α: σ where σ² belongs (the slip of score_sde #26, in Tweedie's formula)",
    "α_t missing": "x + σ² s: the division by αₜ dropped (right for VE only; seed 003, eq. 11.13)",
    "sign": "(x − σ² s)/α: the energy gradient used as the score"},
    lambda c, f: (c["x"] + {"sign": -1.0}.get(f, 1.0) * _col(c["sigma"] if f == "σ for σ²" else c["sigma"] ** 2, c["x"])
                  * c["score"]) / _col(1.0 if f == "α_t missing" else c["alpha"], c["x"]))
_steps("v_target", {
    "sign": "σx₀ − αε: v with the opposite sign (Salimans & Ho 2022, §4: v = αε − σx)",
    "α and σ swapped": "σε − αx₀: the two coefficients exchanged (Salimans & Ho 2022, §4)"},
    lambda c, f: (-1.0 if f == "sign" else 1.0) * (
        _col(c["sigma"] if f == "α and σ swapped" else c["alpha"], c["x"]) * c["eps"]
        - _col(c["alpha"] if f == "α and σ swapped" else c["sigma"], c["x"]) * c["x"]))
_steps("edm_score", {
    "sign": "(x − D)/σ²: the score is (D − x)/σ² (Karras et al. 2022, eq. 3)",
    "σ for σ²": "(D − x)/σ: k-diffusion's to_d with its sign flipped taken for the score (Karras eq. 3)"},
    lambda c, f: (-1.0 if f == "sign" else 1.0) * (c["denoised"] - c["x"])
    / _col(c["sigma"] if f == "σ for σ²" else c["sigma"] ** 2, c["x"]))
_steps("edm_to_d", {
    "sign": "(D − x)/σ: dx/dσ is (x − D)/σ (k-diffusion sampling.py, to_d; Karras et al. 2022, eq. 4)",
    "σ² for σ": "(x − D)/σ²: that is −score, not dx/dσ = −σ·score"},
    lambda c, f: (-1.0 if f == "sign" else 1.0) * (c["x"] - c["denoised"])
    / _col(c["sigma"] ** 2 if f == "σ² for σ" else c["sigma"], c["x"]))


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


register("pf_ode_log_likelihood", "Hutchinson for the exact trace",
         "vᵀ∇s v with fixed probes where the exact trace is claimed (FFJORD's estimator, Grathwohl et al. "
         "2019; score_sde likelihood.py uses it by default)")(hutchinson_log_likelihood)
register("pf_ode_log_likelihood", "integral started at t = 0",
         "the ODE integrated from 0 instead of ε: log p₀(x), the data density, not log p_ε(x) "
         "(Song et al. 2021, Appendix D.2)")(
    lambda c: D.gaussian_flow_log_likelihood(c["model"]["mean"], c["model"]["cov"], make_sde(c["sde"]), c["x"], 0.0))


# ---- bits per dimension ------------------------------------------------------------------------
def _bpd(c, fault):
    lp, dim, a = c["log_p"], c["x"][0].size, c["scale"]
    if fault == "missing offset":
        return -lp / (dim * math.log(2.0))
    if fault == "+8 for [−1, 1] data":
        return -lp / (dim * math.log(2.0)) + 8.0
    return -lp / dim + 8.0 - math.log2(a)  # nats


_steps("bits_per_dim", {
    "missing offset": "−log p/(D ln 2) without + 8 − log₂ a: no dequantisation offset (yang-song/score_sde #24; "
                      "yang-song/score_sde_pytorch #51)",
    "+8 for [−1, 1] data": "+8 (data in [0, 1]) on data scaled to [−1, 1], where +7 belongs "
                           "(jhjacobsen/invertible-resnet #9 hard-codes + 8)",
    "nats for bits": "−log p/D: the log-density not divided by ln 2"}, _bpd)
