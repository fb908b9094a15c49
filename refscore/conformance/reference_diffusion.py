r"""The reference values of the diffusion objectives, computed by :mod:`refscore.diffusion` and
:mod:`refscore.sde` (each function takes a case and returns ``expected``, or the mapped points).

.. math::
   \texttt{sde\_marginal} &: (a(t), s(t)),\ x_t = a x_0 + s z \ \text{(VE: } s=\sqrt{\sigma(t)^2-\sigma_\min^2}) \\
   \texttt{ddpm\_marginal} &: \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\varepsilon,\qquad
   \texttt{ddpm\_posterior}: \big(\tfrac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t},
      \tfrac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}, \tilde\beta_t\big) \\
   \texttt{bits\_per\_dim} &: -\log p/(D\ln2) + 8 - \log_2 a,\qquad
   \texttt{pf\_ode\_log\_likelihood}: \log p_\varepsilon(x)

and the others as in :mod:`refscore.diffusion` (sources there and in ``docs/conformance.md``).
"""
from __future__ import annotations

import numpy as onp

from .. import diffusion as D
from ..sde import VESDE, VPSDE, SubVPSDE

__all__ = ["DIFFUSION_REFERENCE", "DIFFUSION_MAPS", "make_sde"]

DIFFUSION_MAPS = ("ddpm_marginal", "ddpm_ancestral_step", "score_from_eps", "x0_from_score", "v_target",
                  "edm_score", "edm_to_d", "reverse_sde_step", "pf_ode_drift", "pc_corrector_step",
                  "annealed_langevin_step", "final_denoise")


def make_sde(spec):
    r"""The :class:`refscore.sde.SDE` of a case's ``sde`` dict.

    .. math:: \text{ve: } \sigma(t)=\sigma_\min(\sigma_\max/\sigma_\min)^t;\quad
              \text{vp, subvp: } \beta(t)=\beta_\min+t(\beta_\max-\beta_\min)
    """
    kind = spec["kind"]
    if kind == "ve":
        return VESDE(spec["sigma_min"], spec["sigma_max"])
    if kind in ("vp", "subvp"):
        return (VPSDE if kind == "vp" else SubVPSDE)(spec["beta_min"], spec["beta_max"])
    raise ValueError(f"sde kind must be 've', 'vp' or 'subvp', got {kind!r}")


def _marginal(c):
    a, s = make_sde(c["sde"]).marginal_coeffs(onp.asarray(c["t"], dtype=float))
    return onp.stack([a + 0.0 * s, s], axis=1)


def _log_variance(c):
    return onp.stack([D.posterior_log_variance_clipped(c["betas"], c["t"]),
                      D.fixed_large_log_variance(c["betas"], c["t"])], axis=1)


def _loglik(c):
    m = c["model"]
    return D.gaussian_flow_log_likelihood(m["mean"], m["cov"], make_sde(c["sde"]), c["x"], c["t_min"])


def _t(c):
    return onp.asarray(c["t"], dtype=float)


DIFFUSION_REFERENCE = {
    "sde_marginal": _marginal,
    "ddpm_marginal": lambda c: D.q_sample(c["x"], c["t"], c["eps"], c["betas"]),
    "ddpm_posterior": lambda c: onp.stack(D.posterior_coefficients(c["betas"], c["t"]), axis=1),
    "ddpm_log_variance": _log_variance,
    "ddpm_ancestral_step": lambda c: D.ancestral_step(c["x"], c["t"], c["eps_pred"], c["z"], c["betas"],
                                                      c["variance"]),
    "score_from_eps": lambda c: D.score_from_eps(c["eps"], c["sigma"]),
    "x0_from_score": lambda c: D.x0_from_score(c["x"], c["score"], c["alpha"], c["sigma"]),
    "v_target": lambda c: D.v_from_eps(c["x"], c["eps"], c["alpha"], c["sigma"]),
    "edm_score": lambda c: D.score_from_denoiser(c["x"], c["denoised"], c["sigma"]),
    "edm_to_d": lambda c: D.denoiser_derivative(c["x"], c["denoised"], c["sigma"]),
    "likelihood_weighting": lambda c: D.likelihood_weighting(make_sde(c["sde"]), _t(c)),
    "edm_loss_weight": lambda c: D.loss_weight(c["sigma"], c["sigma_data"]),
    "edm_precond": lambda c: onp.stack(D.preconditioning(c["sigma"], c["sigma_data"]), axis=1),
    "edm_schedule": lambda c: D.karras_sigmas(c["i"], c["N"], c["sigma_min"], c["sigma_max"], c["rho"]),
    "ancestral_sigmas": lambda c: onp.stack(D.ancestral_sigmas(c["sigma_from"], c["sigma_to"], c["eta"]), axis=1),
    "reverse_sde_step": lambda c: D.reverse_sde_step(make_sde(c["sde"]), c["x"], _t(c), c["dt"], c["score"], c["z"]),
    "pf_ode_drift": lambda c: D.ode_velocity(make_sde(c["sde"]), c["x"], _t(c), c["score"]),
    "pc_corrector_step": lambda c: D.langevin_corrector_step(c["x"], c["score"], c["z"], c["snr"], c["alpha"]),
    "annealed_langevin_step": lambda c: D.annealed_langevin_step(c["x"], c["score"], c["z"], c["sigmas"],
                                                                 c["level"], c["eps"]),
    "final_denoise": lambda c: D.tweedie_denoise_ve(c["x"], c["score"], c["sigma"]),
    "bits_per_dim": lambda c: D.bits_per_dim(c["log_p"], c["x"][0].size, c["scale"]),
    "pf_ode_log_likelihood": _loglik,
}
