r"""The diffusion half's conformance cases: deterministic inputs, explicit noise, refscore's values.

Every case is a ``dict`` like the score-matching ones (:mod:`.cases`): ``name``, ``objective``,
its inputs, and ``expected`` — ``(n,)``, or ``(n, k)`` when an objective returns k numbers per
example (the columns are listed in :data:`COLUMNS`) — computed by :mod:`refscore.diffusion` and
:mod:`refscore.sde` (:mod:`.reference_diffusion`). Map objectives (a step, a conversion) carry
points ``x`` of shape ``(n, *shape)`` (flat or image-shaped) and ``expected_x``; schedule
objectives carry their per-example times or levels instead. An SDE is a dict:
``{"kind": "ve", "sigma_min", "sigma_max"}`` or ``{"kind": "vp" | "subvp", "beta_min", "beta_max"}``.

.. math:: \texttt{expected}_i = F(\text{inputs}_i),\qquad F \text{ from refscore.diffusion (float64)}
"""
from __future__ import annotations

import numpy as onp

__all__ = ["DIFFUSION_OBJECTIVES", "DIFFUSION_SPECS", "COLUMNS", "diffusion_fields", "SDES"]

SDES = {"ve": {"kind": "ve", "sigma_min": 0.01, "sigma_max": 50.0},
        "vp": {"kind": "vp", "beta_min": 0.1, "beta_max": 20.0},
        "subvp": {"kind": "subvp", "beta_min": 0.1, "beta_max": 20.0}}
BETAS = onp.linspace(0.02, 0.3, 8)  # a short DDPM schedule: every step visibly different

# objective -> the names of the k columns of `expected`, for the (n, k) objectives
COLUMNS = {"sde_marginal": ("mean coefficient", "std"),
           "ddpm_posterior": ("coef x0", "coef x_t", "variance β̃"),
           "ddpm_log_variance": ("posterior log-variance (clipped)", "fixed-large log-variance"),
           "edm_precond": ("c_skip", "c_out", "c_in", "c_noise"),
           "ancestral_sigmas": ("sigma_down", "sigma_up")}

# (objective, variant tag, shape key or None, options)
DIFFUSION_SPECS = [
    ("sde_marginal", "ve", None, {"sde": "ve"}), ("sde_marginal", "vp", None, {"sde": "vp"}),
    ("sde_marginal", "subvp", None, {"sde": "subvp"}),
    ("ddpm_marginal", "", "flat", {}), ("ddpm_marginal", "", "img", {}),
    ("ddpm_posterior", "", None, {}), ("ddpm_log_variance", "", None, {}),
    ("ddpm_ancestral_step", "small", "flat", {"variance": "small"}),
    ("ddpm_ancestral_step", "large", "img", {"variance": "large"}),
    ("score_from_eps", "", "flat", {}), ("score_from_eps", "", "img", {}),
    ("x0_from_score", "", "flat", {}), ("x0_from_score", "", "chw", {}),
    ("v_target", "", "flat", {}), ("v_target", "", "img", {}),
    ("edm_score", "", "flat", {}), ("edm_score", "", "img", {}),
    ("edm_to_d", "", "flat", {}), ("edm_to_d", "", "chw", {}),
    ("likelihood_weighting", "ve", None, {"sde": "ve"}), ("likelihood_weighting", "vp", None, {"sde": "vp"}),
    ("likelihood_weighting", "subvp", None, {"sde": "subvp"}),
    ("edm_loss_weight", "sd0.5", None, {"sigma_data": 0.5}), ("edm_loss_weight", "sd1", None, {"sigma_data": 1.0}),
    ("edm_precond", "sd0.5", None, {"sigma_data": 0.5}), ("edm_precond", "sd1", None, {"sigma_data": 1.0}),
    ("edm_schedule", "rho7", None, {"N": 6, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0}),
    ("edm_schedule", "rho3", None, {"N": 5, "sigma_min": 0.01, "sigma_max": 10.0, "rho": 3.0}),
    ("ancestral_sigmas", "eta1", None, {"eta": 1.0}), ("ancestral_sigmas", "eta0.5", None, {"eta": 0.5}),
    ("reverse_sde_step", "ve", "flat", {"sde": "ve"}), ("reverse_sde_step", "vp", "img", {"sde": "vp"}),
    ("reverse_sde_step", "subvp", "chw", {"sde": "subvp"}),
    ("pf_ode_drift", "ve", "img", {"sde": "ve"}), ("pf_ode_drift", "vp", "flat", {"sde": "vp"}),
    ("pc_corrector_step", "ve", "flat", {"alpha": 1.0}), ("pc_corrector_step", "vp", "img", {"alpha": 0.93}),
    ("annealed_langevin_step", "", "flat", {}), ("annealed_langevin_step", "", "chw", {}),
    ("final_denoise", "", "flat", {}), ("final_denoise", "", "img", {}),
    ("bits_per_dim", "01", "img", {"scale": 1.0}), ("bits_per_dim", "pm1", "chw", {"scale": 2.0}),
    ("pf_ode_log_likelihood", "vp", "flat", {"sde": "vp", "t_min": 0.05}),
    ("pf_ode_log_likelihood", "ve", "img", {"sde": {"kind": "ve", "sigma_min": 0.1, "sigma_max": 10.0},
                                            "t_min": 0.1}),
]
DIFFUSION_OBJECTIVES = tuple(dict.fromkeys(s[0] for s in DIFFUSION_SPECS))


def _sde(opts):
    return dict(SDES[opts["sde"]]) if isinstance(opts["sde"], str) else dict(opts["sde"])


def _vp_pair(rng, n):
    alpha = rng.uniform(0.2, 0.99, n)
    return alpha, onp.sqrt(1.0 - alpha**2)


def _schedules(objective, opts, n, rng):
    """Fields of the objectives without points: times, levels, schedules."""
    if objective in ("sde_marginal", "likelihood_weighting"):
        return {"sde": _sde(opts), "t": rng.uniform(0.05, 1.0, n)}
    if objective in ("ddpm_posterior", "ddpm_log_variance"):
        first = 1 if objective == "ddpm_posterior" else 0
        t = onp.concatenate([[first], rng.integers(first, len(BETAS), n - 1)])
        return {"betas": BETAS.copy(), "t": t.astype(onp.int64)}
    if objective in ("edm_loss_weight", "edm_precond"):
        return {"sigma": onp.exp(rng.uniform(onp.log(0.002), onp.log(80.0), n)), "sigma_data": opts["sigma_data"]}
    if objective == "edm_schedule":
        return {"i": onp.arange(opts["N"], dtype=onp.int64), **opts}
    f = rng.uniform(0.5, 10.0, n)
    return {"sigma_from": f, "sigma_to": f * rng.uniform(0.1, 0.9, n), "eta": opts["eta"]}  # ancestral_sigmas


def _with_points(objective, opts, n, shape, rng):
    """Fields of the objectives on points x (n, *shape); every random input is explicit."""
    draw = lambda: rng.standard_normal((n, *shape))  # noqa: E731
    x = draw()
    if objective in ("ddpm_marginal", "ddpm_ancestral_step"):
        t = onp.concatenate([[0], rng.integers(0, len(BETAS), n - 1)]).astype(onp.int64)
        f = {"x": x, "betas": BETAS.copy(), "t": t}
        return {**f, "eps": draw()} if objective == "ddpm_marginal" else {
            **f, "eps_pred": draw(), "z": draw(), "variance": opts["variance"]}
    if objective == "score_from_eps":
        return {"x": x, "eps": draw(), "sigma": rng.uniform(0.1, 2.0, n)}
    if objective in ("x0_from_score", "v_target"):
        alpha, sigma = _vp_pair(rng, n)
        other = {"score": draw()} if objective == "x0_from_score" else {"eps": draw()}
        return {"x": x, **other, "alpha": alpha, "sigma": sigma}
    if objective in ("edm_score", "edm_to_d"):
        return {"x": x, "denoised": 0.5 * draw(), "sigma": rng.uniform(0.05, 5.0, n)}
    if objective in ("reverse_sde_step", "pf_ode_drift"):
        f = {"x": x, "sde": _sde(opts), "t": rng.uniform(0.05, 1.0, n), "score": draw()}
        return {**f, "dt": 0.01, "z": draw()} if objective == "reverse_sde_step" else f
    if objective == "pc_corrector_step":
        return {"x": x, "score": draw(), "z": draw(), "snr": 0.16, "alpha": opts["alpha"]}
    if objective == "annealed_langevin_step":
        return {"x": x, "score": draw(), "z": draw(), "sigmas": onp.array([1.0, 0.5, 0.25, 0.1]),
                "level": rng.integers(0, 4, n).astype(onp.int64), "eps": 0.01}
    if objective == "final_denoise":
        return {"x": x, "score": draw(), "z": draw(), "sigma": rng.uniform(0.01, 0.5, n)}
    if objective == "bits_per_dim":
        return {"x": x, "log_p": rng.uniform(-3.0, 1.0, n) * x[0].size, "scale": opts["scale"]}
    from .models import spd  # pf_ode_log_likelihood: Gaussian data, exact score and prior
    d = x[0].size
    model = {"kind": "gaussian_family", "mean": rng.standard_normal(d), "cov": spd(d, rng, 0.3, 1.5)}
    return {"x": x, "model": model, "sde": _sde(opts), "t_min": opts["t_min"], "v": draw()}


def diffusion_fields(objective, opts, n, shape, rng):
    r"""The inputs of one diffusion case (without ``name``/``objective``/``expected``).

    .. math:: \text{inputs} \sim \text{rng} = \texttt{default\_rng}(\mathrm{crc32}(\text{name}))
    """
    if shape is None:
        return _schedules(objective, opts, n, rng)
    return _with_points(objective, opts, n, shape, rng)
