r"""Denoising: DSM, NCSN (all levels, or one sampled level per example), the VP denoising loss of
the notes, and Tweedie's denoiser (VE and VP), each a record with its cases, its reference
(:mod:`refscore.losses`, :mod:`refscore.tweedie`) and its known faults.

.. math::
   \texttt{dsm}_i &= \tfrac12\|s(x_i+\sigma z_i) + z_i/\sigma\|^2 \\
   \texttt{ncsn}_i &= \tfrac1L\textstyle\sum_l \lambda(\sigma_l)\,\tfrac12
                      \|s(x_i+\sigma_l z_{li},\sigma_l) + z_{li}/\sigma_l\|^2 \\
   \texttt{vp\_denoising}_i &= \|x'_i + \beta s(x'_i,\beta) - \sqrt{1-\beta}\,x_i\|^2,
                      \quad x'_i=\sqrt{1-\beta}\,x_i+\sqrt\beta\,\varepsilon_i \\
   \texttt{tweedie}: \hat x_i &= x_i + \sigma^2 s(x_i,\sigma),\qquad
   \texttt{tweedie\_vp}: \hat x_i = (x_i + \beta s(x_i,\beta))/\sqrt{1-\beta}

(Vincent 2011, eq. 11; Song & Ermon 2019, eq. 6; seed ``003_…`` eqs. 11.12–11.16; Efron 2011, eq. 2.8.)
"""
from __future__ import annotations

import math

import numpy as onp

from .. import losses, tweedie
from .models import flat, noise_conditional_score_fn, score_fn
from .objective import Fault, Objective, case
from .objectives_score import EXTRA_1_D, LAST_AXIS, MISSING_HALF, flat_stack, points_and_model, sq

__all__ = ["RECORDS"]


# ---- dsm and ncsn: the DSM term, with the faults of its target ----------------------------------
def _dsm_per(score, X, z, sigma, target_sign=1.0, power=2, at_clean=False):
    xt = X + sigma * z
    s = score(X if at_clean else xt)
    return 0.5 * sq(s + target_sign * (xt - X) / sigma**power)


_SIGN = "the DSM target with the wrong sign: s − (x̃−x)/σ² (TorchEBM #318); the target is −(x̃−x)/σ²"
_SIGMA = "(x̃−x)/σ where (x̃−x)/σ² belongs (score_sde #26)"
_WEIGHT_SIGMA = "λ(σ) = σ where λ(σ) = σ² belongs (Song & Ermon 2019, §4.2)"


def _dsm_inputs(o, n, shape, rng):
    return {**points_and_model(o, n, shape, rng), "sigma": o["sigma"], "z": rng.standard_normal((n, *shape))}


def _dsm(c):
    return losses.dsm(score_fn(c["model"], c.get("sigma")), flat(c["x"]), float(c["sigma"]), z=flat(c["z"]),
                      reduction="none")


def _dsm_as_code(c, **change):
    s = score_fn(c["model"], c["sigma"])
    return _dsm_per(s, flat(c["x"]), flat(c["z"]), float(c["sigma"]), **change)


DSM = Objective(
    name="dsm", fields="`sigma`, `z` (n, *shape)", text="½‖s(x̃) + z/σ‖², x̃ = x + σz (gaussian_family: s(·, σ))",
    equation=r"$\tfrac12\lVert s(x+\sigma z)+z/\sigma\rVert^2$", source="Vincent 2011, eq. 11",
    inputs=_dsm_inputs, reference=_dsm,
    cases=(case("quadratic-flat", "flat", model="quadratic", sigma=0.7), case("mlp-img", "img", model="mlp", sigma=0.3),
           case("gaussian_family-chw", "chw", model="gaussian_family", sigma=1.6)),
    faults=(EXTRA_1_D, LAST_AXIS, MISSING_HALF,
            Fault("DSM target sign", _SIGN, lambda c: _dsm_as_code(c, target_sign=-1.0)),
            Fault("σ for σ²", _SIGMA, lambda c: _dsm_as_code(c, power=1)),
            Fault("score at clean x", "the score evaluated at the clean x instead of the noisy x̃",
                  lambda c: _dsm_as_code(c, at_clean=True))))


def _lam(c):
    return (lambda s: s * s) if c["weighting"] == "sigma2" else (lambda s: 1.0)


def _other_lam(c):
    return (lambda s: 1.0) if c["weighting"] == "sigma2" else (lambda s: s * s)


def _ncsn_inputs(o, n, shape, rng):
    c = points_and_model(o, n, shape, rng)
    sig = onp.asarray(o["sigmas"], dtype=float)
    return {**c, "sigmas": sig, "z": rng.standard_normal((sig.size, n, *shape)), "weighting": o["weighting"]}


def _ncsn(c):
    return losses.ncsn(noise_conditional_score_fn(c["model"]), flat(c["x"]), c["sigmas"], z=flat_stack(c["z"]),
                       weighting=str(c["weighting"]), reduction="none")


def _ncsn_as_code(c, lam=None, **change):
    ncs, L = noise_conditional_score_fn(c["model"]), len(c["sigmas"])
    lam = lam or _lam(c)
    total = 0.0
    for i, sig in enumerate(c["sigmas"]):
        per = _dsm_per(lambda y, sig=sig: ncs(y, sig), flat(c["x"]), flat(c["z"][i]), float(sig), **change)
        total = total + lam(float(sig)) * per
    return total / L


NCSN = Objective(
    name="ncsn", fields="`sigmas` (L,), `z` (L, n, *shape), `weighting` (\"sigma2\": λ = σ², \"none\": λ = 1)",
    text="(1/L) Σ_l λ(σ_l) ½‖s(x + σ_l z_l, σ_l) + z_l/σ_l‖²",
    equation=r"$\frac1L\sum_l\lambda(\sigma_l)\tfrac12\lVert s(x+\sigma_lz_l,\sigma_l)+z_l/\sigma_l\rVert^2$",
    source="Song & Ermon 2019, eq. 6", inputs=_ncsn_inputs, reference=_ncsn,
    cases=(case("gaussian_family-flat-wsigma2", "flat", model="gaussian_family", sigmas=[2.0, 0.9, 0.4],
                weighting="sigma2"),
           case("gaussian_family-img-wnone", "img", model="gaussian_family", sigmas=[1.5, 0.5], weighting="none"),
           case("mlp-chw-wsigma2", "chw", model="mlp", sigmas=[3.0, 1.2, 0.6, 0.25], weighting="sigma2")),
    faults=(EXTRA_1_D, LAST_AXIS, MISSING_HALF,
            Fault("DSM target sign", _SIGN, lambda c: _ncsn_as_code(c, target_sign=-1.0)),
            Fault("σ for σ²", _SIGMA, lambda c: _ncsn_as_code(c, power=1)),
            Fault("weight σ for σ²", _WEIGHT_SIGMA,
                  lambda c: _ncsn_as_code(c, lam=lambda s: s) if c["weighting"] == "sigma2" else c["expected"]),
            Fault("weighting ignored", "the other weighting than the case's `weighting` field (σ² vs none)",
                  lambda c: _ncsn_as_code(c, lam=_other_lam(c))),
            Fault("sum over levels", "the L levels summed instead of averaged (×L)",
                  lambda c: len(c["sigmas"]) * c["expected"])))


# ---- ncsn_sampled: one level per example, as training code draws it -------------------------------
def _ncsn_sampled_inputs(o, n, shape, rng):
    c = points_and_model(o, n, shape, rng)
    sig = onp.asarray(o["sigmas"], dtype=float)
    level_index = onp.arange(n) % sig.size  # every level present, in a shuffled order
    return {**c, "sigmas": sig, "level_index": rng.permutation(level_index), "z": rng.standard_normal((n, *shape)),
            "weighting": o["weighting"]}


def _ncsn_sampled(c):
    return losses.ncsn(noise_conditional_score_fn(c["model"]), flat(c["x"]), c["sigmas"], z=flat(c["z"]),
                       weighting=str(c["weighting"]), reduction="none", levels="sample",
                       level_index=onp.asarray(c["level_index"], dtype=int))


def _ncsn_sampled_as_code(c, lam=None, **change):
    sig = onp.asarray(c["sigmas"], dtype=float)[onp.asarray(c["level_index"], dtype=int)]  # (n,)
    lam = lam or ((lambda s: s * s) if c["weighting"] == "sigma2" else (lambda s: 1.0 + 0.0 * s))
    ncs = noise_conditional_score_fn(c["model"])
    return lam(sig) * _dsm_per(lambda y: ncs(y, sig), flat(c["x"]), flat(c["z"]), sig[:, None], **change)


NCSN_SAMPLED = Objective(
    name="ncsn_sampled", fields="`sigmas` (L,), `level_index` (n,) integers (0-based: example i uses σ_k, "
    "k = level_index[i]), `z` (n, *shape), `weighting`",
    text="λ(σ_k) ½‖s(x + σ_k z, σ_k) + z/σ_k‖² (one level per example; no 1/L)",
    equation=r"$\lambda(\sigma_{k_i})\tfrac12\lVert s(x+\sigma_{k_i}z,\sigma_{k_i})+z/\sigma_{k_i}\rVert^2$, "
             r"$k_i$ = `level_index[i]` (one level per example, as training code draws it; no $1/L$)",
    source="Song & Ermon 2019, eq. 6", inputs=_ncsn_sampled_inputs, reference=_ncsn_sampled,
    cases=(case("gaussian_family-flat-wsigma2", "flat", model="gaussian_family", sigmas=[2.0, 0.9, 0.4],
                weighting="sigma2"),
           case("gaussian_family-img-wnone", "img", model="gaussian_family", sigmas=[1.5, 0.7, 0.3], weighting="none"),
           case("mlp-chw-wsigma2", "chw", model="mlp", sigmas=[3.0, 1.2, 0.6, 0.25], weighting="sigma2")),
    faults=(EXTRA_1_D, LAST_AXIS, MISSING_HALF,
            Fault("DSM target sign", _SIGN, lambda c: _ncsn_sampled_as_code(c, target_sign=-1.0)),
            Fault("σ for σ²", _SIGMA, lambda c: _ncsn_sampled_as_code(c, power=1)),
            Fault("weight σ for σ²", _WEIGHT_SIGMA, lambda c: _ncsn_sampled_as_code(c, lam=lambda s: s)
                  if c["weighting"] == "sigma2" else c["expected"]),
            Fault("averaged over levels (1/L)", "λ(σ_k)ℓ_k/L: the 1/L of the all-levels average kept although each "
                  "example has one level", lambda c: c["expected"] / len(c["sigmas"]))))


# ---- vp_denoising (seed 003_…, eq. 11.16) -------------------------------------------------------
def _vp_inputs(o, n, shape, rng):
    return {**points_and_model(o, n, shape, rng, "vp"), "beta": o["beta"], "eps": rng.standard_normal((n, *shape))}


def _vp(c):
    return losses.vp_denoising(noise_conditional_score_fn(c["model"]), flat(c["x"]), float(c["beta"]),
                               eps=flat(c["eps"]), reduction="none")


def _vp_as_code(c, score_coef=None, score_sign=1.0, a_on_x=True):
    X, eps, b = flat(c["x"]), flat(c["eps"]), float(c["beta"])
    a = math.sqrt(1.0 - b)
    xp = a * X + math.sqrt(b) * eps
    s = noise_conditional_score_fn(c["model"])(xp, b)
    coef = b if score_coef is None else score_coef
    return sq(xp + score_sign * coef * s - (a * X if a_on_x else X))


VP_DENOISING = Objective(
    name="vp_denoising", fields="`beta`, `eps` (n, *shape)",
    text="‖x′ + β s(x′, β) − √(1−β) x‖², x′ = √(1−β) x + √β ε (no ½)",
    equation=r"$\lVert x'+\beta s(x',\beta)-\sqrt{1-\beta}\,x\rVert^2$, "
             r"$x'=\sqrt{1-\beta}x+\sqrt\beta\varepsilon$ (no ½)",
    source="seed 003, eq. 11.16", inputs=_vp_inputs, reference=_vp,
    cases=(case("gaussian_family-flat", "flat", model="gaussian_family", beta=0.3),
           case("mlp-img", "img", model="mlp", beta=0.15),
           case("gaussian_family-chw", "chw", model="gaussian_family", beta=0.6)),
    faults=(EXTRA_1_D, LAST_AXIS,
            Fault("added ½", "½ put in front of eq. 11.16, which has none (the notes' form is kept)",
                  lambda c: 0.5 * c["expected"]),
            Fault("score-term sign", "x' − βS − √(1−β)x: the score term with the wrong sign",
                  lambda c: _vp_as_code(c, score_sign=-1.0)),
            Fault("√β for β", "x' + √β S − √(1−β)x: the noise std where the variance β belongs",
                  lambda c: _vp_as_code(c, score_coef=math.sqrt(float(c["beta"])))),
            Fault("missing √(1−β)", "x' + βS − x: the clean point not scaled by √(1−β) (eq. 11.5)",
                  lambda c: _vp_as_code(c, a_on_x=False))))


# ---- Tweedie's denoiser: map objectives (x holds the noisy y) --------------------------------------
def _tweedie_inputs(parametrization):
    return lambda o, n, shape, rng: {**points_and_model(o, n, shape, rng, parametrization),
                                     **{k: v for k, v in o.items() if k != "model"}}


def _tweedie_as_code(c, level, coef, divide=1.0):
    r""":math:`(y + \text{coef}\cdot s(y, \text{level}))/\text{divide}`."""
    y = flat(c["x"])
    return (y + coef * score_fn(c["model"], level)(y)) / divide


TWEEDIE = Objective(
    name="tweedie", fields="`sigma` (`x` holds y)", text="x̂ = y + σ² s(y, σ)",
    equation=r"$\hat x = y+\sigma^2 s(y,\sigma)$", source="Efron 2011, eq. 2.8", is_map=True,
    inputs=_tweedie_inputs("ve"),
    reference=lambda c: tweedie.denoise(score_fn(c["model"], c["sigma"]), flat(c["x"]), float(c["sigma"])),
    cases=(case("gaussian_family-flat", "flat", model="gaussian_family", sigma=0.8),
           case("gaussian_family-img", "img", model="gaussian_family", sigma=1.7)),
    faults=(Fault("σ for σ²", "y + σ s(y) where Tweedie's formula has y + σ² s(y) (Efron 2011, eq. 2.8)",
                  lambda c: _tweedie_as_code(c, c["sigma"], c["sigma"])),
            Fault("score sign", "y − σ² s(y): the energy gradient +∇E used as the score",
                  lambda c: flat(c["x"]) - c["sigma"] ** 2 * score_fn(c["model"], c["sigma"])(flat(c["x"])))))

TWEEDIE_VP = Objective(
    name="tweedie_vp", fields="`beta` (`x` holds y)", text="x̂ = (y + β s(y, β)) / √(1−β)",
    equation=r"$\hat x=(y+\beta s(y,\beta))/\sqrt{1-\beta}$", source="seed 003, eqs. 11.12–11.13", is_map=True,
    inputs=_tweedie_inputs("vp"),
    reference=lambda c: tweedie.denoise_vp(score_fn(c["model"], c["beta"]), flat(c["x"]), float(c["beta"])),
    cases=(case("gaussian_family-flat", "flat", model="gaussian_family", beta=0.35),
           case("gaussian_family-chw", "chw", model="gaussian_family", beta=0.7)),
    faults=(Fault("missing 1/√(1−β)", "y + β s(y) without the division: that is √(1−β)·E[x|y] (eq. 11.13)",
                  lambda c: _tweedie_as_code(c, c["beta"], c["beta"])),
            Fault("1/(1−β) for 1/√(1−β)", "(y + β s)/(1−β): the variance where its square root belongs",
                  lambda c: _tweedie_as_code(c, c["beta"], c["beta"], 1.0 - c["beta"])),
            Fault("√β for β", "(y + √β s)/√(1−β): the noise std where the variance β belongs",
                  lambda c: _tweedie_as_code(c, c["beta"], math.sqrt(c["beta"]), math.sqrt(1.0 - c["beta"]))),
            Fault("score sign", "(y − β s)/√(1−β): the energy gradient +∇E used as the score",
                  lambda c: (flat(c["x"]) - c["beta"] * score_fn(c["model"], c["beta"])(flat(c["x"])))
                  / math.sqrt(1.0 - c["beta"]))))

RECORDS = (DSM, NCSN, NCSN_SAMPLED, VP_DENOISING, TWEEDIE, TWEEDIE_VP)
