r"""Discrete-time schedules and steps: the β schedules (linear, scaled-linear, cosine), the
timestep spacings of a shortened sampler (leading, trailing, linspace), the score from a noise
prediction on a DDPM schedule, one DDIM step with η and the Min-SNR-γ loss weights, each a record
with its cases, its reference and its known faults. The references are written here (for now:
:mod:`refscore.diffusion` has no schedule or DDIM step yet); steps ``t`` are 0-based, as in
:mod:`.objectives_ddpm`.

.. math:: \beta^\text{cos}_i = \min\Big(1-\frac{f((i+1)/T)}{f(i/T)}, 0.999\Big),\
          f(u)=\cos^2\Big(\frac{u+s}{1+s}\frac\pi2\Big);\qquad
          x_{t'} = \sqrt{\bar\alpha_{t'}}\hat x_0 + \sqrt{1-\bar\alpha_{t'}-\sigma^2}\,\hat\varepsilon + \sigma z

(Ho et al. 2020; Nichol & Dhariwal 2021, eq. 17; Lin et al. 2024, Table 2; Song, Meng & Ermon
2021, eqs. 12 and 16; Hang et al. 2023.)
"""
from __future__ import annotations

import numpy as onp

from ..diffusion.parametrisation import per_example
from .objective import Fault, Objective, case
from .objectives_ddpm import BETAS, SCHEDULES, boundary_steps

__all__ = ["RECORDS", "beta_schedule", "spaced_timesteps", "ddim_step", "min_snr_weight"]


def _ab(betas):
    return onp.cumprod(1.0 - onp.asarray(betas, dtype=float))


# ---- beta_schedule ----------------------------------------------------------------------------------
def _cosine(T, s=0.008, clip=0.999):
    f = lambda u: onp.cos((u + s) / (1 + s) * onp.pi / 2) ** 2  # noqa: E731
    i = onp.arange(T, dtype=float)
    beta = 1.0 - f((i + 1) / T) / f(i / T)
    return beta if clip is None else onp.minimum(beta, clip)


def beta_schedule(c, off_by_one=False, scale=None, plain=False, cos_s=0.008, cos_clip=0.999):
    r"""The case's β schedule (the knobs are the known faults; the defaults give the reference):
    ``linear`` :math:`\mathrm{linspace}(k\beta_0, k\beta_1, T)` with :math:`k = 1000/T` when the case
    asks for it; ``scaled_linear`` :math:`\mathrm{linspace}(\sqrt{\beta_0}, \sqrt{\beta_1}, T)^2`;
    ``cosine`` Nichol & Dhariwal's, clipped at 0.999.

    .. math:: \beta^\text{lin}_i = k\beta_0 + \tfrac{i}{T-1}k(\beta_1-\beta_0),\qquad k = 1000/T
              \quad(\text{Nichol \& Dhariwal 2021, §3; eq. 17 for the cosine})
    """
    T, kind = int(c["T"]), c["kind"]
    if kind == "cosine":
        return _cosine(T, cos_s, cos_clip)
    k = (1000.0 / T if c["scale_1000_over_T"] else 1.0) if scale is None else scale
    b0, b1 = k * c["beta_start"], k * c["beta_end"]
    root = kind == "scaled_linear" and not plain
    lo, hi = (b0**0.5, b1**0.5) if root else (b0, b1)
    ramp = onp.linspace(lo, hi, T + 1)[1:] if off_by_one else onp.linspace(lo, hi, T)
    return ramp**2 if root else ramp


def _schedule_inputs(o, n, shape, rng):
    return {"kind": o["kind"], "T": o["T"], "beta_start": o.get("b0", 0.0), "beta_end": o.get("b1", 0.0),
            "scale_1000_over_T": o.get("scale", False), "i": onp.arange(o["T"], dtype=onp.int64)}


def _kind_only(kind, fault):
    return lambda c: fault(c) if c["kind"] in kind else beta_schedule(c)


BETA_SCHEDULE = Objective(
    name="beta_schedule", fields="`kind` (linear, scaled_linear, cosine), `T`, `beta_start`, `beta_end`, "
    "`scale_1000_over_T`, `i` = 0…T−1", text="β_i: linear k·linspace(β0, β1, T), k = 1000/T if asked; scaled-linear "
    "linspace(√β0, √β1, T)²; cosine min(1 − f((i+1)/T)/f(i/T), 0.999)",
    equation=r"linear $k\beta_0+\frac{i}{T-1}k(\beta_1-\beta_0)$ ($k=1000/T$ if asked); scaled "
             r"$(\sqrt{\beta_0}+\frac{i}{T-1}(\sqrt{\beta_1}-\sqrt{\beta_0}))^2$; cosine "
             r"$\min(1-\frac{f((i+1)/T)}{f(i/T)},0.999)$",
    source="Ho et al. 2020, §4; Nichol & Dhariwal 2021, §3 and eq. 17; Rombach et al. 2022 (scaled-linear)",
    inputs=_schedule_inputs, reference=beta_schedule,
    cases=(case("linear-T50", kind="linear", T=50, b0=1e-4, b1=0.02, scale=True),
           case("linear", kind="linear", T=20, b0=1e-3, b1=0.2),
           case("scaled-linear", kind="scaled_linear", T=20, b0=0.00085, b1=0.012),
           case("cosine", kind="cosine", T=20)),
    faults=(Fault("linspace(b0, b1, T+1)[1:]", "the ramp over T + 1 points without its first: β₀ is never used, "
                  "every βᵢ shifts by one step (Ho et al. 2020, §4: β₁ = 10⁻⁴ … β_T = 0.02)",
                  _kind_only(("linear", "scaled_linear"), lambda c: beta_schedule(c, off_by_one=True))),
            Fault("1000/T scaling dropped", "linspace(β0, β1, T) where improved-diffusion's linear schedule scales "
                  "both ends by 1000/T (Nichol & Dhariwal 2021, §3; openai/improved-diffusion "
                  "get_named_beta_schedule)", lambda c: beta_schedule(c, scale=1.0)),
            Fault("linear for scaled-linear", "linspace(β0, β1, T) where scaled-linear interpolates √β "
                  "(huggingface/diffusers DDPMScheduler beta_schedule='scaled_linear'; Rombach et al. 2022)",
                  lambda c: beta_schedule(c, plain=True)),
            Fault("cosine without the 0.999 clip", "βᵢ = 1 − f((i+1)/T)/f(i/T) unclipped: β_{T−1} = 1, a singular "
                  "last step (Nichol & Dhariwal 2021, §3.2)", lambda c: beta_schedule(c, cos_clip=None)),
            Fault("cosine without the offset s", "f(u) = cos²(uπ/2), s = 0 where s = 0.008 keeps β₀ from being tiny "
                  "(Nichol & Dhariwal 2021, eq. 17)", lambda c: beta_schedule(c, cos_s=0.0))))


# ---- spaced timesteps: (t, t_prev) -------------------------------------------------------------------
def spaced_timesteps(c, spacing=None, prev_by_ratio=False, offset=None, floor=False, trailing_minus_one=True):
    r"""The ``n`` sampling steps of a ``T``-step model and each one's previous step (−1 after the
    last), in the case's spacing (the knobs are the known faults):

    .. math:: \text{leading } \lfloor T/n\rfloor\,(n-1-j) + o,\quad
              \text{trailing } \mathrm{round}(T - jT/n) - 1,\quad
              \text{linspace } \mathrm{round}\big((T-1)(n-1-j)/(n-1)\big)

    (Lin et al. 2024, Table 2; ``o`` is diffusers' ``steps_offset``).
    """
    T, n = int(c["T"]), int(c["n"])
    spacing = c["spacing"] if spacing is None else spacing
    if spacing == "leading":
        t = onp.arange(n)[::-1] * (T // n) + (c["steps_offset"] if offset is None else offset)
    elif spacing == "trailing":
        t = onp.round(onp.arange(T, 0, -T / n)) - (1 if trailing_minus_one else 0)
    else:
        grid = onp.linspace(0, T - 1, n)[::-1]
        t = onp.floor(grid) if floor else onp.round(grid)
    t = t.astype(float)
    prev = onp.maximum(t - T // n, -1.0) if prev_by_ratio else onp.append(t[1:], -1.0)
    return onp.stack([t, prev], 1)


def _spacing_inputs(o, n, shape, rng):
    return {"spacing": o["spacing"], "T": o["T"], "n": o["n"], "steps_offset": o.get("offset", 0),
            "i": onp.arange(o["n"], dtype=onp.int64)}


TIMESTEPS = Objective(
    name="timesteps", fields="`spacing` (leading, trailing, linspace), `T`, `n`, `steps_offset`, `i` = 0…n−1",
    columns=("t", "t_prev"), text="the n sampling steps (descending) and each one's previous step, −1 after the last",
    equation=r"leading $\lfloor T/n\rfloor(n-1-j)+o$; trailing $\mathrm{round}(T-jT/n)-1$; linspace "
             r"$\mathrm{round}(\frac{(T-1)(n-1-j)}{n-1})$; $t_\text{prev}$ the next entry, −1 after the last",
    source="Lin et al. 2024, Table 2; diffusers `set_timesteps`", inputs=_spacing_inputs, reference=spaced_timesteps,
    cases=(case("leading", spacing="leading", T=1000, n=10, offset=1), case("trailing", spacing="trailing", T=1000, n=7),
           case("linspace", spacing="linspace", T=1000, n=7)),
    faults=(Fault("leading for trailing", "the leading spacing where trailing is asked: the first step is "
                  "⌊T/n⌋(n−1), never T − 1, the last training step (huggingface/diffusers #2585; Lin et al. 2024, §3.3)",
                  lambda c: spaced_timesteps(c, spacing="leading" if c["spacing"] == "trailing" else None)),
            Fault("prev_t = t − T//n", "the previous step taken as t − ⌊T/n⌋ (as for leading) against a linspace or "
                  "trailing list, where the next entry of the list belongs (huggingface/diffusers #12633, #11347)",
                  lambda c: spaced_timesteps(c, prev_by_ratio=True)),
            Fault("steps_offset ignored", "leading steps without diffusers' steps_offset (1 for Stable Diffusion): "
                  "every step one lower (huggingface/diffusers DDIMScheduler.set_timesteps)",
                  lambda c: spaced_timesteps(c, offset=0)),
            Fault("linspace floored", "linspace(0, T − 1, n) cast with astype(int), which floors, where it is rounded "
                  "(Lin et al. 2024, Table 2)", lambda c: spaced_timesteps(c, floor=True)),
            Fault("trailing without the − 1", "round(arange(T, 0, −T/n)) without − 1: the first step is T, one past "
                  "the last training step (Lin et al. 2024, Table 2)",
                  lambda c: spaced_timesteps(c, trailing_minus_one=False))))


# ---- ddpm_score_from_eps: a map objective -------------------------------------------------------------
def _score_on_schedule(c, std=lambda ab, c: onp.sqrt(1.0 - ab[c["t"]])):
    ab = _ab(c["betas"])
    return -c["eps"] / per_example(std(ab, c), c["x"])


DDPM_SCORE_FROM_EPS = Objective(
    name="ddpm_score_from_eps", fields="`betas`, `t`, `x` ($x_t$), `eps` (the noise prediction)",
    text="−ε̂/√(1 − ᾱ_t)", equation=r"$-\hat\varepsilon/\sqrt{1-\bar\alpha_t}$",
    source="Song et al. 2021, App. B; Ho et al. 2020, eq. 4", is_map=True,
    inputs=lambda o, n, shape, rng: {"x": rng.standard_normal((n, *shape)), "eps": rng.standard_normal((n, *shape)),
                                     "betas": BETAS.copy(), "t": boundary_steps(n, len(BETAS), rng)},
    reference=_score_on_schedule, cases=(case("flat", "flat"), case("img", "img")),
    faults=(Fault("σ = √ᾱ_t", "−ε̂/√ᾱₜ: the signal scale √ᾱₜ taken for the noise std σₜ = √(1 − ᾱₜ) (Ho et al. "
                  "2020, eq. 4: x_t = √ᾱₜ x₀ + √(1 − ᾱₜ) ε)",
                  lambda c: _score_on_schedule(c, lambda ab, c: onp.sqrt(ab[c["t"]]))),
            Fault("1 − ᾱ_t for √(1 − ᾱ_t)", "−ε̂/(1 − ᾱₜ): the variance where the std belongs (Song et al. 2021, "
                  "App. B)", lambda c: _score_on_schedule(c, lambda ab, c: 1.0 - ab[c["t"]])),
            Fault("√β_t for √(1 − ᾱ_t)", "−ε̂/√βₜ: the one-step noise std where the marginal's belongs (Ho et al. "
                  "2020, eqs. 2 and 4)", lambda c: _score_on_schedule(c, lambda ab, c: onp.sqrt(c["betas"][c["t"]]))),
            Fault("abar[t−1] wrapped at t = 0", "ᾱ indexed abar[t − 1]: the index −1 wraps to ᾱ_{T−1} at t = 0 "
                  "(1-based t on 0-based arrays; Ho et al. 2020, eq. 4)",
                  lambda c: _score_on_schedule(c, lambda ab, c: onp.sqrt(1.0 - ab[c["t"] - 1])))))


# ---- ddim_step: a map objective --------------------------------------------------------------------
def ddim_step(c, eta_power=2, final_alpha=1.0, eps_from_sample=True, v_sign=-1.0, direction_with_sigma=True,
              clip=False):
    r"""One DDIM step from ``t`` to ``t_prev`` (−1: the end, :math:`\bar\alpha_{-1}` = ``final_alpha``) with
    the case's prediction (``epsilon``, ``sample`` or ``v_prediction``); the knobs are the known faults.

    .. math:: \sigma = \eta\sqrt{\frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\Big(1-\frac{\bar\alpha_t}{\bar\alpha_{t'}}\Big)},
              \quad x_{t'} = \sqrt{\bar\alpha_{t'}}\hat x_0+\sqrt{1-\bar\alpha_{t'}-\sigma^2}\,\hat\varepsilon+\sigma z

    (Song, Meng & Ermon 2021, eqs. 12 and 16; Salimans & Ho 2022, §4 for v).
    """
    ab = _ab(c["betas"])
    t, tp, x, out = onp.asarray(c["t"]), onp.asarray(c["t_prev"]), c["x"], c["model_output"]
    a_t = ab[t]
    a_p = onp.where(tp >= 0, ab[onp.maximum(tp, 0)], final_alpha)
    k = lambda v: per_example(v, x)  # noqa: E731
    if c["prediction_type"] == "epsilon":
        eps = out
        x0 = (x - k(onp.sqrt(1 - a_t)) * eps) / k(onp.sqrt(a_t))
    elif c["prediction_type"] == "sample":
        x0 = out
        eps = (x - k(onp.sqrt(a_t)) * x0) / k(onp.sqrt(1 - a_t)) if eps_from_sample else out
    else:
        x0 = k(onp.sqrt(a_t)) * x + v_sign * k(onp.sqrt(1 - a_t)) * out
        eps = k(onp.sqrt(a_t)) * out + k(onp.sqrt(1 - a_t)) * x
    x0 = onp.clip(x0, -1.0, 1.0) if clip else x0
    var = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
    sigma2 = float(c["eta"]) ** eta_power * var
    direction = onp.sqrt(1 - a_p - (sigma2 if direction_with_sigma else 0.0))
    return k(onp.sqrt(a_p)) * x0 + k(direction) * eps + k(onp.sqrt(sigma2)) * c["z"]


def _ddim_inputs(o, n, shape, rng):
    T = len(BETAS)
    t = onp.concatenate([[0, T - 1], rng.integers(1, T, n - 2)]).astype(onp.int64)
    t_prev = onp.maximum(t - rng.integers(1, 4, n), -1)
    t_prev[0] = -1
    return {"x": rng.standard_normal((n, *shape)), "model_output": rng.standard_normal((n, *shape)),
            "z": rng.standard_normal((n, *shape)), "betas": BETAS.copy(), "t": t, "t_prev": t_prev,
            "eta": o["eta"], "prediction_type": o["pred"]}


DDIM_STEP = Objective(
    name="ddim_step", fields="`betas`, `t`, `t_prev` (−1: the end, ᾱ = 1), `x` ($x_t$), `model_output`, `z`, `eta`, "
    "`prediction_type` (epsilon, sample, v_prediction)",
    text="√ᾱ' x̂0 + √(1 − ᾱ' − σ²) ε̂ + σ z, σ = η√((1−ᾱ')/(1−ᾱ)·(1 − ᾱ/ᾱ')), ᾱ' = ᾱ_{t_prev} (1 at the end)",
    equation=r"$\sqrt{\bar\alpha'}\hat x_0+\sqrt{1-\bar\alpha'-\sigma^2}\hat\varepsilon+\sigma z$, "
             r"$\sigma=\eta\sqrt{\frac{1-\bar\alpha'}{1-\bar\alpha}(1-\frac{\bar\alpha}{\bar\alpha'})}$, "
             r"$\bar\alpha'=\bar\alpha_{t_\text{prev}}$ (1 at the end)",
    source="Song, Meng & Ermon 2021, eqs. 12, 16", is_map=True, inputs=_ddim_inputs, reference=ddim_step,
    cases=(case("eps-eta0-flat", "flat", eta=0.0, pred="epsilon"), case("eps-eta0.5-img", "img", eta=0.5, pred="epsilon"),
           case("sample-eta0.5-flat", "flat", eta=0.5, pred="sample"),
           case("v-eta1-chw", "chw", eta=1.0, pred="v_prediction")),
    faults=(Fault("η·var for η²·var", "σ² = η·var where σ² = η²·var belongs: σ = √η times the DDIM std (Song, Meng "
                  "& Ermon 2021, eq. 16)", lambda c: ddim_step(c, eta_power=1)),
            Fault("alphas_prev[0] = ᾱ₀ for 1", "the last step's ᾱ' = ᾱ₀ where ᾱ₋₁ = 1 belongs: the sample keeps "
                  "noise of variance 1 − ᾱ₀ (lllyasviel/ControlNet PR #587; diffusers' set_alpha_to_one=False "
                  "computes the same)", lambda c: ddim_step(c, final_alpha=float(_ab(c["betas"])[0]))),
            Fault("ε̂ never computed from x̂₀", "with sample prediction the model output used as ε̂ too, where ε̂ = "
                  "(x_t − √ᾱ x̂₀)/√(1 − ᾱ) belongs (huggingface/diffusers PR #2094)",
                  lambda c: ddim_step(c, eps_from_sample=False)),
            Fault("x₀ from v with the wrong sign", "x̂₀ = √ᾱ x_t + √(1−ᾱ) v where √ᾱ x_t − √(1−ᾱ) v belongs "
                  "(huggingface/diffusers PR #1421; Salimans & Ho 2022, §4)", lambda c: ddim_step(c, v_sign=1.0)),
            Fault("direction without −σ²", "√(1 − ᾱ') ε̂ where √(1 − ᾱ' − σ²) ε̂ belongs: the noise σz added on top "
                  "(Song, Meng & Ermon 2021, eq. 12)", lambda c: ddim_step(c, direction_with_sigma=False)),
            Fault("clip_sample (x̂₀ clipped to [−1, 1])", "x̂₀ clipped to [−1, 1] with ε̂ kept: diffusers "
                  "DDIMScheduler's default clip_sample=True", lambda c: ddim_step(c, clip=True), convention=True)))


# ---- min_snr_weight ---------------------------------------------------------------------------------
def min_snr_weight(c, snr_power=1.0, v_with_eps=False, v_plus_one=False, v_add_to_weight=False, use_max=False):
    r"""The Min-SNR-γ loss weight of the case's prediction; the knobs are the known faults.

    .. math:: \mathrm{SNR}_t = \frac{\bar\alpha_t}{1-\bar\alpha_t};\quad
              w = \frac{\min(\mathrm{SNR},\gamma)}{\mathrm{SNR}}\ (\varepsilon),\
              \frac{\min(\mathrm{SNR},\gamma)}{\mathrm{SNR}+1}\ (v),\ \min(\mathrm{SNR},\gamma)\ (x_0)

    (Hang et al. 2023).
    """
    ab = _ab(c["betas"])[onp.asarray(c["t"])]
    snr = (ab / (1 - ab)) ** snr_power
    gamma, kind = float(c["gamma"]), c["prediction_type"]
    clip = lambda s: (onp.maximum if use_max else onp.minimum)(s, gamma)  # noqa: E731
    if kind == "epsilon" or (kind == "v_prediction" and v_with_eps):
        w = clip(snr) / snr
        return w + 1.0 if (kind == "v_prediction" and v_add_to_weight) else w
    if kind == "v_prediction":
        return clip(snr + 1.0) / (snr + 1.0) if v_plus_one else clip(snr) / (snr + 1.0)
    return clip(snr)


def _v_only(**knobs):
    return lambda c: min_snr_weight(c, **knobs) if c["prediction_type"] == "v_prediction" else min_snr_weight(c)


MIN_SNR_WEIGHT = Objective(
    name="min_snr_weight", fields="`betas`, `t`, `gamma`, `prediction_type` (epsilon, v_prediction, sample)",
    text="SNR = ᾱ/(1 − ᾱ); ε: min(SNR, γ)/SNR, v: min(SNR, γ)/(SNR + 1), x0: min(SNR, γ)",
    equation=r"$\mathrm{SNR}=\frac{\bar\alpha_t}{1-\bar\alpha_t}$; $\varepsilon$: $\frac{\min(\mathrm{SNR},\gamma)}"
             r"{\mathrm{SNR}}$, $v$: $\frac{\min(\mathrm{SNR},\gamma)}{\mathrm{SNR}+1}$, $x_0$: $\min(\mathrm{SNR},\gamma)$",
    source="Hang et al. 2023",
    inputs=lambda o, n, shape, rng: {"betas": SCHEDULES["linear1000"].copy(), "t": boundary_steps(n, 1000, rng),
                                     "gamma": 5.0, "prediction_type": o["pred"]},
    reference=min_snr_weight,
    cases=(case("eps", pred="epsilon"), case("v", pred="v_prediction"), case("x0", pred="sample")),
    faults=(Fault("ε weight for v-prediction", "min(SNR, γ)/SNR on a v-prediction loss, where min(SNR, γ)/(SNR + 1) "
                  "belongs (kohya-ss/sd-scripts #673; Hang et al. 2023)", _v_only(v_with_eps=True)),
            Fault("min(SNR + 1, γ)/(SNR + 1)", "1 added to the SNR inside the min too (huggingface/diffusers #5654, "
                  "fixed by PR #6307)", _v_only(v_plus_one=True)),
            Fault("1 added to the weight", "min(SNR, γ)/SNR + 1 for v-prediction: 1 added to the loss weight instead of "
                  "to the SNR (huggingface/diffusers PR #5238, which replaced it)",
                  _v_only(v_with_eps=True, v_add_to_weight=True)),
            Fault("max for min", "max(SNR, γ) where min(SNR, γ) belongs (lucidrains/recurrent-interface-network-pytorch "
                  "#11)", lambda c: min_snr_weight(c, use_max=True)),
            Fault("SNR as √ᾱ/√(1 − ᾱ)", "the amplitude ratio α/σ taken as the SNR, which is α²/σ² (Kingma et al. "
                  "2021, §2; Hang et al. 2023)", lambda c: min_snr_weight(c, snr_power=0.5))))

RECORDS = (BETA_SCHEDULE, TIMESTEPS, DDPM_SCORE_FROM_EPS, DDIM_STEP, MIN_SNR_WEIGHT)
