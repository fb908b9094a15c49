r"""Known faults of the score-matching objectives and the sampler steps, as faulty code computes
them on a case (registered in :data:`refscore.conformance.faults.FAULTS`).

Notation as in :mod:`refscore.conformance.reference`; :math:`\bar x` is the flattened point. A
"last-axis sum" reduces an ``(n, *shape)`` array over its last axis only (``x.sum(-1)``) and then
averages the rest: for a per-feature sum this scales it by :math:`C/d` (C = shape[-1]); for SSM,
whose projections are dot products, it is modelled as the code computes it (:func:`ssm_as_code`).
"""
from __future__ import annotations

import math

import numpy as onp

from .fault_registry import register as _fault
from .models import flat, log_prob_fn, noise_conditional_score_fn, score_fn, score_jacobian

__all__ = ["ssm_as_code"]


def _sq(a):
    return onp.sum(a * a, axis=1)


def _d(case):
    return int(onp.prod(case["x"].shape[1:]))


# ---- generic reductions: every loss ----------------------------------------------------------
_LOSSES = "esm ism dsm ncsn ncsn_sampled vp_denoising"  # SSM: see ssm_as_code


@_fault(_LOSSES, "extra 1/d",
        "a mean over the d features where the sum belongs (e.g. torch .mean() on the squared error)")
def _feature_mean(c):
    return c["expected"] / _d(c)


@_fault(_LOSSES, "last-axis-only sum",
        "squared norms summed over the last axis only (x.sum(-1)) on image-shaped input, the rest averaged")
def _last_axis(c):
    return c["expected"] * c["x"].shape[-1] / _d(c)


@_fault("esm dsm ncsn ncsn_sampled", "missing ½", "the ½ of the ½ convention is dropped: ‖·‖² instead of ½‖·‖²")
def _double(c):
    return 2.0 * c["expected"]


# ---- esm ------------------------------------------------------------------------------------
@_fault("esm", "score sign (+∇E)", "the model's score taken as +∇E instead of −∇E")
def _esm_sign(c):
    X = flat(c["x"])
    return 0.5 * _sq(-score_fn(c["model"])(X) - score_fn(c["target"])(X))


# ---- ism ------------------------------------------------------------------------------------
def _ism_parts(c):
    X = flat(c["x"])
    return score_fn(c["model"])(X), onp.trace(score_jacobian(c["model"], X), axis1=1, axis2=2)


@_fault("ism", "missing ½", "‖s‖² + tr ∇s: the ½ dropped on the norm term only")
def _ism_half(c):
    s, tr = _ism_parts(c)
    return _sq(s) + tr


@_fault("ism", "notes' convention (no ½)",
        "‖s‖² + 2 tr ∇s = 2·ISM: the seeds' form without the ½ (seed 003_…, after eq. 11.2)")
def _ism_notes(c):
    return 2.0 * c["expected"]


@_fault("ism", "trace divided by d", "tr ∇s / d: the trace averaged over the diagonal instead of summed")
def _ism_trace_d(c):
    s, tr = _ism_parts(c)
    return 0.5 * _sq(s) + tr / _d(c)


@_fault("ism", "trace sign", "½‖s‖² − tr ∇s: the Hessian of E used where −∇²E = ∇s belongs")
def _ism_trace_sign(c):
    s, tr = _ism_parts(c)
    return 0.5 * _sq(s) - tr


# ---- ssm ------------------------------------------------------------------------------------
def _ssm_parts(c):
    """s (n, d); vᵀ∇s v (M, n); vᵀs (M, n); ‖v‖² (M, n)."""
    X = flat(c["x"])
    V = c["v"].reshape(c["v"].shape[0], X.shape[0], -1)  # (M, n, d)
    s, J = score_fn(c["model"])(X), score_jacobian(c["model"], X)
    return s, onp.einsum("mni,nij,mnj->mn", V, J, V), onp.einsum("mni,ni->mn", V, s), onp.sum(V * V, 2)


def _ssm_value(s, quad, proj, vr, half=0.5, trace_scale=1.0, norm2=None):
    norm2 = 1.0 if norm2 is None else norm2
    second = half * _sq(s) if vr else onp.mean(half * proj**2 / norm2, axis=0)
    return trace_scale * onp.mean(quad / norm2, axis=0) + second


def ssm_as_code(c, rows="all", scale=1.0):
    r"""SSM as code that reduces its dot products with ``rows``, on the case's own probes.

    The code computes per-row projections :math:`p_r = \sum_{k\in r} v_k s_k` (``(v*s).sum(-1)``),
    their gradient :math:`g = \nabla_x \textstyle\sum_r p_r = \nabla s^\top v`, the rows
    :math:`q_r = \sum_{k\in r} v_k g_k`, and averages over rows and probes:

    .. math:: \frac1R\Big[v^\top\nabla s\,v + \tfrac12\sum_r (v_r\cdot s_r)^2\Big]
              \quad(\text{VR: } \tfrac1R[v^\top\nabla s\,v + \tfrac12\|s\|^2])

    ``rows="all"`` (R = 1) is the correct SSM; ``"last"`` sums over the last axis only
    (R = d/C rows of C = shape[-1], TorchEBM's sliced SM on ``(n, R, C)`` input, issue 21 A.1);
    ``scale = 1/d`` turns every sum into a mean (``.mean(-1)``, so :math:`g` shrinks by 1/d too).
    """
    X = flat(c["x"])
    n, d = X.shape
    C = c["x"].shape[-1] if rows == "last" else d
    V = c["v"].reshape(c["v"].shape[0], n, d // C, C)  # (M, n, R, C)
    s, J = score_fn(c["model"])(X), score_jacobian(c["model"], X)
    g = scale * onp.einsum("nij,mni->mnj", J, V.reshape(len(V), n, d)).reshape(V.shape)  # ∇(Σ_r p_r)
    S = s.reshape(n, d // C, C)
    q, p = scale * onp.sum(V * g, -1), scale * onp.sum(V * S, -1)  # (M, n, R)
    second = 0.5 * scale * onp.sum(S * S, -1) if c["variance_reduced"] else 0.5 * p**2
    return onp.mean(q + second, axis=(0, 2))


@_fault("ssm", "last-axis-only sum",
        "dot products (v·s, v·∇(v·s)) summed over the last axis only (.sum(-1)) on image-shaped input, "
        "then averaged over the rows: (1/R)[vᵀ∇s v + ½ Σ_r (v_r·s_r)²] (TorchEBM 0.8.9 sliced SM)")
def _ssm_last_axis(c):
    return ssm_as_code(c, rows="last")


@_fault("ssm", "extra 1/d", "every feature sum a mean (.mean(-1)): v·s/d, and its gradient 1/d too")
def _ssm_feature_mean(c):
    return ssm_as_code(c, scale=1.0 / _d(c))


@_fault("ssm", "missing ½", "(vᵀs)² or ‖s‖² without the ½ of Song et al. (2019), eqs. 7–8")
def _ssm_half(c):
    s, quad, proj, _ = _ssm_parts(c)
    return _ssm_value(s, quad, proj, c["variance_reduced"], half=1.0)


@_fault("ssm", "unit-sphere probes",
        "v/‖v‖ probes have E[vvᵀ] = I/d: the v-terms shrink by 1/d (plain form: ISM/d, same minimiser; "
        "variance-reduced form: only the trace shrinks, the minimiser moves)")
def _ssm_sphere(c):
    s, quad, proj, n2 = _ssm_parts(c)
    return _ssm_value(s, quad, proj, c["variance_reduced"], norm2=n2)


@_fault("ssm", "trace term divided by d", "vᵀ∇s v / d: the Hutchinson trace estimate scaled by 1/d")
def _ssm_trace_d(c):
    s, quad, proj, _ = _ssm_parts(c)
    return _ssm_value(s, quad, proj, c["variance_reduced"], trace_scale=1.0 / _d(c))


@_fault("ssm", "trace sign", "−vᵀ∇s v: the Hessian of E used where ∇s = −∇²E belongs")
def _ssm_trace_sign(c):
    s, quad, proj, _ = _ssm_parts(c)
    return _ssm_value(s, quad, proj, c["variance_reduced"], trace_scale=-1.0)


@_fault("ssm", "sum over projections", "the M projections summed instead of averaged (×M)")
def _ssm_sum(c):
    s, quad, proj, _ = _ssm_parts(c)
    return onp.sum(quad, 0) + (0.5 * _sq(s) * quad.shape[0] if c["variance_reduced"]
                               else onp.sum(0.5 * proj**2, 0))


@_fault("ssm", "variance reduction swapped",
        "½(vᵀs)² and ½‖s‖² exchanged: the other SSM variant than the case asks for")
def _ssm_swap(c):
    s, quad, proj, _ = _ssm_parts(c)
    return _ssm_value(s, quad, proj, not c["variance_reduced"])


# ---- dsm and ncsn ---------------------------------------------------------------------------
def _dsm_per(score, X, z, sigma, target_sign=1.0, power=2, at_clean=False):
    xt = X + sigma * z
    s = score(X if at_clean else xt)
    return 0.5 * _sq(s + target_sign * (xt - X) / sigma**power)


def _dsm_fault(c, **kw):
    s = score_fn(c["model"], c["sigma"])
    return _dsm_per(s, flat(c["x"]), flat(c["z"]), float(c["sigma"]), **kw)


def _ncsn_fault(c, lam=None, **kw):
    ncs, L = noise_conditional_score_fn(c["model"]), len(c["sigmas"])
    lam = lam or ((lambda s: s * s) if c["weighting"] == "sigma2" else (lambda s: 1.0))
    total = 0.0
    for i, sig in enumerate(c["sigmas"]):
        per = _dsm_per(lambda y, sig=sig: ncs(y, sig), flat(c["x"]), flat(c["z"][i]), float(sig), **kw)
        total = total + lam(float(sig)) * per
    return total / L


_SIGN = "the DSM target with the wrong sign: s − (x̃−x)/σ² (TorchEBM #318); the target is −(x̃−x)/σ²"
_SIGMA = "(x̃−x)/σ where (x̃−x)/σ² belongs (score_sde #26)"
_CLEAN = "the score evaluated at the clean x instead of the noisy x̃"


# the same three target faults, in DSM and in each level of NCSN
for _objective, _variant in (("dsm", _dsm_fault), ("ncsn", _ncsn_fault)):
    _fault(_objective, "DSM target sign", _SIGN)(lambda c, f=_variant: f(c, target_sign=-1.0))
    _fault(_objective, "σ for σ²", _SIGMA)(lambda c, f=_variant: f(c, power=1))
    if _objective == "dsm":
        _fault(_objective, "score at clean x", _CLEAN)(lambda c, f=_variant: f(c, at_clean=True))


@_fault("ncsn", "weight σ for σ²", "λ(σ) = σ where λ(σ) = σ² belongs (Song & Ermon 2019, §4.2)")
def _ncsn_lambda_sigma(c):
    return _ncsn_fault(c, lam=lambda s: s) if c["weighting"] == "sigma2" else c["expected"]


@_fault("ncsn", "weighting ignored", "the other weighting than the case's `weighting` field (σ² vs none)")
def _ncsn_weighting(c):
    return _ncsn_fault(c, lam=(lambda s: 1.0) if c["weighting"] == "sigma2" else (lambda s: s * s))


def _ncsn_sampled_fault(c, lam=None, **kw):
    """One level per example (``level_index``), as training code draws it."""
    sig = onp.asarray(c["sigmas"], dtype=float)[onp.asarray(c["level_index"], dtype=int)]  # (n,)
    lam = lam or ((lambda s: s * s) if c["weighting"] == "sigma2" else (lambda s: 1.0 + 0.0 * s))
    ncs = noise_conditional_score_fn(c["model"])
    col = sig[:, None]
    return lam(sig) * _dsm_per(lambda y: ncs(y, sig), flat(c["x"]), flat(c["z"]), col, **kw)


_fault("ncsn_sampled", "DSM target sign", _SIGN)(lambda c: _ncsn_sampled_fault(c, target_sign=-1.0))
_fault("ncsn_sampled", "σ for σ²", _SIGMA)(lambda c: _ncsn_sampled_fault(c, power=1))


@_fault("ncsn_sampled", "weight σ for σ²", "λ(σ) = σ where λ(σ) = σ² belongs (Song & Ermon 2019, §4.2)")
def _ncsns_lambda_sigma(c):
    return _ncsn_sampled_fault(c, lam=lambda s: s) if c["weighting"] == "sigma2" else c["expected"]


@_fault("ncsn_sampled", "averaged over levels (1/L)",
        "λ(σ_k)ℓ_k/L: the 1/L of the all-levels average kept although each example has one level")
def _ncsns_over_L(c):
    return c["expected"] / len(c["sigmas"])


@_fault("ncsn", "sum over levels", "the L levels summed instead of averaged (×L)")
def _ncsn_sum(c):
    return len(c["sigmas"]) * c["expected"]


# ---- vp_denoising (seed 003_…, eq. 11.16) -----------------------------------------------------
def _vp_fault(c, score_coef=None, score_sign=1.0, a_on_x=True):
    X, eps, b = flat(c["x"]), flat(c["eps"]), float(c["beta"])
    a = math.sqrt(1.0 - b)
    xp = a * X + math.sqrt(b) * eps
    s = noise_conditional_score_fn(c["model"])(xp, b)
    coef = b if score_coef is None else score_coef
    return _sq(xp + score_sign * coef * s - (a * X if a_on_x else X))


@_fault("vp_denoising", "added ½", "½ put in front of eq. 11.16, which has none (the notes' form is kept)")
def _vp_half(c):
    return 0.5 * c["expected"]


@_fault("vp_denoising", "score-term sign", "x' − βS − √(1−β)x: the score term with the wrong sign")
def _vp_sign(c):
    return _vp_fault(c, score_sign=-1.0)


@_fault("vp_denoising", "√β for β", "x' + √β S − √(1−β)x: the noise std where the variance β belongs")
def _vp_sqrt(c):
    return _vp_fault(c, score_coef=math.sqrt(float(c["beta"])))


@_fault("vp_denoising", "missing √(1−β)", "x' + βS − x: the clean point not scaled by √(1−β) (eq. 11.5)")
def _vp_scale(c):
    return _vp_fault(c, a_on_x=False)


# ---- map objectives: the faulty mapped points (n, d) --------------------------------------------
def _level_score(c, level):
    return score_fn(c["model"], level)(flat(c["x"]))


@_fault("tweedie", "σ for σ²", "y + σ s(y) where Tweedie's formula has y + σ² s(y) (Efron 2011, eq. 2.8)")
def _tw_sigma(c):
    return flat(c["x"]) + c["sigma"] * _level_score(c, c["sigma"])


@_fault("tweedie", "score sign", "y − σ² s(y): the energy gradient +∇E used as the score")
def _tw_sign(c):
    return flat(c["x"]) - c["sigma"] ** 2 * _level_score(c, c["sigma"])


@_fault("tweedie_vp", "missing 1/√(1−β)", "y + β s(y) without the division: that is √(1−β)·E[x|y] (eq. 11.13)")
def _twvp_div(c):
    return flat(c["x"]) + c["beta"] * _level_score(c, c["beta"])


@_fault("tweedie_vp", "1/(1−β) for 1/√(1−β)", "(y + β s)/(1−β): the variance where its square root belongs")
def _twvp_var(c):
    return (flat(c["x"]) + c["beta"] * _level_score(c, c["beta"])) / (1.0 - c["beta"])


@_fault("tweedie_vp", "√β for β", "(y + √β s)/√(1−β): the noise std where the variance β belongs")
def _twvp_sqrt(c):
    return (flat(c["x"]) + math.sqrt(c["beta"]) * _level_score(c, c["beta"])) / math.sqrt(1.0 - c["beta"])


@_fault("tweedie_vp", "score sign", "(y − β s)/√(1−β): the energy gradient +∇E used as the score")
def _twvp_sign(c):
    return (flat(c["x"]) - c["beta"] * _level_score(c, c["beta"])) / math.sqrt(1.0 - c["beta"])


def _step(c, drift=1.0, noise_var=None, noise_std=None):
    X, h = flat(c["x"]), float(c["h"])
    std = noise_std if noise_std is not None else math.sqrt(2 * h if noise_var is None else noise_var)
    return X + drift * h * score_fn(c["model"])(X) + std * flat(c["z"])


@_fault("langevin_step", "NCSN α read as h",
        "x + (h/2)s + √h z: NCSN Algorithm 1's α taken for our h (their α is our 2h)")
def _ls_alpha(c):
    return _step(c, drift=0.5, noise_var=float(c["h"]))


@_fault("langevin_step", "noise √h", "x + h s + √h z: the noise variance h where 2h belongs")
def _ls_sqrt_h(c):
    return _step(c, noise_var=float(c["h"]))


@_fault("langevin_step", "variance as std", "x + h s + 2h z: the noise variance 2h used as its std")
def _ls_var(c):
    return _step(c, noise_std=2.0 * float(c["h"]))


@_fault("langevin_step", "drift sign (+∇E)", "x − h s + √(2h) z: a step up the energy")
def _ls_sign(c):
    return _step(c, drift=-1.0)


# ---- mala_log_ratio --------------------------------------------------------------------------
def _mala_ratio(c, p_sign=1.0, q_sign=1.0, q_scale=1.0, reverse_score_at="y", denom=4.0):
    r"""A MALA log ratio with one thing changed: the correct one is
    :math:`\log p(y)-\log p(x)+\log q(x|y)-\log q(y|x)`, :math:`\log q(a|b)=-\|a-b-hs(b)\|^2/(4h)`."""
    X, Y, h = flat(c["x"]), flat(c["y"]), float(c["h"])
    s, lp = score_fn(c["model"]), log_prob_fn(c["model"])
    s_rev = s(Y) if reverse_score_at == "y" else s(X)
    log_q = lambda to, frm, s_frm: -_sq(to - frm - h * s_frm) / (denom * h)
    return p_sign * (lp(Y) - lp(X)) + q_sign * q_scale * (log_q(X, Y, s_rev) - log_q(Y, X, s(X)))


def _mala_fault(name, explanation, **change):
    _fault("mala_log_ratio", name, explanation)(lambda c: _mala_ratio(c, **change))


_mala_fault("swapped proposal densities", "log q(y|x) − log q(x|y) where log q(x|y) − log q(y|x) belongs "
            "(blackjax #653): breaks detailed balance", q_sign=-1.0)
_mala_fault("no MH correction", "log p(y) − log p(x) only: a \"MALA\" without the proposal densities "
            "(Metropolis, not MALA)", q_scale=0.0)
_mala_fault("reverse density with s(x)", "q(x|y) built with the score at x instead of at y: the proposal "
            "treated as symmetric", reverse_score_at="x")
_mala_fault("proposal variance h", "log q = −‖y−x−hs‖²/(2h): variance h where 2h belongs", denom=2.0)
_mala_fault("energy for log-density", "E(y) − E(x) where log p(y) − log p(x) = −(E(y) − E(x))", p_sign=-1.0)
_fault("mala_log_ratio", "last-axis-only sum", "‖·‖² in log q summed over the last axis only (x.sum(-1)) on "
       "image-shaped input, the rest averaged")(lambda c: _mala_ratio(c, q_scale=c["x"].shape[-1] / _d(c)))
