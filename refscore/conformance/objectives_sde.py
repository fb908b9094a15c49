r"""SDEs: the VE/VP/sub-VP marginal, the likelihood weighting, the diffusion coefficient g(t), one
reverse-SDE step and the probability-flow drift, each a record with its cases, its reference
(:mod:`refscore.sde`, :mod:`refscore.diffusion`) and its known faults. An SDE is a dict
(:func:`.models.make_sde`); :data:`SDES` are the cases' three.

.. math::
   \texttt{sde\_marginal}: (a(t), s(t)),\ x_t = a x_0 + s z \ \text{(VE: } s=\sqrt{\sigma(t)^2-\sigma_\min^2}),
   \qquad \texttt{reverse\_sde\_step}: x - [f - g^2 s]\Delta t + g\sqrt{\Delta t}\,z

(Song et al. 2021, eqs. 6, 13, 29 and Appendix B; Song, Durkan, Murray & Ermon 2021, Thm 1.)
"""
from __future__ import annotations

import numpy as onp

from .. import diffusion as D
from .models import flat, make_sde
from .objective import Fault, Objective, case

__all__ = ["RECORDS", "SDES", "sde_spec"]

SDES = {"ve": {"kind": "ve", "sigma_min": 0.01, "sigma_max": 50.0},
        "vp": {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0},
        "subvp": {"kind": "subvp", "beta_min": 0.1, "beta_max": 20.0}}


def sde_spec(options):
    r"""A case's ``sde`` dict from its options: a key of :data:`SDES`, or the dict itself.

    .. math:: \text{ve}: (\sigma_\min, \sigma_\max);\quad \text{vp, subvp}: (\beta_\min, \beta_\max)
    """
    return dict(SDES[options["sde"]]) if isinstance(options["sde"], str) else dict(options["sde"])


def _sde_times(o, n, shape, rng):
    return {"sde": sde_spec(o), "t": rng.uniform(0.05, 1.0, n)}


def _t(c):
    return onp.asarray(c["t"], dtype=float)


_THREE = (case("ve", sde="ve"), case("vp", sde="vp"), case("subvp", sde="subvp"))


# ---- sde_marginal: (mean coefficient, std) ------------------------------------------------------
def _marginal(c):
    a, s = make_sde(c["sde"]).marginal_coeffs(_t(c))
    return onp.stack([a + 0.0 * s, s], axis=1)


def _integrated_beta(c):
    r""":math:`B(t) = \int_0^t\beta = \beta_\min t + \tfrac12 t^2(\beta_\max-\beta_\min)`."""
    sde, t = c["sde"], _t(c)
    return t * sde["beta_min"] + 0.5 * t * t * (sde["beta_max"] - sde["beta_min"])


def _variance_as_std(c):
    a, s = c["expected"].T
    return onp.stack([a, s * s], 1)


def _ve_std_sigma_t(c):
    sde, (a, s) = c["sde"], c["expected"].T
    if sde["kind"] != "ve":
        return c["expected"]
    return onp.stack([a, sde["sigma_min"] * (sde["sigma_max"] / sde["sigma_min"]) ** _t(c)], 1)


def _vp_mean_without_half(c):
    if c["sde"]["kind"] == "ve":
        return c["expected"]
    return onp.stack([onp.exp(-_integrated_beta(c)), c["expected"][:, 1]], 1)


def _discrete_beta(c):  # score_sde's discrete_betas = β(t)/N, N = 1000
    if c["sde"]["kind"] == "ve":
        return c["expected"]
    B = _integrated_beta(c) / 1000.0
    std = -onp.expm1(-B) if c["sde"]["kind"] == "subvp" else onp.sqrt(-onp.expm1(-B))
    return onp.stack([onp.exp(-0.5 * B), std], 1)


def _subvp_with_vp_std(c):
    if c["sde"]["kind"] != "subvp":
        return c["expected"]
    return onp.stack([c["expected"][:, 0], onp.sqrt(-onp.expm1(-_integrated_beta(c)))], 1)


SDE_MARGINAL = Objective(
    name="sde_marginal", fields="`sde`, `t`", columns=("mean coefficient", "std"),
    text="a(t), s(t) of x_t = a x0 + s z; VE std = √(σ(t)² − σ_min²), sub-VP std = 1 − e^{−B(t)}",
    equation=r"$a(t)$, $s(t)$ of $x_t=a x_0+s z$; VP $a=e^{-B/2}$, $s=\sqrt{1-e^{-B}}$; sub-VP $s=1-e^{-B}$; "
             r"VE $a=1$, $s=\sqrt{\sigma(t)^2-\sigma_\min^2}$",
    source="Song et al. 2021, App. B, eq. 29", inputs=_sde_times, reference=_marginal, cases=_THREE,
    faults=(Fault("variance as std", "the variance s² returned where the std s belongs (the slip of wjmaddox/drbayes "
                  "#6, here in marginal_prob)", _variance_as_std),
            Fault("discrete β as β(t)", "the discrete DDPM βᵢ = β(t)/N (score_sde sde_lib.py, VPSDE.discrete_betas, "
                  "N = 1000) used as the continuous β(t): B(t) shrinks by N", _discrete_beta),
            Fault("VE std σ(t)", "the total-σ VE convention: std σ(t) (score_sde sde_lib.py, VESDE.marginal_prob; "
                  "Song et al. 2021, App. B), where refscore counts only the noise added since t = 0, "
                  "√(σ(t)² − σ_min²)", _ve_std_sigma_t, convention=True),
            Fault("VP mean missing its ½", "mean coefficient e^{−B(t)} where e^{−B(t)/2} belongs: the ½ of the drift "
                  "−½β(t)x dropped when integrating it (Song et al. 2021, eq. 29 and App. B)", _vp_mean_without_half),
            Fault("sub-VP std √(1−e^{−B})", "the VP std for sub-VP, whose std is 1 − e^{−B(t)} (Song et al. 2021, "
                  "eq. 29; score_sde subVPSDE.marginal_prob)", _subvp_with_vp_std)))


# ---- likelihood_weighting ---------------------------------------------------------------------------
LIKELIHOOD_WEIGHTING = Objective(
    name="likelihood_weighting", fields="`sde`, `t`", text="g(t)²", equation=r"$g(t)^2$",
    source="Song, Durkan, Murray & Ermon 2021, Thm 1", inputs=_sde_times,
    reference=lambda c: D.likelihood_weighting(make_sde(c["sde"]), _t(c)), cases=_THREE,
    faults=(Fault("g for g²", "λ(t) = g(t) where the likelihood weighting is g(t)² (Song, Durkan, Murray & Ermon "
                  "2021, Thm 1)", lambda c: onp.asarray(make_sde(c["sde"]).diffusion(_t(c)), dtype=float)),
            Fault("σ_t² for g²", "λ(t) = σₜ², the usual score-matching weighting, where likelihood training needs "
                  "g(t)² (Song et al. 2021, eq. 7 against Song, Durkan et al. 2021, Thm 1)",
                  lambda c: make_sde(c["sde"]).marginal_coeffs(_t(c))[1] ** 2)))


# ---- sde_diffusion: the diffusion coefficient g(t) ----------------------------------------------------
def _ve_sigma(c):
    r"""VE's :math:`\sigma(t) = \sigma_\min(\sigma_\max/\sigma_\min)^t`: g(t) without its
    :math:`\sqrt{2\ln(\sigma_\max/\sigma_\min)}` (the reference elsewhere)."""
    sde = c["sde"]
    if sde["kind"] != "ve":
        return c["expected"]
    return sde["sigma_min"] * (sde["sigma_max"] / sde["sigma_min"]) ** _t(c)


def _subvp_with_vp_diffusion(c):
    if c["sde"]["kind"] != "subvp":
        return c["expected"]
    sde, t = c["sde"], _t(c)
    return onp.sqrt(sde["beta_min"] + t * (sde["beta_max"] - sde["beta_min"]))


SDE_DIFFUSION = Objective(
    name="sde_diffusion", fields="`sde`, `t`",
    text="g(t) of dx = f dt + g dw; VE g = σ(t)√(2 ln(σ_max/σ_min)), VP √β(t), sub-VP √(β(t)(1 − e^{−2B(t)}))",
    equation=r"$g(t)$; VE $\sigma(t)\sqrt{2\ln(\sigma_\max/\sigma_\min)}$, VP $\sqrt{\beta(t)}$, "
             r"sub-VP $\sqrt{\beta(t)(1-e^{-2B(t)})}$",
    source="Song et al. 2021, eq. 5 and App. B", inputs=_sde_times,
    reference=lambda c: onp.asarray(make_sde(c["sde"]).diffusion(_t(c)), dtype=float), cases=_THREE,
    faults=(Fault("g(t) without √(2 ln(σ_max/σ_min))", "VE g(t) = σ(t), the noise level where its rate "
                  "√(dσ²/dt) = σ(t)√(2 ln(σ_max/σ_min)) belongs (deepinv/deepinv #775)", _ve_sigma),
            Fault("g² for g", "g(t)², the variance rate dσ²/dt (the likelihood weighting), where the coefficient "
                  "g(t) of dw belongs (Song et al. 2021, eq. 5)", lambda c: c["expected"] ** 2),
            Fault("sub-VP diffusion √β(t)", "the VP coefficient √β(t) for sub-VP, whose g is "
                  "√(β(t)(1 − e^{−2B(t)})) (Song et al. 2021, §3.4; score_sde subVPSDE.sde)",
                  _subvp_with_vp_diffusion)))


# ---- reverse_sde_step and pf_ode_drift: map objectives ---------------------------------------------
def _step_inputs(o, n, shape, rng):
    x = rng.standard_normal((n, *shape))
    return {"x": x, "sde": sde_spec(o), "t": rng.uniform(0.05, 1.0, n), "score": rng.standard_normal((n, *shape))}


def _reverse_inputs(o, n, shape, rng):
    return {**_step_inputs(o, n, shape, rng), "dt": 0.01, "z": rng.standard_normal((n, *shape))}


def _g(c):
    return onp.asarray(make_sde(c["sde"]).diffusion(_t(c)), dtype=float)[:, None]


def _reverse_as_code(c, weight=lambda g: g * g, forward=False, noise_dt=True):
    r""":math:`x \mp [f - w(g)\,s]\Delta t + g\sqrt{\Delta t}\,z` with the weight, the sign or the
    noise's :math:`\sqrt{\Delta t}` changed."""
    sde, t, dt = make_sde(c["sde"]), _t(c), float(c["dt"])
    X, S, g = flat(c["x"]), flat(c["score"]), _g(c)
    drift = sde.drift(X, t) - weight(g) * S
    step = drift * dt if forward else -drift * dt
    noise = g * (onp.sqrt(dt) if noise_dt else 1.0) * flat(c["z"])
    return (X + step + noise).reshape(c["x"].shape)


def _reverse_diffusion_ve(c):
    r"""score_sde's ``ReverseDiffusionPredictor`` on the VE SDE: the discretised SDE's own step,
    :math:`G^2 = \sigma(t)^2-\sigma(t-\Delta t)^2`, :math:`x + G^2 s + G z` (other SDEs: the reference)."""
    sde = c["sde"]
    if sde["kind"] != "ve":
        return c["expected_x"]
    sig = lambda u: sde["sigma_min"] * (sde["sigma_max"] / sde["sigma_min"]) ** u  # noqa: E731
    t = _t(c)
    G2 = (sig(t) ** 2 - sig(t - float(c["dt"])) ** 2)[:, None]
    return (flat(c["x"]) + G2 * flat(c["score"]) + onp.sqrt(G2) * flat(c["z"])).reshape(c["x"].shape)


REVERSE_SDE_STEP = Objective(
    name="reverse_sde_step", fields="`sde`, `t`, `dt`, `x`, `score`, `z`", text="x − [f − g²s]dt + g√dt z",
    equation=r"$x-[f-g^2s]\Delta t+g\sqrt{\Delta t}z$", source="Song et al. 2021, eq. 6", is_map=True,
    inputs=_reverse_inputs,
    reference=lambda c: D.reverse_sde_step(make_sde(c["sde"]), c["x"], _t(c), c["dt"], c["score"], c["z"]),
    cases=(case("ve-flat", "flat", sde="ve"), case("vp-img", "img", sde="vp"), case("subvp-chw", "chw", sde="subvp")),
    faults=(Fault("½g² (the ODE drift)", "f − ½g²s with noise: the probability-flow drift in the reverse SDE, which "
                  "needs f − g²s (Song et al. 2021, eq. 6 against eq. 13)",
                  lambda c: _reverse_as_code(c, weight=lambda g: 0.5 * g * g)),
            Fault("g for g²", "f − g s: g where g² belongs (Song et al. 2021, eq. 6)",
                  lambda c: _reverse_as_code(c, weight=lambda g: g)),
            Fault("noise without √dt", "g z where g √Δt z belongs (Euler–Maruyama; Song et al. 2021, Appendix E)",
                  lambda c: _reverse_as_code(c, noise_dt=False)),
            Fault("forward-time sign", "x + [f − g²s]Δt: the reverse drift stepped forward in time (Song et al. "
                  "2021, Alg. 2)", lambda c: _reverse_as_code(c, forward=True)),
            Fault("reverse-diffusion predictor (VE)", "x + (σ(t)² − σ(t−Δt)²)s + √(σ(t)² − σ(t−Δt)²) z, the "
                  "discretised VE SDE's own reverse step, not Euler–Maruyama's g²Δt (yang-song/score_sde sampling.py, "
                  "ReverseDiffusionPredictor; diffusers ScoreSdeVeScheduler.step_pred; Song et al. 2021, App. E)",
                  _reverse_diffusion_ve, convention=True)))


def _ode_as_code(c, coef):
    r""":math:`f - \text{coef}(g)\,s` (the right one is :math:`\tfrac12 g^2`)."""
    X, S = flat(c["x"]), flat(c["score"])
    return (make_sde(c["sde"]).drift(X, _t(c)) - coef(_g(c)) * S).reshape(c["x"].shape)


PF_ODE_DRIFT = Objective(
    name="pf_ode_drift", fields="`sde`, `t`, `x`, `score`", text="f − ½g²s", equation=r"$f-\tfrac12g^2s$",
    source="Song et al. 2021, eq. 13", is_map=True, inputs=_step_inputs,
    reference=lambda c: D.ode_velocity(make_sde(c["sde"]), c["x"], _t(c), c["score"]),
    cases=(case("ve-img", "img", sde="ve"), case("vp-flat", "flat", sde="vp")),
    faults=(Fault("g² for ½g²", "f − g²s, the reverse-SDE drift, where the ODE has f − ½g²s (Song et al. 2021, "
                  "eq. 13)", lambda c: _ode_as_code(c, lambda g: g * g)),
            Fault("g for g²", "f − ½g s: g where g² belongs (Song et al. 2021, eq. 13)",
                  lambda c: _ode_as_code(c, lambda g: 0.5 * g))))

RECORDS = (SDE_MARGINAL, LIKELIHOOD_WEIGHTING, SDE_DIFFUSION, REVERSE_SDE_STEP, PF_ODE_DRIFT)
