r"""EDM (Karras et al. 2022) and k-diffusion: the score and dx/dσ from a denoiser, the loss
weight, the preconditioning, the σ schedule and the ancestral split, each a record with its
cases, its reference (:mod:`refscore.diffusion`) and its known faults.

.. math:: s = (D - x)/\sigma^2,\quad \frac{dx}{d\sigma} = \frac{x - D}{\sigma},\quad
          \sigma_i = \Big(\sigma_\max^{1/\rho}+\tfrac{i}{N-1}(\sigma_\min^{1/\rho}-\sigma_\max^{1/\rho})\Big)^\rho
          \quad(\text{Karras et al. 2022, eqs. 3–5, Table 1})
"""
from __future__ import annotations

import numpy as onp

from .. import diffusion as D
from ..diffusion.parametrisation import per_example
from .objective import Fault, Objective, case

__all__ = ["RECORDS"]


# ---- edm_score and edm_to_d: map objectives ------------------------------------------------------
def _denoiser_inputs(o, n, shape, rng):
    x = rng.standard_normal((n, *shape))
    return {"x": x, "denoised": 0.5 * rng.standard_normal((n, *shape)), "sigma": rng.uniform(0.05, 5.0, n)}


def _from_denoiser(c, sign, power):
    r""":math:`\text{sign}\cdot(D - x)/\sigma^{p}`: the score is sign +1, p = 2; dx/dσ is sign −1, p = 1."""
    return sign * (c["denoised"] - c["x"]) / per_example(c["sigma"] if power == 1 else c["sigma"] ** 2, c["x"])


EDM_SCORE = Objective(
    name="edm_score", fields="`x`, `denoised`, `sigma`", text="(D − x)/σ²", equation=r"$(D-x)/\sigma^2$",
    source="Karras et al. 2022, eq. 3", is_map=True, inputs=_denoiser_inputs,
    reference=lambda c: D.score_from_denoiser(c["x"], c["denoised"], c["sigma"]),
    cases=(case("flat", "flat"), case("img", "img")),
    faults=(Fault("sign", "(x − D)/σ²: the score is (D − x)/σ² (Karras et al. 2022, eq. 3)",
                  lambda c: _from_denoiser(c, -1.0, 2)),
            Fault("σ for σ²", "(D − x)/σ: k-diffusion's to_d with its sign flipped taken for the score (Karras eq. 3)",
                  lambda c: _from_denoiser(c, 1.0, 1))))


def _to_d_as_code(c, sign=1.0, power=1):
    r""":math:`\text{sign}\cdot(x - D)/\sigma^{p}` (right: sign +1, p = 1)."""
    return sign * (c["x"] - c["denoised"]) / per_example(c["sigma"] ** 2 if power == 2 else c["sigma"], c["x"])


EDM_TO_D = Objective(
    name="edm_to_d", fields="`x`, `denoised`, `sigma`", text="(x − D)/σ", equation=r"$(x-D)/\sigma$",
    source="k-diffusion `to_d`; Karras et al. 2022, eq. 4", is_map=True, inputs=_denoiser_inputs,
    reference=lambda c: D.denoiser_derivative(c["x"], c["denoised"], c["sigma"]),
    cases=(case("flat", "flat"), case("chw", "chw")),
    faults=(Fault("sign", "(D − x)/σ: dx/dσ is (x − D)/σ (k-diffusion sampling.py, to_d; Karras et al. 2022, eq. 4)",
                  lambda c: _to_d_as_code(c, sign=-1.0)),
            Fault("σ² for σ", "(x − D)/σ²: that is −score, not dx/dσ = −σ·score", lambda c: _to_d_as_code(c, power=2))))


# ---- the loss weight and the preconditioning ------------------------------------------------------------
def _sigmas_inputs(o, n, shape, rng):
    return {"sigma": onp.exp(rng.uniform(onp.log(0.002), onp.log(80.0), n)), "sigma_data": o["sigma_data"]}


_DATA_STDS = (case("sd0.5", sigma_data=0.5), case("sd1", sigma_data=1.0))


def _c_out(c):
    return D.preconditioning(c["sigma"], c["sigma_data"])[1]


EDM_LOSS_WEIGHT = Objective(
    name="edm_loss_weight", fields="`sigma`, `sigma_data`", text="(σ² + σ_d²)/(σσ_d)²",
    equation=r"$(\sigma^2+\sigma_d^2)/(\sigma\sigma_d)^2$", source="Karras et al. 2022, Table 1",
    inputs=_sigmas_inputs, reference=lambda c: D.loss_weight(c["sigma"], c["sigma_data"]), cases=_DATA_STDS,
    faults=(Fault("1/c_out for 1/c_out²", "λ = √(σ²+σ_d²)/(σσ_d): g where g² belongs (Karras et al. 2022, Table 1)",
                  lambda c: 1.0 / _c_out(c)),
            Fault("inverted", "λ = (σσ_d)²/(σ²+σ_d²) = c_out²: the weight inverted (Karras et al. 2022, Table 1)",
                  lambda c: _c_out(c) ** 2)))


def _precond_as_code(c, variance_root=False, skip_of_sigma=False, noise_without_quarter=False, skip_sigma=False):
    r""":math:`(c_\text{skip}, c_\text{out}, c_\text{in}, c_\text{noise})` with one of them changed."""
    s, sd = onp.asarray(c["sigma"], dtype=float), float(c["sigma_data"])
    r = s * s + sd * sd
    root = r if variance_root else onp.sqrt(r)
    skip = s * s / r if skip_of_sigma else sd * sd / r
    skip = sd * sd / (s + sd * sd) if skip_sigma else skip
    noise = onp.log(s) if noise_without_quarter else 0.25 * onp.log(s)
    return onp.stack([skip, s * sd / root, 1.0 / root, noise], 1)


EDM_PRECOND = Objective(
    name="edm_precond", fields="`sigma`, `sigma_data`", columns=("c_skip", "c_out", "c_in", "c_noise"),
    text="c_skip, c_out, c_in, c_noise = ¼ ln σ",
    equation=r"$c_\text{skip}$, $c_\text{out}$, $c_\text{in}$, $c_\text{noise}=\tfrac14\ln\sigma$",
    source="Karras et al. 2022, Table 1", inputs=_sigmas_inputs,
    reference=lambda c: onp.stack(D.preconditioning(c["sigma"], c["sigma_data"]), axis=1), cases=_DATA_STDS,
    faults=(Fault("variance for std in c_in, c_out", "σ² + σ_d² where √(σ² + σ_d²) belongs (Karras et al. 2022, "
                  "Table 1)", lambda c: _precond_as_code(c, variance_root=True)),
            Fault("c_skip with σ² for σ_d²", "c_skip = σ²/(σ²+σ_d²): the skip weight of the other end (Karras et al. "
                  "2022, Table 1)", lambda c: _precond_as_code(c, skip_of_sigma=True)),
            Fault("c_noise without ¼", "c_noise = ln σ where ¼ ln σ belongs (Karras et al. 2022, Table 1)",
                  lambda c: _precond_as_code(c, noise_without_quarter=True)),
            Fault("c_skip with σ for σ²", "c_skip = σ_d²/(σ + σ_d²): σ where σ² belongs (Karras et al. 2022, Table 1)",
                  lambda c: _precond_as_code(c, skip_sigma=True)),
            Fault("c_noise left to the inner model", "the wrapper hands its inner model σ itself (c_noise = σ), and "
                  "the network takes ¼ ln σ inside: k-diffusion's layers.Denoiser (crowsonkb/k-diffusion layers.py; "
                  "its image models compute c_noise = ln σ/4 themselves)",
                  lambda c: onp.column_stack([_precond_as_code(c)[:, :3], onp.asarray(c["sigma"], dtype=float)]),
                  convention=True)))


# ---- edm_schedule and ancestral_sigmas ------------------------------------------------------------------
def _schedule_as_code(c, reversed_=False, ramp_over_n=False, no_power=False, inverse_rho=False, rho=None):
    r"""Karras et al. eq. 5 with the ends exchanged, the ramp :math:`i/N`, the power ρ dropped, ρ and
    1/ρ exchanged, or a fixed ``rho``."""
    i, n, rho = onp.asarray(c["i"], dtype=float), int(c["N"]), float(c["rho"] if rho is None else rho)
    if inverse_rho:
        rho = 1.0 / rho
    lo, hi = c["sigma_min"] ** (1 / rho), c["sigma_max"] ** (1 / rho)
    if reversed_:
        lo, hi = hi, lo
    root = hi + i / (n if ramp_over_n else n - 1) * (lo - hi)
    return root if no_power else root**rho


EDM_SCHEDULE = Objective(
    name="edm_schedule", fields="`i` (n,), `N`, `sigma_min`, `sigma_max`, `rho`", text="σ_i of Karras et al. eq. 5",
    equation=r"$\big(\sigma_\max^{1/\rho}+\frac{i}{N-1}(\sigma_\min^{1/\rho}-\sigma_\max^{1/\rho})\big)^\rho$",
    source="Karras et al. 2022, eq. 5",
    inputs=lambda o, n, shape, rng: {"i": onp.arange(o["N"], dtype=onp.int64), **o},
    reference=lambda c: D.karras_sigmas(c["i"], c["N"], c["sigma_min"], c["sigma_max"], c["rho"]),
    cases=(case("rho7", N=6, sigma_min=0.002, sigma_max=80.0, rho=7.0),
           case("rho3", N=5, sigma_min=0.01, sigma_max=10.0, rho=3.0)),
    faults=(Fault("i/N for i/(N−1)", "i/N where i/(N−1) belongs: σ_min is never reached (Karras et al. 2022, eq. 5; "
                  "k-diffusion get_sigmas_karras ramps linspace(0, 1, N))",
                  lambda c: _schedule_as_code(c, ramp_over_n=True)),
            Fault("reversed", "the schedule from σ_min up to σ_max (Karras et al. 2022, eq. 5 decreases)",
                  lambda c: _schedule_as_code(c, reversed_=True)),
            Fault("missing power ρ", "the ρ-th roots interpolated but not raised to the power ρ (Karras et al. 2022, "
                  "eq. 5)", lambda c: _schedule_as_code(c, no_power=True)),
            Fault("ρ and 1/ρ swapped", "(σ_max^ρ + i/(N−1)(σ_min^ρ − σ_max^ρ))^{1/ρ}: the exponents exchanged (Karras "
                  "et al. 2022, eq. 5)", lambda c: _schedule_as_code(c, inverse_rho=True)),
            Fault("ρ fixed to 7", "ρ = 7 whatever the case asks: the schedule of Karras et al. 2022 (eq. 5, "
                  "ρ = 7 in Table 1) hard-coded (diffusers EDMEulerScheduler and k-diffusion samplers' default)",
                  lambda c: _schedule_as_code(c, rho=7.0), convention=True)))


def _ancestral_sigmas_as_code(c, swapped=False, up_without_root=False):
    f, t, eta = onp.asarray(c["sigma_from"]), onp.asarray(c["sigma_to"]), float(c["eta"])
    inner = t * t * (f * f - t * t) / (f * f)
    up = onp.minimum(t, eta * (inner if up_without_root else onp.sqrt(inner)))
    down = onp.sqrt(t * t - up * up)
    return onp.stack([up, down] if swapped else [down, up], 1)


def _ancestral_sigmas_inputs(o, n, shape, rng):
    f = rng.uniform(0.5, 10.0, n)
    return {"sigma_from": f, "sigma_to": f * rng.uniform(0.1, 0.9, n), "eta": o["eta"]}


ANCESTRAL_SIGMAS = Objective(
    name="ancestral_sigmas", fields="`sigma_from`, `sigma_to`, `eta`", columns=("sigma_down", "sigma_up"),
    text="σ_down, σ_up (k-diffusion)",
    equation=r"$\sigma_\downarrow$, $\sigma_\uparrow=\min(\sigma_\text{to},\eta\sqrt{\sigma_\text{to}^2"
             r"(\sigma_\text{from}^2-\sigma_\text{to}^2)/\sigma_\text{from}^2})$",
    source="k-diffusion `get_ancestral_step`", inputs=_ancestral_sigmas_inputs,
    reference=lambda c: onp.stack(D.ancestral_sigmas(c["sigma_from"], c["sigma_to"], c["eta"]), axis=1),
    cases=(case("eta1", eta=1.0), case("eta0.5", eta=0.5)),
    faults=(Fault("down and up swapped", "(σ_up, σ_down) returned where (σ_down, σ_up) belongs (k-diffusion "
                  "sampling.py, get_ancestral_step returns sigma_down first)",
                  lambda c: _ancestral_sigmas_as_code(c, swapped=True)),
            Fault("σ_up without the square root", "σ_up = η σ_to²(σ_from² − σ_to²)/σ_from², a variance used as a std "
                  "(k-diffusion get_ancestral_step)", lambda c: _ancestral_sigmas_as_code(c, up_without_root=True)),
            Fault("η fixed to 1", "the full ancestral step whatever η the case asks: samplers without η "
                  "(diffusers EulerAncestralDiscreteScheduler; Karras et al. 2022 and k-diffusion's η = 1)",
                  lambda c: _ancestral_sigmas_as_code({**c, "eta": 1.0}), convention=True)))

RECORDS = (EDM_SCORE, EDM_TO_D, EDM_LOSS_WEIGHT, EDM_PRECOND, EDM_SCHEDULE, ANCESTRAL_SIGMAS)
