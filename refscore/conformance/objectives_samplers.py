r"""Diffusion sampler steps: the predictor–corrector Langevin corrector, annealed Langevin dynamics
and the final denoising step, each a record (map objectives) with its cases, its reference
(:mod:`refscore.diffusion`) and its known faults.

.. math:: \epsilon = 2\alpha\big(r\,\overline{\|z\|}/\overline{\|s\|}\big)^2,\ x + \epsilon s + \sqrt{2\epsilon}z;
          \qquad \alpha_i = \epsilon\sigma_i^2/\sigma_L^2,\ x + \tfrac{\alpha_i}2 s + \sqrt{\alpha_i}z;
          \qquad x + \sigma^2 s

(Song et al. 2021, Alg. 4–5; Song & Ermon 2019, Alg. 1; Jolicoeur-Martineau et al. 2021.)
"""
from __future__ import annotations

import numpy as onp

from .. import diffusion as D
from ..diffusion.parametrisation import per_example
from .models import flat
from .objective import Fault, Objective, case

__all__ = ["RECORDS"]


def _score_and_noise(n, shape, rng):
    x = rng.standard_normal((n, *shape))
    return {"x": x, "score": rng.standard_normal((n, *shape)), "z": rng.standard_normal((n, *shape))}


# ---- pc_corrector_step ------------------------------------------------------------------------------
def _corrector_as_code(c, per_example_norms=False, factor=2.0, noise_factor=2.0):
    r""":math:`\epsilon = \text{factor}\cdot\alpha(r\|z\|/\|s\|)^2`, then
    :math:`x + \epsilon s + \sqrt{\text{noise\_factor}\cdot\epsilon}\,z`, with batch-mean norms unless
    ``per_example_norms``."""
    x, s, z, snr, alpha = c["x"], c["score"], c["z"], float(c["snr"]), float(c["alpha"])
    zn, sn = onp.linalg.norm(flat(z), axis=1), onp.linalg.norm(flat(s), axis=1)
    ratio = zn / sn if per_example_norms else onp.mean(zn) / onp.mean(sn)
    eps = factor * alpha * (snr * ratio) ** 2
    noise = onp.sqrt(eps) if noise_factor == 1.0 else onp.sqrt(2 * eps)
    return x + per_example(eps, x) * s + per_example(noise, x) * z


PC_CORRECTOR_STEP = Objective(
    name="pc_corrector_step", fields="`x`, `score`, `z`, `snr`, `alpha`",
    text="ε = 2α(snr·mean‖z‖/mean‖s‖)², x + ε s + √(2ε) z (the norms are batch means of per-example norms)",
    equation=r"$\epsilon=2\alpha(r\,\overline{\lVert z\rVert}/\overline{\lVert s\rVert})^2$, "
             r"$x+\epsilon s+\sqrt{2\epsilon}z$",
    source="Song et al. 2021, Alg. 4–5; score_sde `LangevinCorrector`", is_map=True,
    inputs=lambda o, n, shape, rng: {**_score_and_noise(n, shape, rng), "snr": 0.16, "alpha": o["alpha"]},
    reference=lambda c: D.langevin_corrector_step(c["x"], c["score"], c["z"], c["snr"], c["alpha"]),
    cases=(case("ve-flat", "flat", alpha=1.0), case("vp-img", "img", alpha=0.93)),
    faults=(Fault("step without the 2", "ε = α(r‖z‖/‖s‖)² where Algorithm 4 has 2α(r‖z‖/‖s‖)² (Song et al. 2021, "
                  "Alg. 4–5; refscore.sde's own corrector uses this convention, with h = ε/2)",
                  lambda c: _corrector_as_code(c, factor=1.0)),
            Fault("per-example norms", "‖z‖/‖s‖ per example where score_sde averages the norms over the batch "
                  "(score_sde sampling.py, LangevinCorrector)",
                  lambda c: _corrector_as_code(c, per_example_norms=True)),
            Fault("noise √ε for √(2ε)", "x + εs + √ε z: the noise std of the paper's ε/2 convention (Song et al. "
                  "2021, Alg. 4)", lambda c: _corrector_as_code(c, noise_factor=1.0)),
            Fault("corrector without αᵢ", "ε = 2(r‖z‖/‖s‖)²: no αᵢ factor (αᵢ = 1, exact for VE; diffusers "
                  "ScoreSdeVeScheduler.step_correct; Song et al. 2021, Alg. 4)",
                  lambda c: _corrector_as_code({**c, "alpha": 1.0}), convention=True)))


# ---- annealed_langevin_step ---------------------------------------------------------------------------
def _annealed_as_code(c, ratio=lambda sig: sig**2 / sig[-1] ** 2, code_convention=False):
    r""":math:`\alpha_i = \epsilon\cdot\text{ratio}(\sigma)_i`, then :math:`x + \tfrac{\alpha}2 s + \sqrt\alpha z`
    (the paper) or :math:`x + \alpha s + \sqrt{2\alpha} z` (the NCSN code)."""
    sig, eps, x = onp.asarray(c["sigmas"], dtype=float), float(c["eps"]), c["x"]
    a = per_example(eps * ratio(sig)[onp.asarray(c["level"], dtype=int)], x)
    if code_convention:  # ermongroup/ncsn: x + ε s + √(2ε) z
        return x + a * c["score"] + onp.sqrt(2 * a) * c["z"]
    return x + 0.5 * a * c["score"] + onp.sqrt(a) * c["z"]


def _annealed_inputs(o, n, shape, rng):
    return {**_score_and_noise(n, shape, rng), "sigmas": onp.array([1.0, 0.5, 0.25, 0.1]),
            "level": rng.integers(0, 4, n).astype(onp.int64), "eps": 0.01}


ANNEALED_LANGEVIN_STEP = Objective(
    name="annealed_langevin_step", fields="`x`, `score`, `z`, `sigmas`, `level` (n,), `eps`",
    text="α = ε σ_k²/σ_L², x + (α/2) s + √α z (the NCSN paper's convention)",
    equation=r"$\alpha=\epsilon\sigma_k^2/\sigma_L^2$, $x+\tfrac{\alpha}2s+\sqrt\alpha z$",
    source="Song & Ermon 2019, Alg. 1", is_map=True, inputs=_annealed_inputs,
    reference=lambda c: D.annealed_langevin_step(c["x"], c["score"], c["z"], c["sigmas"], c["level"], c["eps"]),
    cases=(case("flat", "flat"), case("chw", "chw")),
    faults=(Fault("σ_i/σ_L for σ_i²/σ_L²", "αᵢ = ε σᵢ/σ_L where ε σᵢ²/σ_L² belongs (Song & Ermon 2019, Algorithm 1; "
                  "a public repository ships σᵢ/σ_L, issue 21 B.6)",
                  lambda c: _annealed_as_code(c, ratio=lambda sig: sig / sig[-1])),
            Fault("code's ε for the paper's ε", "x + αᵢ s + √(2αᵢ) z, the NCSN code's step (ermongroup/ncsn, "
                  "anneal_Langevin_dynamics), where the paper has x + (αᵢ/2) s + √αᵢ z",
                  lambda c: _annealed_as_code(c, code_convention=True)),
            Fault("σ_L²/σ_i² (inverted)", "αᵢ = ε σ_L²/σᵢ²: the step shrinks where it should grow with σᵢ "
                  "(Song & Ermon 2019, Algorithm 1)",
                  lambda c: _annealed_as_code(c, ratio=lambda sig: sig[-1] ** 2 / sig**2))))


# ---- final_denoise -------------------------------------------------------------------------------------
def _final_as_code(c, sigma_power=2, noise=False):
    r""":math:`x + \sigma^{p} s` (+ :math:`\sigma z` when ``noise``); right: p = 2, no noise."""
    x = c["x"]
    out = x + per_example(c["sigma"] if sigma_power == 1 else c["sigma"] ** 2, x) * c["score"]
    return out + (per_example(c["sigma"], x) * c["z"] if noise else 0.0)


FINAL_DENOISE = Objective(
    name="final_denoise", fields="`x`, `score`, `z`, `sigma`", text="x + σ² s, no noise",
    equation=r"$x+\sigma^2s$ (no noise)", source="Jolicoeur-Martineau et al. 2021", is_map=True,
    inputs=lambda o, n, shape, rng: {**_score_and_noise(n, shape, rng), "sigma": rng.uniform(0.01, 0.5, n)},
    reference=lambda c: D.tweedie_denoise_ve(c["x"], c["score"], c["sigma"]),
    cases=(case("flat", "flat"), case("img", "img")),
    faults=(Fault("noise added at the last step", "x + σ²s + σz: the last predictor step's noisy x returned instead "
                  "of x_mean (score_sde sampling.py, denoise=False; Jolicoeur-Martineau et al. 2021)",
                  lambda c: _final_as_code(c, noise=True)),
            Fault("σ for σ²", "x + σ s: σ where Tweedie's formula has σ² (Efron 2011, eq. 2.8)",
                  lambda c: _final_as_code(c, sigma_power=1))))

RECORDS = (PC_CORRECTOR_STEP, ANNEALED_LANGEVIN_STEP, FINAL_DENOISE)
