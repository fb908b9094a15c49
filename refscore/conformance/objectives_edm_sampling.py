r"""EDM sampling and training draws (Karras et al. 2022): the full σ list of a sampler, EDM's VP
σ(t), the log-normal training level, the churn γ and σ̂, and one Euler or Heun step with churn,
each a record with its cases, its reference and its known faults. The references are written here
(:mod:`refscore.diffusion` has no σ list, churn or sampler step yet). The steps' denoiser is that of
Gaussian data, exact: :math:`D(x,\sigma) = x + \sigma^2 s(x,\sigma)`, ``s`` the case's
``gaussian_family`` model.

.. math:: \hat\sigma = \sigma(1+\gamma),\ \hat x = x + \sqrt{\hat\sigma^2-\sigma^2}S_\text{noise}z,\
          x' = \hat x + (\sigma_\text{next}-\hat\sigma)\frac{\hat x - D(\hat x,\hat\sigma)}{\hat\sigma}
          \quad(\text{Karras et al. 2022, Alg. 2})
"""
from __future__ import annotations

import numpy as onp

from .. import diffusion as D
from ..diffusion.parametrisation import per_example
from .models import flat, noise_conditional_score_fn, spd
from .objective import Fault, Objective, case

__all__ = ["RECORDS", "sigma_list", "edm_churn", "edm_step"]


# ---- karras_sigma_list -----------------------------------------------------------------------------
def sigma_list(c, repeat_last=False, n_plus_one=False):
    r"""The N + 1 σ's a sampler steps through: Karras et al.'s σ₀ … σ_{N−1}, then σ_N = 0.

    .. math:: \sigma_i = \Big(\sigma_\max^{1/\rho}+\tfrac{i}{N-1}(\sigma_\min^{1/\rho}-\sigma_\max^{1/\rho})\Big)^\rho,
              \ \sigma_N = 0\quad(\text{Karras et al. 2022, eq. 5})
    """
    n, i = int(c["N"]), onp.asarray(c["i"])
    if n_plus_one:
        return D.karras_sigmas(i, n + 1, c["sigma_min"], c["sigma_max"], c["rho"])
    s = D.karras_sigmas(onp.minimum(i, n - 1), n, c["sigma_min"], c["sigma_max"], c["rho"])
    return onp.where(i < n, s, s if repeat_last else 0.0)


KARRAS_SIGMA_LIST = Objective(
    name="karras_sigma_list", fields="`N`, `sigma_min`, `sigma_max`, `rho`, `i` = 0…N",
    text="σ_0 … σ_{N−1} of Karras et al. eq. 5, then σ_N = 0",
    equation=r"$\sigma_i$ of eq. 5 for $i<N$, $\sigma_N=0$", source="Karras et al. 2022, eq. 5; k-diffusion "
    "`get_sigmas_karras` (append_zero)",
    inputs=lambda o, n, shape, rng: {"i": onp.arange(o["N"] + 1, dtype=onp.int64), **o}, reference=sigma_list,
    cases=(case("rho7", N=6, sigma_min=0.002, sigma_max=80.0, rho=7.0),
           case("rho3", N=5, sigma_min=0.01, sigma_max=10.0, rho=3.0)),
    faults=(Fault("last σ repeated", "σ_N = σ_{N−1} where σ_N = 0 belongs: the last step denoises nothing "
                  "(huggingface/diffusers PR #6477: final_sigmas_type='sigma_min', the old default, against "
                  "'zero' as in k-diffusion)", lambda c: sigma_list(c, repeat_last=True)),
            Fault("N + 1 σ's from eq. 5", "eq. 5 evaluated on N + 1 points, ending at σ_min where σ_N = 0 belongs "
                  "(Karras et al. 2022, eq. 5 and Alg. 1)", lambda c: sigma_list(c, n_plus_one=True))))


# ---- edm_vp_sigma and edm_training_sigma -------------------------------------------------------------
def _vp_sigma(c, beta_d=None, half=0.5, root=True):
    t, bd = onp.asarray(c["t"], dtype=float), float(c["beta_d"] if beta_d is None else beta_d)
    var = onp.expm1(half * bd * t * t + float(c["beta_min"]) * t)
    return onp.sqrt(var) if root else var


EDM_VP_SIGMA = Objective(
    name="edm_vp_sigma", fields="`t`, `beta_d`, `beta_min`", text="σ(t) = √(exp(½β_d t² + β_min t) − 1)",
    equation=r"$\sqrt{e^{\frac12\beta_dt^2+\beta_\min t}-1}$", source="Karras et al. 2022, Table 1 (VP)",
    inputs=lambda o, n, shape, rng: {"t": onp.concatenate([[1e-3, 1.0], rng.uniform(1e-3, 1.0, n - 2)]), **o},
    reference=_vp_sigma, cases=(case("edm", beta_d=19.9, beta_min=0.1), case("other", beta_d=12.0, beta_min=0.5)),
    faults=(Fault("β_d = 19.1 for 19.9", "β_d hard-coded 19.1 where 19.9 belongs (NVlabs/edm #5)",
                  lambda c: _vp_sigma(c, beta_d=19.1)),
            Fault("½ dropped on β_d", "exp(β_d t² + β_min t) − 1: the ½ of ∫β dt dropped (Karras et al. 2022, "
                  "Table 1; Song et al. 2021, eq. 29)", lambda c: _vp_sigma(c, half=1.0)),
            Fault("variance for std", "exp(½β_d t² + β_min t) − 1, the variance σ², returned as σ (Karras et al. "
                  "2022, Table 1)", lambda c: _vp_sigma(c, root=False))))


def _training_sigma(c, swapped=False, variance=False):
    m, s = float(c["P_mean"]), float(c["P_std"])
    if swapped:
        m, s = s, m
    return onp.exp(m + (s * s if variance else s) * onp.asarray(c["normal"], dtype=float))


EDM_TRAINING_SIGMA = Objective(
    name="edm_training_sigma", fields="`normal` (n,) standard normal draws, `P_mean`, `P_std`",
    text="σ = exp(P_mean + P_std·n): ln σ ~ N(P_mean, P_std²)", equation=r"$e^{P_\text{mean}+P_\text{std}n}$",
    source="Karras et al. 2022, Table 1",
    inputs=lambda o, n, shape, rng: {"normal": rng.standard_normal(n), **o}, reference=_training_sigma,
    cases=(case("edm", P_mean=-1.2, P_std=1.2), case("other", P_mean=-0.4, P_std=1.4)),
    faults=(Fault("P_mean and P_std swapped", "exp(P_std + P_mean·n): the log-normal's mean and std exchanged "
                  "(Karras et al. 2022, Table 1: ln σ ~ N(P_mean, P_std²))", lambda c: _training_sigma(c, swapped=True)),
            Fault("P_std² for P_std", "exp(P_mean + P_std²·n): the variance used as the std of ln σ (Karras et al. "
                  "2022, Table 1)", lambda c: _training_sigma(c, variance=True))))


# ---- edm_churn: (γ, σ̂) ----------------------------------------------------------------------------------
def edm_churn(c, use_max=False, per_step=True, additive=False, window=True):
    r"""The churn of Karras et al. Algorithm 2 at each σ; the knobs are the known faults.

    .. math:: \gamma = \min(S_\text{churn}/N, \sqrt2-1)\ \text{if}\ S_\text{tmin}\le\sigma\le S_\text{tmax},
              \ \text{else } 0;\qquad \hat\sigma = \sigma(1+\gamma)
    """
    s = onp.asarray(c["sigma"], dtype=float)
    rate = float(c["S_churn"]) / (int(c["N"]) if per_step else 1)
    g = (onp.maximum if use_max else onp.minimum)(rate, 2**0.5 - 1)
    inside = (s >= c["S_tmin"]) & (s <= c["S_tmax"]) if window else onp.ones(s.shape, bool)
    gamma = onp.where(inside, g, 0.0)
    return onp.stack([gamma, s + gamma if additive else s * (1 + gamma)], 1)


EDM_CHURN = Objective(
    name="edm_churn", fields="`sigma` (n,), `S_churn`, `N`, `S_tmin`, `S_tmax`", columns=("gamma", "sigma_hat"),
    text="γ = min(S_churn/N, √2 − 1) inside [S_tmin, S_tmax], else 0; σ̂ = σ(1 + γ)",
    equation=r"$\gamma=\min(S_\text{churn}/N,\sqrt2-1)$ if $S_\text{tmin}\le\sigma\le S_\text{tmax}$, else 0; "
             r"$\hat\sigma=\sigma(1+\gamma)$", source="Karras et al. 2022, Alg. 2",
    inputs=lambda o, n, shape, rng: {"sigma": onp.exp(rng.uniform(onp.log(0.002), onp.log(80.0), n)), **o},
    reference=edm_churn,
    cases=(case("churn40", S_churn=40.0, N=18, S_tmin=0.05, S_tmax=50.0),
           case("churn5", S_churn=5.0, N=18, S_tmin=0.01, S_tmax=20.0)),
    faults=(Fault("γ = max for min", "γ = max(S_churn/N, √2 − 1) where min belongs (Comfy-Org/ComfyUI PR #13820; "
                  "Karras et al. 2022, Alg. 2)", lambda c: edm_churn(c, use_max=True)),
            Fault("S_churn not divided by N", "γ = min(S_churn, √2 − 1): the churn per step not spread over the N "
                  "steps (Karras et al. 2022, Alg. 2)", lambda c: edm_churn(c, per_step=False)),
            Fault("σ̂ = σ + γ", "σ̂ = σ + γ where σ̂ = σ + γσ belongs (Karras et al. 2022, Alg. 2)",
                  lambda c: edm_churn(c, additive=True)),
            Fault("S_tmin/S_tmax ignored", "γ applied at every σ, outside [S_tmin, S_tmax] too (Karras et al. 2022, "
                  "Alg. 2)", lambda c: edm_churn(c, window=False))))


# ---- edm_euler_step and edm_heun_step: map objectives ---------------------------------------------------
def _denoiser(c):
    score = noise_conditional_score_fn(c["model"])
    return lambda x, sigma: x + per_example(sigma**2, x) * score(flat(x), sigma).reshape(x.shape)


def edm_step(c, heun=False, churn_std=False, step_from_sigma=False, second_at_hat=False, second_alone=False,
             correct_at_zero=False, denoise_before_churn=False):
    r"""One step of Karras et al. Algorithm 2 with churn: Euler, or Heun's correction where
    :math:`\sigma_\text{next}\ne0`; the knobs are the known faults.

    .. math:: x' = \hat x + (\sigma_\text{next}-\hat\sigma)\tfrac12(d + d'),\quad
              d' = \frac{x_E - D(x_E,\sigma_\text{next})}{\sigma_\text{next}}
    """
    den, x, s, s_next = _denoiser(c), c["x"], onp.asarray(c["sigma"], float), onp.asarray(c["sigma_next"], float)
    k = lambda v: per_example(v, x)  # noqa: E731
    s_hat = s * (1 + onp.asarray(c["gamma"], float))
    add = s_hat - s if churn_std else onp.sqrt(s_hat**2 - s**2)
    x_hat = x + k(add * float(c["S_noise"])) * c["z"]
    d = (x_hat - (den(x, s) if denoise_before_churn else den(x_hat, s_hat))) / k(s_hat)
    x_next = x_hat + k(s_next - (s if step_from_sigma else s_hat)) * d
    if not heun:
        return x_next
    at = s_hat if second_at_hat else s_next
    live = onp.ones(s.shape, bool) if correct_at_zero else s_next > 0
    level = onp.where(live, at, 1.0)  # rows without the correction keep the Euler step
    with onp.errstate(divide="ignore", invalid="ignore"):  # the fault divides 0 by σ_next = 0: NaN
        d2 = (x_next - den(x_next, level)) / k(level)
    slope = d2 if second_alone else 0.5 * (d + d2)
    heun_x = x_hat + k(s_next - s_hat) * slope
    return onp.where(k(live) > 0, heun_x, x_next)


def _step_inputs(o, n, shape, rng):
    d = int(onp.prod(shape))
    sigma = onp.exp(rng.uniform(onp.log(0.05), onp.log(20.0), n))
    s_next = sigma * rng.uniform(0.3, 0.9, n)
    s_next[0] = 0.0  # the last step
    gamma = onp.where(rng.uniform(size=n) < 0.5, 0.0, rng.uniform(0.05, 2**0.5 - 1, n))
    gamma[:2] = (0.2, 0.0)
    model = {"kind": "gaussian_family", "mean": rng.standard_normal(d), "cov": spd(d, rng, 0.3, 1.5),
             "parametrization": "ve"}
    return {"x": 5 * rng.standard_normal((n, *shape)), "z": rng.standard_normal((n, *shape)), "sigma": sigma,
            "sigma_next": s_next, "gamma": gamma, "S_noise": o["S_noise"], "model": model}


_STEP_FIELDS = ("`x`, `z`, `sigma`, `sigma_next` (0 at the last step), `gamma` (the churn, from `edm_churn`), "
                "`S_noise`, `model` (gaussian_family, ve: the denoiser D(x, σ) = x + σ² s(x, σ))")
_STEP_CASES = (case("flat", "flat", S_noise=1.0), case("img", "img", S_noise=1.007))

EDM_EULER_STEP = Objective(
    name="edm_euler_step", fields=_STEP_FIELDS,
    text="σ̂ = σ(1+γ), x̂ = x + √(σ̂² − σ²) S_noise z, x' = x̂ + (σ_next − σ̂)(x̂ − D(x̂, σ̂))/σ̂",
    equation=r"$\hat x=x+\sqrt{\hat\sigma^2-\sigma^2}S_\text{noise}z$, "
             r"$x'=\hat x+(\sigma_\text{next}-\hat\sigma)\frac{\hat x-D(\hat x,\hat\sigma)}{\hat\sigma}$",
    source="Karras et al. 2022, Alg. 2 (Euler: lines 4–8)", is_map=True, inputs=_step_inputs, reference=edm_step,
    cases=_STEP_CASES,
    faults=(Fault("churn noise std σ̂ − σ", "x̂ = x + (σ̂ − σ) S_noise z where √(σ̂² − σ²) belongs: the std added, "
                  "not the variance (Karras et al. 2022, Alg. 2)", lambda c: edm_step(c, churn_std=True)),
            Fault("step from σ, not σ̂", "x̂ + (σ_next − σ) d where (σ_next − σ̂) d belongs: the churned level "
                  "forgotten in the step (Karras et al. 2022, Alg. 2)",
                  lambda c: edm_step(c, step_from_sigma=True)),
            Fault("denoised before the churn", "d = (x̂ − D(x, σ))/σ̂: the denoiser evaluated on the sample before the "
                  "churn noise, at σ, and used for x̂ at σ̂, where D(x̂, σ̂) belongs: diffusers 0.42.1 "
                  "EulerDiscreteScheduler.step(s_churn > 0), whose model output is computed before step() adds the "
                  "churn (found by the client trial of refscore issue 32; Karras et al. 2022, Alg. 2, line 7)",
                  lambda c: edm_step(c, denoise_before_churn=True))))

EDM_HEUN_STEP = Objective(
    name="edm_heun_step", fields=_STEP_FIELDS,
    text="the Euler step x_E, then where σ_next > 0: x' = x̂ + (σ_next − σ̂)(d + d')/2, d' = (x_E − D(x_E, σ_next))/σ_next",
    equation=r"$x'=\hat x+(\sigma_\text{next}-\hat\sigma)\tfrac12(d+d')$, "
             r"$d'=\frac{x_E-D(x_E,\sigma_\text{next})}{\sigma_\text{next}}$ (Euler where $\sigma_\text{next}=0$)",
    source="Karras et al. 2022, Alg. 2", is_map=True, inputs=_step_inputs,
    reference=lambda c: edm_step(c, heun=True), cases=_STEP_CASES,
    faults=(Fault("second stage at σ̂", "d' = (x_E − D(x_E, σ̂))/σ̂: the correction evaluated at σ̂ where σ_next "
                  "belongs (huggingface/diffusers PR #1512)", lambda c: edm_step(c, heun=True, second_at_hat=True)),
            Fault("second slope alone", "x̂ + (σ_next − σ̂) d': the correction's slope used alone where the average "
                  "½(d + d') belongs (Karras et al. 2022, Alg. 2)",
                  lambda c: edm_step(c, heun=True, second_alone=True)),
            Fault("correction at σ_next = 0", "Heun's correction applied at the last step too: d' divides by "
                  "σ_next = 0 (NaN), where Algorithm 2 takes the Euler step (Karras et al. 2022, Alg. 2)",
                  lambda c: edm_step(c, heun=True, correct_at_zero=True))))

RECORDS = (KARRAS_SIGMA_LIST, EDM_VP_SIGMA, EDM_TRAINING_SIGMA, EDM_CHURN, EDM_EULER_STEP, EDM_HEUN_STEP)
