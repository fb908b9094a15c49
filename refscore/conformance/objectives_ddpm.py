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

__all__ = ["RECORDS", "BETAS", "SCHEDULES", "boundary_steps"]

BETAS = onp.linspace(0.02, 0.3, 8)  # a short DDPM schedule: every step visibly different
SCHEDULES = {"short": BETAS, "linear1000": onp.linspace(1e-4, 0.02, 1000)}  # the second: Ho et al. 2020, §4


def _ab(c):
    return onp.cumprod(1.0 - onp.asarray(c["betas"], dtype=float))


def _ab_prev(c):
    return onp.concatenate([[1.0], _ab(c)[:-1]])


def _ab_wrapped(c):
    r"""``abar[t - 1]`` as NumPy/PyTorch index it: at t = 0 the index −1 wraps to the last entry
    :math:`\bar\alpha_{T-1}` where :math:`\bar\alpha_{-1} = 1` belongs."""
    return onp.roll(_ab(c), 1)


def _ab_float16(c):
    r""":math:`\bar\alpha` computed in float16 (``torch.cumprod`` on half-precision alphas): near
    t = 0 it rounds to 1 when :math:`\beta_t < 2.4\times10^{-4}`."""
    return onp.cumprod((1.0 - onp.asarray(c["betas"], dtype=float)).astype(onp.float16)).astype(float)


def boundary_steps(n, T, rng):
    r"""``n`` 0-based steps: the boundaries 0 and T − 1 first, then interior ones drawn from ``rng``.

    .. math:: t = (0, T-1, t_3, \dots, t_n),\quad t_k \sim \mathcal U\{0,\dots,T-1\}
    """
    return onp.concatenate([[0, T - 1], rng.integers(0, T, n - 2)]).astype(onp.int64)


def _points_and_steps(n, shape, rng, schedule="short"):
    x = rng.standard_normal((n, *shape))
    betas = SCHEDULES[schedule].copy()
    return {"x": x, "betas": betas, "t": boundary_steps(n, len(betas), rng)}


def _steps_only(first):
    def inputs(o, n, shape, rng):
        if o.get("boundary"):
            return {"betas": BETAS.copy(), "t": boundary_steps(n, len(BETAS), rng)}
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
    inputs=lambda o, n, shape, rng: {**_points_and_steps(n, shape, rng, o.get("schedule", "short")),
                                     "eps": rng.standard_normal((n, *shape))},
    reference=lambda c: D.q_sample(c["x"], c["t"], c["eps"], c["betas"]),
    cases=(case("flat", "flat"), case("img", "img"), case("linear1000-flat", "flat", schedule="linear1000")),
    faults=(Fault("ᾱ_{t−1} for ᾱ_t", "an index off by one: ᾱ of the previous step (the paper's 1-based t on 0-based "
                  "arrays; Ho et al. 2020, eq. 4)", lambda c: _marginal_as_code(c, abar=_ab_prev)),
            Fault("α_t for ᾱ_t", "the one-step αₜ = 1 − βₜ where the product ᾱₜ = Π αₛ belongs (Ho et al. 2020, eq. 4)",
                  lambda c: _marginal_as_code(c, abar=lambda c: 1.0 - onp.asarray(c["betas"]))),
            Fault("variance as std", "(1 − ᾱₜ)ε where √(1 − ᾱₜ)ε belongs (Ho et al. 2020, eq. 4)",
                  lambda c: _marginal_as_code(c, variance_as_std=True)),
            Fault("abar[t−1] wrapped at t = 0", "ᾱ indexed abar[t − 1] on 0-based arrays: at t = 0 NumPy/PyTorch wrap "
                  "the index −1 to ᾱ_{T−1} where ᾱ₋₁ = 1 belongs (Ho et al. 2020, eq. 4, 1-based t)",
                  lambda c: _marginal_as_code(c, abar=_ab_wrapped)),
            Fault("ᾱ in float16", "α = 1 − β rounded to float16 and ᾱ = cumprod(α) in float16: ᾱ rounds to 1 near "
                  "t = 0, so x_t = x₀ "
                  "(huggingface/diffusers PR #3005)", lambda c: _marginal_as_code(c, abar=_ab_float16))))


# ---- ddpm_posterior: (coef x0, coef x_t, β̃) -------------------------------------------------------
def _posterior_as_code(c, prev_is_current=False, c0_without_sqrt=False, beta_for_tilde=False, prev=_ab_prev,
                       std_for_variance=False, ratio_inverted=False):
    b, t = onp.asarray(c["betas"], dtype=float), onp.asarray(c["t"])
    prev = (_ab(c) if prev_is_current else prev(c))[t]
    bt, abt = b[t], _ab(c)[t]
    c0 = (prev if c0_without_sqrt else onp.sqrt(prev)) * bt / (1 - abt)
    var = bt if beta_for_tilde else bt * (1 - prev) / (1 - abt)
    if ratio_inverted:  # β(1 − ᾱ_t)/(1 − ᾱ_{t−1}): inf at t = 0, as the code computes it
        with onp.errstate(divide="ignore"):
            var = bt * (1 - abt) / (1 - prev)
    return onp.stack([c0, onp.sqrt(1 - bt) * (1 - prev) / (1 - abt), onp.sqrt(var) if std_for_variance else var], 1)


DDPM_POSTERIOR = Objective(
    name="ddpm_posterior", fields="`betas`, `t` (ᾱ₋₁ = 1 at t = 0)", columns=("coef x0", "coef x_t", "variance β̃"),
    text="√ᾱ_{t−1}β_t/(1−ᾱ_t), √α_t(1−ᾱ_{t−1})/(1−ᾱ_t), β̃_t",
    equation=r"$\frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}$, "
             r"$\frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}$, "
             r"$\tilde\beta_t=\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$",
    source="Ho et al. 2020, eqs. 6–7", inputs=_steps_only(1),
    reference=lambda c: onp.stack(D.posterior_coefficients(c["betas"], c["t"]), axis=1),
    cases=(case(""), case("boundary", boundary=True)),
    faults=(Fault("β for β̃", "the posterior variance taken as βₜ where β̃ₜ = βₜ(1−ᾱₜ₋₁)/(1−ᾱₜ) belongs "
                  "(jhbastek/PhysicsInformedDiffusionModels #4; KimRass/DDPM #1; Ho et al. 2020, eq. 7)",
                  lambda c: _posterior_as_code(c, beta_for_tilde=True)),
            Fault("ᾱ_t for ᾱ_{t−1}", "ᾱₜ where ᾱₜ₋₁ belongs in the posterior (an index off by one; Ho et al. 2020, "
                  "eq. 7)", lambda c: _posterior_as_code(c, prev_is_current=True)),
            Fault("ᾱ_{t−1} for √ᾱ_{t−1}", "the x₀ coefficient with ᾱₜ₋₁ where √ᾱₜ₋₁ belongs (Ho et al. 2020, eq. 7)",
                  lambda c: _posterior_as_code(c, c0_without_sqrt=True)),
            Fault("std for variance", "√β̃ₜ, the posterior std, returned where its variance β̃ₜ belongs (Ho et al. "
                  "2020, eq. 7; the std is what p_sample multiplies z by)",
                  lambda c: _posterior_as_code(c, std_for_variance=True)),
            Fault("β̃ ratio inverted", "βₜ(1−ᾱₜ)/(1−ᾱₜ₋₁) where β̃ₜ = βₜ(1−ᾱₜ₋₁)/(1−ᾱₜ) belongs: inf at t = 0 (Ho et "
                  "al. 2020, eq. 7)", lambda c: _posterior_as_code(c, ratio_inverted=True)),
            Fault("abar[t−1] wrapped at t = 0", "ᾱₜ₋₁ indexed abar[t − 1]: at t = 0 the index −1 wraps to ᾱ_{T−1} "
                  "where ᾱ₋₁ = 1 belongs (Ho et al. 2020, eq. 7; 1-based t on 0-based arrays)",
                  lambda c: _posterior_as_code(c, prev=_ab_wrapped))))


# ---- ddpm_log_variance: (clipped posterior log-variance, fixed-large log-variance) -----------------
def _log_variance(c):
    return onp.stack([D.posterior_log_variance_clipped(c["betas"], c["t"]),
                      D.fixed_large_log_variance(c["betas"], c["t"])], axis=1)


def _diffusers_log_variances(c):
    b, t = onp.asarray(c["betas"], dtype=float), onp.asarray(c["t"])
    small = onp.log(onp.maximum(D.posterior_coefficients(b, t)[2], 1e-20))
    return onp.stack([small, onp.log(b[t])], 1)


DDPM_LOG_VARIANCE = Objective(
    name="ddpm_log_variance", fields="`betas`, `t`",
    columns=("posterior log-variance (clipped)", "fixed-large log-variance"),
    text="log β̃ with β̃_0 clipped to β̃_1; log of [β̃_1, β_1, β_2…]",
    equation=r'$\log\tilde\beta_{\max(t,1)}$; $\log[\tilde\beta_1,\beta_1,\beta_2,\dots]_t$ ("fixed large")',
    source="DDPM code; improved-diffusion `FIXED_LARGE`", inputs=_steps_only(0), reference=_log_variance,
    cases=(case("", boundary=True),),
    faults=(Fault("fixed-large first entry unclipped", "log βₜ at t = 0 while the variance is [β̃₁, β₁, …]: variance "
                  "and log-variance disagree at t = 0 (zoubohao/DenoisingDiffusionProbabilityModel-ddpm- #18; "
                  "openai/improved-diffusion gaussian_diffusion.py, FIXED_LARGE)",
                  lambda c: onp.stack([c["expected"][:, 0], onp.log(onp.asarray(c["betas"], dtype=float)[c["t"]])], 1)),
            Fault("diffusers: β̃₀ clamped to 1e-20, fixed_large_log log β", "log max(β̃ₜ, 1e-20) (so log 1e-20 at "
                  "t = 0) and log βₜ at every t, β₀ included: diffusers DDPMScheduler._get_variance, "
                  "variance_type='fixed_small_log' and 'fixed_large_log'", _diffusers_log_variances, convention=True),
            Fault("variance stored as log-variance", "the variance where its log belongs (tqch/ddpm-torch #9)",
                  lambda c: onp.exp(c["expected"])),
            Fault("small and large swapped", "log β̃ and log β exchanged: the other choice of σₜ² (Ho et al. 2020, "
                  "§3.2)", lambda c: c["expected"][:, ::-1])))


# ---- ddpm_ancestral_step: a map objective -------------------------------------------------------------
def _ancestral_as_code(c, large=None, noise_at_zero=False, no_sqrt=False, variance_as_std=False, clip=None,
                       log_large_std=False):
    r""":math:`(x_t - \beta_t/\sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\alpha_t} + \sigma_t z` with one
    thing changed (``large``: :math:`\sigma_t^2=\beta_t` whatever the case asks)."""
    b, t, x = onp.asarray(c["betas"], dtype=float), onp.asarray(c["t"]), c["x"]
    ab = _ab(c)[t]
    large = c["variance"] != "small" if large is None else large
    var = b[t] if large else D.posterior_coefficients(b, t)[2]
    std = var if variance_as_std else onp.sqrt(var)
    std = std if noise_at_zero else onp.where(t == 0, 0.0, std)
    if log_large_std:  # diffusers' step(): _get_variance(t) ** 0.5 on 'fixed_large_log', √(log βₜ)
        with onp.errstate(invalid="ignore"):
            std = onp.where(t == 0, 0.0, onp.sqrt(onp.log(b[t])))
    coef = b[t] / ((1 - ab) if no_sqrt else onp.sqrt(1 - ab))
    mean = (x - per_example(coef, x) * c["eps_pred"]) / per_example(onp.sqrt(1 - b[t]), x)
    if clip == "x0":  # x̂₀ clipped to [−1, 1], then the posterior mean (eq. 7)
        x0 = onp.clip((x - per_example(onp.sqrt(1 - ab), x) * c["eps_pred"]) / per_example(onp.sqrt(ab), x), -1, 1)
        c0, ct, _ = D.posterior_coefficients(b, t)
        mean = per_example(c0, x) * x0 + per_example(ct, x) * x
    out = mean + per_example(std, x) * c["z"]
    return onp.clip(out, -1, 1) if clip == "x_prev" else out


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
                  lambda c: _ancestral_as_code(c, no_sqrt=True)),
            Fault("exp(log σ²) for exp(½ log σ²)", "z scaled by the variance σₜ² = exp(log σₜ²) where the std "
                  "exp(½ log σₜ²) belongs (openai/improved-diffusion p_sample: th.exp(0.5 * log_variance))",
                  lambda c: _ancestral_as_code(c, variance_as_std=True)),
            Fault("x_{t−1} clipped for x̂₀", "the step's output clipped to [−1, 1] where clip_sample clips the "
                  "predicted x̂₀ (Ho et al. 2020, §4 and their code's clip_denoised; diffusers DDPMScheduler.step)",
                  lambda c: _ancestral_as_code(c, clip="x_prev")),
            Fault("√(log β) as the std (fixed_large_log)", "z scaled by √(log βₜ), the square root of a "
                  "log-variance, NaN for every t > 0 (diffusers 0.42.1 DDPMScheduler.step, "
                  "variance_type='fixed_large_log': _get_variance(t) ** 0.5; found by the client trial of "
                  "refscore issue 32)", lambda c: _ancestral_as_code(c, log_large_std=True)),
            Fault("clip_sample (x̂₀ clipped to [−1, 1])", "x̂₀ = (x_t − √(1−ᾱₜ)ε̂)/√ᾱₜ clipped to [−1, 1], then the "
                  "posterior mean of eq. 7: diffusers DDPMScheduler's default clip_sample=True (Ho et al. 2020's "
                  "code, clip_denoised)", lambda c: _ancestral_as_code(c, clip="x0"), convention=True)))

RECORDS = (DDPM_MARGINAL, DDPM_POSTERIOR, DDPM_LOG_VARIANCE, DDPM_ANCESTRAL_STEP)
