r"""DDPM: the marginal q(x_t | x_0), the posterior's coefficients, the two log-variances and one
ancestral step, each a record with its cases, its reference (:mod:`refscore.diffusion`) and its
known faults. Steps ``t`` are 0-based integers into ``betas`` (``betas[t]`` is the paper's
:math:`\beta_{t+1}`, :math:`\bar\alpha_{-1}=1`); :data:`BETAS` is the cases' short schedule.

.. math:: x_t = \sqrt{\bar\alpha_t}x_0+\sqrt{1-\bar\alpha_t}\,\varepsilon,\qquad
          \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t
          \quad(\text{Ho et al. 2020, eqs. 4, 6–7})
"""
from __future__ import annotations

import numpy as onp

from .. import diffusion as D
from ..diffusion.parametrisation import per_example
from .objective import Fault, Objective, case

__all__ = ["RECORDS", "BETAS"]

BETAS = onp.linspace(0.02, 0.3, 8)  # a short DDPM schedule: every step visibly different


def _ab(c):
    return onp.cumprod(1.0 - onp.asarray(c["betas"], dtype=float))


def _ab_prev(c):
    return onp.concatenate([[1.0], _ab(c)[:-1]])


def _points_and_steps(n, shape, rng):
    x = rng.standard_normal((n, *shape))
    t = onp.concatenate([[0], rng.integers(0, len(BETAS), n - 1)]).astype(onp.int64)
    return {"x": x, "betas": BETAS.copy(), "t": t}


def _steps_only(first):
    def inputs(o, n, shape, rng):
        t = onp.concatenate([[first], rng.integers(first, len(BETAS), n - 1)])
        return {"betas": BETAS.copy(), "t": t.astype(onp.int64)}
    return inputs


# ---- ddpm_marginal: a map objective ---------------------------------------------------------------
def _marginal_as_code(c, abar=_ab, variance_as_std=False):
    r""":math:`\sqrt{a_t}x_0 + \sqrt{1-a_t}\varepsilon` with :math:`a` = ``abar(c)`` (right: :math:`\bar\alpha`)."""
    a, x0 = abar(c)[onp.asarray(c["t"])], c["x"]
    noise = (1.0 - a) if variance_as_std else onp.sqrt(1.0 - a)
    return per_example(onp.sqrt(a), x0) * x0 + per_example(noise, x0) * c["eps"]


DDPM_MARGINAL = Objective(
    name="ddpm_marginal", fields="`betas` (T,), `t`, `x` ($x_0$), `eps`", text="√ᾱ_t x0 + √(1−ᾱ_t) ε",
    equation=r"$\sqrt{\bar\alpha_t}x_0+\sqrt{1-\bar\alpha_t}\varepsilon$", source="Ho et al. 2020, eq. 4",
    is_map=True,
    inputs=lambda o, n, shape, rng: {**_points_and_steps(n, shape, rng), "eps": rng.standard_normal((n, *shape))},
    reference=lambda c: D.q_sample(c["x"], c["t"], c["eps"], c["betas"]),
    cases=(case("flat", "flat"), case("img", "img")),
    faults=(Fault("ᾱ_{t−1} for ᾱ_t", "an index off by one: ᾱ of the previous step (the paper's 1-based t on 0-based "
                  "arrays; Ho et al. 2020, eq. 4)", lambda c: _marginal_as_code(c, abar=_ab_prev)),
            Fault("α_t for ᾱ_t", "the one-step αₜ = 1 − βₜ where the product ᾱₜ = Π αₛ belongs (Ho et al. 2020, eq. 4)",
                  lambda c: _marginal_as_code(c, abar=lambda c: 1.0 - onp.asarray(c["betas"]))),
            Fault("variance as std", "(1 − ᾱₜ)ε where √(1 − ᾱₜ)ε belongs (Ho et al. 2020, eq. 4)",
                  lambda c: _marginal_as_code(c, variance_as_std=True))))


# ---- ddpm_posterior: (coef x0, coef x_t, β̃) -------------------------------------------------------
def _posterior_as_code(c, prev_is_current=False, c0_without_sqrt=False, beta_for_tilde=False):
    b, t = onp.asarray(c["betas"], dtype=float), onp.asarray(c["t"])
    prev = (_ab(c) if prev_is_current else _ab_prev(c))[t]
    bt, abt = b[t], _ab(c)[t]
    c0 = (prev if c0_without_sqrt else onp.sqrt(prev)) * bt / (1 - abt)
    var = bt if beta_for_tilde else bt * (1 - prev) / (1 - abt)
    return onp.stack([c0, onp.sqrt(1 - bt) * (1 - prev) / (1 - abt), var], 1)


DDPM_POSTERIOR = Objective(
    name="ddpm_posterior", fields="`betas`, `t` ≥ 1", columns=("coef x0", "coef x_t", "variance β̃"),
    text="√ᾱ_{t−1}β_t/(1−ᾱ_t), √α_t(1−ᾱ_{t−1})/(1−ᾱ_t), β̃_t",
    equation=r"$\frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}$, "
             r"$\frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}$, "
             r"$\tilde\beta_t=\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$",
    source="Ho et al. 2020, eqs. 6–7", inputs=_steps_only(1),
    reference=lambda c: onp.stack(D.posterior_coefficients(c["betas"], c["t"]), axis=1), cases=(case(""),),
    faults=(Fault("β for β̃", "the posterior variance taken as βₜ where β̃ₜ = βₜ(1−ᾱₜ₋₁)/(1−ᾱₜ) belongs "
                  "(jhbastek/PhysicsInformedDiffusionModels #4; KimRass/DDPM #1; Ho et al. 2020, eq. 7)",
                  lambda c: _posterior_as_code(c, beta_for_tilde=True)),
            Fault("ᾱ_t for ᾱ_{t−1}", "ᾱₜ where ᾱₜ₋₁ belongs in the posterior (an index off by one; Ho et al. 2020, "
                  "eq. 7)", lambda c: _posterior_as_code(c, prev_is_current=True)),
            Fault("ᾱ_{t−1} for √ᾱ_{t−1}", "the x₀ coefficient with ᾱₜ₋₁ where √ᾱₜ₋₁ belongs (Ho et al. 2020, eq. 7)",
                  lambda c: _posterior_as_code(c, c0_without_sqrt=True))))


# ---- ddpm_log_variance: (clipped posterior log-variance, fixed-large log-variance) -----------------
def _log_variance(c):
    return onp.stack([D.posterior_log_variance_clipped(c["betas"], c["t"]),
                      D.fixed_large_log_variance(c["betas"], c["t"])], axis=1)


DDPM_LOG_VARIANCE = Objective(
    name="ddpm_log_variance", fields="`betas`, `t`",
    columns=("posterior log-variance (clipped)", "fixed-large log-variance"),
    text="log β̃ with β̃_0 clipped to β̃_1; log of [β̃_1, β_1, β_2…]",
    equation=r'$\log\tilde\beta_{\max(t,1)}$; $\log[\tilde\beta_1,\beta_1,\beta_2,\dots]_t$ ("fixed large")',
    source="DDPM code; improved-diffusion `FIXED_LARGE`", inputs=_steps_only(0), reference=_log_variance,
    cases=(case(""),),
    faults=(Fault("fixed-large first entry unclipped", "log βₜ at t = 0 while the variance is [β̃₁, β₁, …]: variance "
                  "and log-variance disagree at t = 0 (zoubohao/DenoisingDiffusionProbabilityModel-ddpm- #18; "
                  "openai/improved-diffusion gaussian_diffusion.py, FIXED_LARGE)",
                  lambda c: onp.stack([c["expected"][:, 0], onp.log(onp.asarray(c["betas"], dtype=float)[c["t"]])], 1)),
            Fault("variance stored as log-variance", "the variance where its log belongs (tqch/ddpm-torch #9)",
                  lambda c: onp.exp(c["expected"])),
            Fault("small and large swapped", "log β̃ and log β exchanged: the other choice of σₜ² (Ho et al. 2020, "
                  "§3.2)", lambda c: c["expected"][:, ::-1])))


# ---- ddpm_ancestral_step: a map objective -------------------------------------------------------------
def _ancestral_as_code(c, large=None, noise_at_zero=False, no_sqrt=False):
    r""":math:`(x_t - \beta_t/\sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\alpha_t} + \sigma_t z` with one
    thing changed (``large``: :math:`\sigma_t^2=\beta_t` whatever the case asks)."""
    b, t, x = onp.asarray(c["betas"], dtype=float), onp.asarray(c["t"]), c["x"]
    ab = _ab(c)[t]
    large = c["variance"] != "small" if large is None else large
    var = b[t] if large else D.posterior_coefficients(b, t)[2]
    std = onp.sqrt(var) if noise_at_zero else onp.where(t == 0, 0.0, onp.sqrt(var))
    coef = b[t] / ((1 - ab) if no_sqrt else onp.sqrt(1 - ab))
    mean = (x - per_example(coef, x) * c["eps_pred"]) / per_example(onp.sqrt(1 - b[t]), x)
    return mean + per_example(std, x) * c["z"]


def _ancestral_inputs(o, n, shape, rng):
    f = _points_and_steps(n, shape, rng)
    return {**f, "eps_pred": rng.standard_normal((n, *shape)), "z": rng.standard_normal((n, *shape)),
            "variance": o["variance"]}


DDPM_ANCESTRAL_STEP = Objective(
    name="ddpm_ancestral_step", fields="`betas`, `t`, `x` ($x_t$), `eps_pred`, `z`, `variance` (\"small\" β̃ / "
    "\"large\" β)", text="(x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t + σ_t z, no noise at t = 0",
    equation=r"$\frac{1}{\sqrt{\alpha_t}}(x_t-\frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\hat\varepsilon)+\sigma_t z$, "
             r"$\sigma_t^2=\tilde\beta_t$ or $\beta_t$, no noise at t = 0",
    source="Ho et al. 2020, Alg. 2", is_map=True, inputs=_ancestral_inputs,
    reference=lambda c: D.ancestral_step(c["x"], c["t"], c["eps_pred"], c["z"], c["betas"], c["variance"]),
    cases=(case("small-flat", "flat", variance="small"), case("large-img", "img", variance="large")),
    faults=(Fault("noise at t = 0", "noise added at the last step too (Ho et al. 2020, Algorithm 2: z = 0 when t = 1)",
                  lambda c: _ancestral_as_code(c, noise_at_zero=True)),
            Fault("β for β̃", "σₜ² = βₜ where the case asks for β̃ₜ (jhbastek/PhysicsInformedDiffusionModels #4)",
                  lambda c: _ancestral_as_code(c, large=True)),
            Fault("√(1−ᾱ_t) missing", "βₜ/(1−ᾱₜ) ε̂ where βₜ/√(1−ᾱₜ) ε̂ belongs (Ho et al. 2020, eq. 11)",
                  lambda c: _ancestral_as_code(c, no_sqrt=True))))

RECORDS = (DDPM_MARGINAL, DDPM_POSTERIOR, DDPM_LOG_VARIANCE, DDPM_ANCESTRAL_STEP)
