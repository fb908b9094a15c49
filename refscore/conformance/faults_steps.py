r"""Known faults of the diffusion sampler steps, loss weightings and EDM formulas, as the faulty
code computes them on a case (registered in :data:`refscore.conformance.faults.FAULTS`; sources in
each explanation and in ``docs/conformance.md``).

.. math:: \text{e.g. the likelihood weighting with } g \text{ for } g^2:\quad \lambda(t) = g(t)
          \ \text{instead of}\ g(t)^2\quad(\text{Song, Durkan, Murray \& Ermon 2021, Thm 1})
"""
from __future__ import annotations

import numpy as onp

from .. import diffusion as D
from .fault_registry import register
from .reference_diffusion import make_sde

__all__ = []


def _col(c, x):
    return onp.asarray(c, dtype=float).reshape((-1,) + (1,) * (onp.ndim(x) - 1)) if onp.ndim(c) else float(c)


def _steps(objective, explanation_by_name, fn):
    for name, explanation in explanation_by_name.items():
        register(objective, name, explanation)(lambda c, name=name: fn(c, name))


# ---- loss weightings ---------------------------------------------------------------------------
def _lik_weight(c, fault):
    sde, t = make_sde(c["sde"]), onp.asarray(c["t"], dtype=float)
    g = onp.asarray(sde.diffusion(t), dtype=float)
    return g if fault == "g for g²" else sde.marginal_coeffs(t)[1] ** 2


_steps("likelihood_weighting", {
    "g for g²": "λ(t) = g(t) where the likelihood weighting is g(t)² (Song, Durkan, Murray & Ermon 2021, Thm 1)",
    "σ_t² for g²": "λ(t) = σₜ², the usual score-matching weighting, where likelihood training needs g(t)² "
                   "(Song et al. 2021, eq. 7 against Song, Durkan et al. 2021, Thm 1)"}, _lik_weight)
_steps("edm_loss_weight", {
    "1/c_out for 1/c_out²": "λ = √(σ²+σ_d²)/(σσ_d): g where g² belongs (Karras et al. 2022, Table 1)",
    "inverted": "λ = (σσ_d)²/(σ²+σ_d²) = c_out²: the weight inverted (Karras et al. 2022, Table 1)"},
    lambda c, f: (lambda co: 1.0 / co if f == "1/c_out for 1/c_out²" else co**2)(
        D.preconditioning(c["sigma"], c["sigma_data"])[1]))


def _precond(c, fault):
    s, sd = onp.asarray(c["sigma"], dtype=float), float(c["sigma_data"])
    r = s * s + sd * sd
    root = r if fault == "variance for std in c_in, c_out" else onp.sqrt(r)
    skip = s * s / r if fault == "c_skip with σ² for σ_d²" else sd * sd / r
    noise = onp.log(s) if fault == "c_noise without ¼" else 0.25 * onp.log(s)
    return onp.stack([skip, s * sd / root, 1.0 / root, noise], 1)


_steps("edm_precond", {
    "variance for std in c_in, c_out": "σ² + σ_d² where √(σ² + σ_d²) belongs (Karras et al. 2022, Table 1)",
    "c_skip with σ² for σ_d²": "c_skip = σ²/(σ²+σ_d²): the skip weight of the other end (Karras et al. 2022, Table 1)",
    "c_noise without ¼": "c_noise = ln σ where ¼ ln σ belongs (Karras et al. 2022, Table 1)"}, _precond)


def _schedule(c, fault):
    i, n, rho = onp.asarray(c["i"], dtype=float), int(c["N"]), float(c["rho"])
    lo, hi = c["sigma_min"] ** (1 / rho), c["sigma_max"] ** (1 / rho)
    if fault == "reversed":
        lo, hi = hi, lo
    root = hi + i / (n if fault == "i/N for i/(N−1)" else n - 1) * (lo - hi)
    return root if fault == "missing power ρ" else root**rho


_steps("edm_schedule", {
    "i/N for i/(N−1)": "i/N where i/(N−1) belongs: σ_min is never reached (Karras et al. 2022, eq. 5; "
                       "k-diffusion get_sigmas_karras ramps linspace(0, 1, N))",
    "reversed": "the schedule from σ_min up to σ_max (Karras et al. 2022, eq. 5 decreases)",
    "missing power ρ": "the ρ-th roots interpolated but not raised to the power ρ (Karras et al. 2022, eq. 5)"},
    _schedule)


def _ancestral_sigmas(c, fault):
    f, t, eta = onp.asarray(c["sigma_from"]), onp.asarray(c["sigma_to"]), float(c["eta"])
    inner = t * t * (f * f - t * t) / (f * f)
    up = onp.minimum(t, eta * (inner if fault == "σ_up without the square root" else onp.sqrt(inner)))
    down = onp.sqrt(t * t - up * up)
    return onp.stack([up, down] if fault == "down and up swapped" else [down, up], 1)


_steps("ancestral_sigmas", {
    "down and up swapped": "(σ_up, σ_down) returned where (σ_down, σ_up) belongs (k-diffusion sampling.py, "
                           "get_ancestral_step returns sigma_down first)",
    "σ_up without the square root": "σ_up = η σ_to²(σ_from² − σ_to²)/σ_from², a variance used as a std "
                                    "(k-diffusion get_ancestral_step)"}, _ancestral_sigmas)


# ---- sampler steps ------------------------------------------------------------------------------
def _flat(a):
    return onp.reshape(a, (onp.shape(a)[0], -1))


def _reverse(c, fault):
    sde, t, dt = make_sde(c["sde"]), onp.asarray(c["t"], dtype=float), float(c["dt"])
    X, S = _flat(c["x"]), _flat(c["score"])
    g = onp.asarray(sde.diffusion(t), dtype=float)[:, None]
    g2 = {"½g² (the ODE drift)": 0.5 * g * g, "g for g²": g}.get(fault, g * g)
    drift = sde.drift(X, t) - g2 * S
    step = -drift * dt if fault != "forward-time sign" else drift * dt
    noise = g * (1.0 if fault == "noise without √dt" else onp.sqrt(dt)) * _flat(c["z"])
    return (X + step + noise).reshape(c["x"].shape)


_steps("reverse_sde_step", {
    "½g² (the ODE drift)": "f − ½g²s with noise: the probability-flow drift in the reverse SDE, which needs "
                           "f − g²s (Song et al. 2021, eq. 6 against eq. 13)",
    "g for g²": "f − g s: g where g² belongs (Song et al. 2021, eq. 6)",
    "noise without √dt": "g z where g √Δt z belongs (Euler–Maruyama; Song et al. 2021, Appendix E)",
    "forward-time sign": "x + [f − g²s]Δt: the reverse drift stepped forward in time (Song et al. 2021, Alg. 2)"},
    _reverse)


def _ode(c, fault):
    sde, t = make_sde(c["sde"]), onp.asarray(c["t"], dtype=float)
    X, S = _flat(c["x"]), _flat(c["score"])
    g = onp.asarray(sde.diffusion(t), dtype=float)[:, None]
    coef = g * g if fault == "g² for ½g²" else 0.5 * g
    return (sde.drift(X, t) - coef * S).reshape(c["x"].shape)


_steps("pf_ode_drift", {
    "g² for ½g²": "f − g²s, the reverse-SDE drift, where the ODE has f − ½g²s (Song et al. 2021, eq. 13)",
    "g for g²": "f − ½g s: g where g² belongs (Song et al. 2021, eq. 13)"}, _ode)


def _corrector(c, fault):
    x, s, z, snr, alpha = c["x"], c["score"], c["z"], float(c["snr"]), float(c["alpha"])
    zn, sn = onp.linalg.norm(_flat(z), axis=1), onp.linalg.norm(_flat(s), axis=1)
    ratio = zn / sn if fault == "per-example norms" else onp.mean(zn) / onp.mean(sn)
    eps = (1.0 if fault == "step without the 2" else 2.0) * alpha * (snr * ratio) ** 2
    noise = onp.sqrt(eps) if fault == "noise √ε for √(2ε)" else onp.sqrt(2 * eps)
    return x + _col(eps, x) * s + _col(noise, x) * z


_steps("pc_corrector_step", {
    "step without the 2": "ε = α(r‖z‖/‖s‖)² where Algorithm 4 has 2α(r‖z‖/‖s‖)² (Song et al. 2021, Alg. 4–5; "
                          "refscore.sde's own corrector uses this convention, with h = ε/2)",
    "per-example norms": "‖z‖/‖s‖ per example where score_sde averages the norms over the batch "
                         "(score_sde sampling.py, LangevinCorrector)",
    "noise √ε for √(2ε)": "x + εs + √ε z: the noise std of the paper's ε/2 convention (Song et al. 2021, Alg. 4)"},
    _corrector)


def _annealed(c, fault):
    sig, eps, x = onp.asarray(c["sigmas"], dtype=float), float(c["eps"]), c["x"]
    ratio = {"σ_i/σ_L for σ_i²/σ_L²": sig / sig[-1], "σ_L²/σ_i² (inverted)": sig[-1] ** 2 / sig**2}.get(
        fault, sig**2 / sig[-1] ** 2)
    a = _col(eps * ratio[onp.asarray(c["level"], dtype=int)], x)
    if fault == "code's ε for the paper's ε":  # ermongroup/ncsn: x + ε s + √(2ε) z
        return x + a * c["score"] + onp.sqrt(2 * a) * c["z"]
    return x + 0.5 * a * c["score"] + onp.sqrt(a) * c["z"]


_steps("annealed_langevin_step", {
    "σ_i/σ_L for σ_i²/σ_L²": "αᵢ = ε σᵢ/σ_L where ε σᵢ²/σ_L² belongs (Song & Ermon 2019, Algorithm 1; "
                             "a public repository ships σᵢ/σ_L, issue 21 B.6)",
    "code's ε for the paper's ε": "x + αᵢ s + √(2αᵢ) z, the NCSN code's step (ermongroup/ncsn, "
                                  "anneal_Langevin_dynamics), where the paper has x + (αᵢ/2) s + √αᵢ z",
    "σ_L²/σ_i² (inverted)": "αᵢ = ε σ_L²/σᵢ²: the step shrinks where it should grow with σᵢ "
                            "(Song & Ermon 2019, Algorithm 1)"}, _annealed)
_steps("final_denoise", {
    "noise added at the last step": "x + σ²s + σz: the last predictor step's noisy x returned instead of "
                                    "x_mean (score_sde sampling.py, denoise=False; Jolicoeur-Martineau et al. 2021)",
    "σ for σ²": "x + σ s: σ where Tweedie's formula has σ² (Efron 2011, eq. 2.8)"},
    lambda c, f: c["x"] + _col(c["sigma"] if f == "σ for σ²" else c["sigma"] ** 2, c["x"]) * c["score"]
    + (_col(c["sigma"], c["x"]) * c["z"] if f == "noise added at the last step" else 0.0))
