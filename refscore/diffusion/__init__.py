r"""The diffusion half of the lecture, as numbered formulas: the DDPM schedule and posterior
(:mod:`.ddpm`), conversions between parametrisations (:mod:`.parametrisation`), EDM's
preconditioning and schedule (:mod:`.edm`), one step of each sampler with explicit noise
(:mod:`.steps`, built on the moves of :mod:`.moves`), the forward processes' marginals and
discretisations (:mod:`.processes`), and likelihoods in bits per dimension (:mod:`.likelihood`).
The SDE classes are :mod:`refscore.sde` (VE, VP, sub-VP), which call these formulas: this package
sits below :mod:`refscore.sde`, :mod:`refscore.samplers` and :mod:`refscore.models` and imports none
of them; functions that need an SDE take it duck-typed. Every function takes its arrays' backend
(:func:`per_example` is the one per-example coefficient helper). The PF-ODE bits/dim of a model is
:func:`refscore.sde.flow_bits_per_dim` (it runs the SDE solver).

.. math:: x_t = \alpha_t x_0 + \sigma_t\varepsilon,\qquad s(x_t) = -\varepsilon/\sigma_t
          \quad(\text{Song et al. 2021, Appendix B; Ho et al. 2020, eq. 4})

These are the reference values of the diffusion conformance objectives (``docs/conformance.md``).
"""
from .._deprecation import warn_moved
from .ddpm import (alphas_cumprod, ancestral_step, fixed_large_log_variance, posterior_coefficients,
                   posterior_log_variance_clipped, q_sample)
from .edm import (ancestral_sigmas, edm_coefficients, edm_denoiser, karras_sigmas, loss_weight, preconditioning,
                  score_loss_weight)
from .likelihood import (bits_per_dim, dequantise, gaussian_flow_log_likelihood, likelihood_summary,
                         noise_conditional_score, perturbed_bits_floor)
from .moves import corrector_step_size, langevin_move, reverse_diffusion_step
from .parametrisation import (denoiser_derivative, per_example, score_from_denoiser, score_from_eps, v_from_eps,
                              x0_from_score)
from .processes import (subvp_marginal_coeffs, ve_discretize, ve_marginal_coeffs, vp_discretize,
                        vp_marginal_coeffs)
from .steps import (annealed_langevin_step, annealed_step_sizes, langevin_corrector_step, likelihood_weighting,
                    ode_velocity, reverse_sde_step, tweedie_denoise_ve)

__all__ = ["alphas_cumprod", "q_sample", "posterior_coefficients", "posterior_log_variance_clipped",
           "fixed_large_log_variance", "ancestral_step", "score_from_eps", "x0_from_score", "v_from_eps",
           "score_from_denoiser", "denoiser_derivative", "preconditioning", "loss_weight", "karras_sigmas",
           "ancestral_sigmas", "reverse_sde_step", "ode_velocity", "langevin_corrector_step",
           "annealed_step_sizes", "annealed_langevin_step", "tweedie_denoise_ve", "likelihood_weighting",
           "bits_per_dim", "gaussian_flow_log_likelihood", "dequantise", "noise_conditional_score",
           "perturbed_bits_floor", "likelihood_summary", "per_example", "edm_coefficients", "edm_denoiser",
           "score_loss_weight", "langevin_move", "corrector_step_size", "reverse_diffusion_step",
           "ve_marginal_coeffs", "vp_marginal_coeffs", "subvp_marginal_coeffs", "ve_discretize", "vp_discretize"]


def __getattr__(name):
    """``flow_bits_per_dim`` moved to :mod:`refscore.sde` (it integrates an SDE's probability-flow
    ODE, and ``diffusion`` sits below ``sde``): the old path warns and serves the same function,
    imported by name at first use so that ``diffusion`` still imports nothing from ``sde``."""
    if name != "flow_bits_per_dim":
        raise AttributeError(f"module 'refscore.diffusion' has no attribute {name!r}")
    import importlib

    warn_moved("refscore.diffusion.flow_bits_per_dim", "refscore.sde.flow_bits_per_dim")
    return importlib.import_module("refscore.sde").flow_bits_per_dim
