"""Issue 34: every public entry point of refscore.diffusion and refscore.sde answers bad input with a
ValueError/TypeError naming the argument, the value and the rule -- never a silent wrong answer: steps and
times (t = -1 wrapping, t = 2.7 truncating, t = T), signs and ranges (a negative sigma, eta, snr or dim,
a zero sigma, an increasing ladder), shapes (a (1, d) noise broadcast, mismatched t/sigma/eps, lists)."""
import math

import numpy as np
import pytest
from autograd import grad

from refscore import backends
from refscore import diffusion as D
from refscore.backends.strict_backend import count_syncs
from refscore.sde import VESDE, VPSDE, SubVPSDE, flow_bits_per_dim, log_likelihood

BETAS = np.linspace(1e-3, 0.2, 7)  # T = 7: valid steps 0..6
RNG = np.random.default_rng(0)
X, Z, S = (RNG.normal(size=(4, 3)) for _ in range(3))
ROW = Z[:1]  # a (1, d) noise or score: broadcast to every row if let through
SIG = np.array([0.5, 1.0, 2.0, 3.0])
LADDER = [3.0, 1.0, 0.2]
VP = VPSDE()


def _raises(kind, call, *words):
    with pytest.raises(kind) as e:
        call()
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    return str(e.value)


# ----- indices and times: integer-valued, in [0, T-1], named with the value and the rule ---------------------
STEP_CASES = {
    "q_sample t=-1 (wrapped to the last step)": (lambda: D.q_sample(X, -1, Z, BETAS), "t", "-1", "[0, 6]"),
    "q_sample t=T (a bare IndexError)": (lambda: D.q_sample(X, 7, Z, BETAS), "t", "7", "[0, 6]"),
    "q_sample t=2.7 (truncated)": (lambda: D.q_sample(X, 2.7, Z, BETAS), "t", "2.7", "integer"),
    "q_sample per-example t": (lambda: D.q_sample(X, np.array([0, 1, -1, 2]), Z, BETAS), "t", "-1", "index 2"),
    "q_sample float steps": (lambda: D.q_sample(X, np.array([0.0, 1.5, 2.0, 3.0]), Z, BETAS), "t", "1.5", "index 1"),
    "posterior_coefficients t=-1": (lambda: D.posterior_coefficients(BETAS, -1), "t", "-1", "[0, 6]"),
    "posterior_coefficients t=T": (lambda: D.posterior_coefficients(BETAS, np.array([3, 7])), "t", "7", "index 1"),
    "posterior_log_variance_clipped t=-1": (lambda: D.posterior_log_variance_clipped(BETAS, -1), "t", "-1"),
    "fixed_large_log_variance t=2.7": (lambda: D.fixed_large_log_variance(BETAS, 2.7), "t", "2.7"),
    "ancestral_step t=-1": (lambda: D.ancestral_step(X, -1, S, Z, BETAS), "t", "-1", "[0, 6]"),
    "annealed level -1": (lambda: D.annealed_langevin_step(X, S, Z, LADDER, -1, 0.01), "level", "-1", "[0, 2]"),
    "annealed level 3 = L": (lambda: D.annealed_langevin_step(X, S, Z, LADDER, 3, 0.01), "level", "3", "[0, 2]"),
    "karras N=2.5": (lambda: D.karras_sigmas(np.arange(2), 2.5, 0.01, 10.0), "n", "2.5", "integer"),
    "karras i=N": (lambda: D.karras_sigmas(np.arange(6), 5, 0.01, 10.0), "i", "5", "[0, 4]"),
    "bits_per_dim levels=2.5": (lambda: D.bits_per_dim(np.zeros(2), 4, levels=2.5), "levels", "2.5"),
}


@pytest.mark.parametrize("name", sorted(STEP_CASES))
def test_steps_must_be_integers_in_range(name):
    call, *words = STEP_CASES[name]
    _raises(ValueError, call, *words)


@pytest.mark.parametrize("t", [True, "3", None])
def test_a_step_that_is_not_a_number_is_a_type_error(t):
    _raises(TypeError, lambda: D.q_sample(X, t, Z, BETAS), "t", repr(t))


def test_integer_valued_steps_are_accepted_and_the_ends_are_valid():
    # 3.0 is step 3 (a documented correct result); t = 0 and t = T-1 are the two ends of the schedule
    ab = np.cumprod(1 - BETAS)
    for t in (0, 6):
        want = math.sqrt(ab[t]) * X + math.sqrt(1 - ab[t]) * Z
        np.testing.assert_allclose(D.q_sample(X, float(t), Z, BETAS), want, rtol=1e-14)
        np.testing.assert_allclose(D.q_sample(X, np.full(4, t), Z, BETAS), want, rtol=1e-14)
    np.testing.assert_array_equal(D.karras_sigmas([0.0, 4.0], 5.0, 0.01, 10.0), D.karras_sigmas([0, 4], 5, 0.01, 10.0))
    assert D.karras_sigmas(np.array([0, 4]), 5, 0.01, 10.0) == pytest.approx([10.0, 0.01], rel=1e-12)


def test_device_steps_are_not_read_and_out_of_range_gives_nan_never_another_step():
    bk = backends.get("strict")
    x, z = bk.asarray(X), bk.asarray(Z)
    with count_syncs() as c:
        out = D.q_sample(x, bk.asarray([0, 7, -1, 6]), z, BETAS)
    assert c.syncs == 0, c.sites
    got = bk.to_numpy(out)
    assert np.isnan(got[1]).all() and np.isnan(got[2]).all()
    np.testing.assert_allclose(got[[0, 3]], D.q_sample(X[[0, 3]], np.array([0, 6]), Z[[0, 3]], BETAS), rtol=1e-14)
    _raises(TypeError, lambda: D.q_sample(x, bk.asarray([0.0, 1.0, 2.0, 3.0]), z, BETAS), "t", "integer dtype")


# ----- signs and ranges ---------------------------------------------------------------------------------------
SIGN_CASES = {
    "score_from_eps sigma<0 (flips the score)": (lambda: D.score_from_eps(Z, -0.5), "sigma", "-0.5", "positive"),
    "score_from_eps sigma=0 (inf)": (lambda: D.score_from_eps(Z, 0.0), "sigma", "0.0", "positive"),
    "score_from_eps per-example sigma": (lambda: D.score_from_eps(Z, np.array([1.0, 2.0, -1.0, 3.0])), "sigma",
                                         "-1.0", "index 2"),
    "x0_from_score alpha=0": (lambda: D.x0_from_score(X, S, 0.0, 0.5), "alpha", "0.0", "positive"),
    "x0_from_score sigma<0": (lambda: D.x0_from_score(X, S, 1.0, -0.5), "sigma", "-0.5", "non-negative"),
    "v_from_eps alpha<0": (lambda: D.v_from_eps(X, Z, -0.6, 0.8), "alpha", "-0.6"),
    "score_from_denoiser sigma=0": (lambda: D.score_from_denoiser(X, S, 0.0), "sigma", "0.0"),
    "denoiser_derivative sigma<0": (lambda: D.denoiser_derivative(X, S, -2.0), "sigma", "-2.0"),
    "tweedie_denoise_ve sigma<0": (lambda: D.tweedie_denoise_ve(X, S, -1.0), "sigma", "-1.0"),
    "preconditioning sigma<0": (lambda: D.preconditioning(np.array([0.5, -1.0])), "sigma", "-1.0", "index 1"),
    "loss_weight sigma_data=0": (lambda: D.loss_weight(1.0, 0.0), "sigma_data", "0.0"),
    "edm_denoiser sigma_data<0": (lambda: D.edm_denoiser(lambda u, ls: u, X, 1.0, -0.5), "sigma_data", "-0.5"),
    "score_loss_weight sigma<0": (lambda: D.score_loss_weight(-1.0, 0.5), "sigma", "-1.0"),
    "ancestral_sigmas eta=-1 (a negative sigma_up)": (lambda: D.ancestral_sigmas(2.0, 1.0, -1.0), "eta", "-1.0"),
    "ancestral_sigmas sigma_to > sigma_from": (lambda: D.ancestral_sigmas(np.array([2.0, 1.0]), np.array([1.0, 1.5])),
                                               "sigma_to", "1.5", "sigma_from=1.0", "index 1"),
    "karras sigma_min > sigma_max (an increasing ladder)": (lambda: D.karras_sigmas([0, 1], 2, 10.0, 0.01),
                                                            "sigma_min", "sigma_max", "10.0"),
    "karras rho=0": (lambda: D.karras_sigmas([0, 1], 2, 0.01, 10.0, rho=0.0), "rho", "0.0"),
    "karras rho<0": (lambda: D.karras_sigmas([0, 1], 2, 0.01, 10.0, rho=-7.0), "rho", "-7.0"),
    "corrector snr<0 (the positive answer)": (lambda: D.corrector_step_size(S, Z, -0.16), "snr", "-0.16"),
    "langevin_corrector_step snr<0": (lambda: D.langevin_corrector_step(X, S, Z, -0.16), "snr", "-0.16"),
    "time_of_level sigma<0 (the positive answer)": (lambda: VP.time_of_level(-1.0), "sigma", "-1.0"),
    "bits_per_dim dim<0": (lambda: D.bits_per_dim(np.zeros(2), -3), "dim", "-3"),
    "bits_per_dim dim=0 (inf)": (lambda: D.bits_per_dim(np.zeros(2), 0), "dim", "0"),
    "perturbed_bits_floor sigma=0": (lambda: D.perturbed_bits_floor(0.0), "sigma", "0.0"),
    "betas outside (0, 1)": (lambda: D.alphas_cumprod([0.1, 1.5]), "betas", "1.5", "index 1"),
    "annealed sigmas increasing (precondition)": (lambda: D.annealed_step_sizes([1.0, 2.0], 0.1), "sigmas",
                                                  "strictly decreasing", "[1.0, 2.0]"),
    "annealed step eps<0": (lambda: D.annealed_langevin_step(X, S, Z, LADDER, 0, -0.01), "step_size", "-0.01"),
    "langevin_move h<0": (lambda: D.langevin_move(X, S, -0.1, Z), "h", "-0.1"),
    "reverse_diffusion_step g2<0": (lambda: D.reverse_diffusion_step(X, S, 0.0, -1.0, Z), "g2", "-1.0"),
    "reverse_sde_step dt<0": (lambda: D.reverse_sde_step(VP, X, 0.5, -0.01, S, Z), "dt", "-0.01"),
    "ve_discretize sigma below sigma_prev": (lambda: D.ve_discretize(X, 1.0, 2.0), "sigma_prev", "-3.0"),
    "vp_discretize beta > 1": (lambda: D.vp_discretize(X, 1.5), "beta", "1.5"),
    "VESDE.discretize backwards": (lambda: VESDE().discretize(X, 0.3, 0.5), "sigma >= sigma_prev"),
    "VPSDE.discretize backwards": (lambda: VP.discretize(X, 0.3, 0.5), "t must not precede t_prev"),
    "SubVPSDE.discretize backwards": (lambda: SubVPSDE().discretize(X, 0.3, 0.5), "t >= t_prev", "-0.2"),
    "vp_marginal_coeffs B<0": (lambda: D.vp_marginal_coeffs(-1.0), "B", "-1.0"),
    "ve_marginal_coeffs t<0": (lambda: D.ve_marginal_coeffs(-0.5, 0.01, 5.0), "t", "-0.5"),
    "drift_divergence d=0": (lambda: VESDE().drift_divergence(0, 0.5), "d", "0"),
    "VPSDE.for_levels beta_min<0": (lambda: VPSDE.for_levels(10.0, beta_min=-0.1), "beta_min", "-0.1"),
    "flow_bits_per_dim levels=1": (lambda: flow_bits_per_dim(lambda x, s: -x, X, 0.01, 1.0, levels=1), "levels"),
}


@pytest.mark.parametrize("name", sorted(SIGN_CASES))
def test_signs_and_ranges_are_refused_with_the_value(name):
    call, *words = SIGN_CASES[name]
    _raises(ValueError, call, *words)


# ----- shapes: no (1, d) noise broadcast, no raw broadcast errors, no lists where arrays belong ---------------
SHAPE_CASES = {
    "ancestral_step z (1, d)": (lambda: D.ancestral_step(X, 3, S, ROW, BETAS), "z", "(4, 3)", "(1, 3)"),
    "q_sample eps (1, d)": (lambda: D.q_sample(X, 3, ROW, BETAS), "eps", "(1, 3)"),
    "reverse_sde_step z (1, d)": (lambda: D.reverse_sde_step(VP, X, 0.5, 0.01, S, ROW), "z", "(1, 3)"),
    "reverse_diffusion_step z (1, d)": (lambda: D.reverse_diffusion_step(X, S, 0.0, 1.0, ROW), "z", "(1, 3)"),
    "langevin_move z (1, d)": (lambda: D.langevin_move(X, S, 0.1, ROW), "z", "(1, 3)"),
    "langevin_corrector_step z (1, d)": (lambda: D.langevin_corrector_step(X, S, ROW, 0.16), "z", "(1, 3)"),
    "annealed_langevin_step z (1, d)": (lambda: D.annealed_langevin_step(X, S, ROW, LADDER, 0, 0.01), "z", "(1, 3)"),
    "ancestral_step eps_pred (1, d)": (lambda: D.ancestral_step(X, 3, ROW, Z, BETAS), "eps_pred", "x_t", "(1, 3)"),
    "ode_velocity score (1, d)": (lambda: D.ode_velocity(VP, X, 0.5, ROW), "score", "(1, 3)"),
    "x0_from_score score (1, d)": (lambda: D.x0_from_score(X, ROW, 1.0, 0.5), "score", "x_t", "(1, 3)"),
    "score_from_denoiser denoised (1, d)": (lambda: D.score_from_denoiser(X, ROW, 1.0), "denoised", "(1, 3)"),
    "v_from_eps eps (2, 3)": (lambda: D.v_from_eps(X, Z[:2], 0.6, 0.8), "eps", "x0", "(2, 3)"),
    "q_sample t of another length": (lambda: D.q_sample(X, np.array([0, 1, 2]), Z, BETAS), "t", "(4,)", "(3,)"),
    "annealed level of another length": (lambda: D.annealed_langevin_step(X, S, Z, LADDER, np.array([0, 1]), 0.01),
                                         "level", "(2,)"),
    "score_from_eps sigma of another length": (lambda: D.score_from_eps(Z, SIG[:3]), "sigma", "(4,)", "(3,)"),
    "score_from_eps sigma (1,)": (lambda: D.score_from_eps(Z, SIG[:1]), "sigma", "(1,)"),
    "reverse_sde_step dt of another length": (lambda: D.reverse_sde_step(VP, X, 0.5, SIG[:2], S, Z), "dt", "(2,)"),
    "VPSDE.marginal_prob t of another length": (lambda: VP.marginal_prob(X, np.array([0.1, 0.2])), "t", "(2,)"),
    "VPSDE.reverse_drift score_fn (1, d)": (lambda: VP.reverse_drift(lambda y, t: ROW, X, 0.5), "score_fn", "(1, 3)"),
    "ancestral_sigmas shapes": (lambda: D.ancestral_sigmas(SIG[:3], SIG[:2] / 2), "sigma_to", "(3,)", "(2,)"),
    "gaussian_flow_log_likelihood cov": (lambda: D.gaussian_flow_log_likelihood(np.zeros(3), np.eye(2), VP, X, 0.0),
                                         "cov", "(2, 2)"),
    "dequantise empty": (lambda: D.dequantise(np.zeros((0, 3), int), 256, RNG), "k", "(0, 3)"),
    "per_example of another length": (lambda: D.per_example(SIG[:3], X), "one entry per example", "(3,)", "(4, 3)"),
    "likelihood_summary empty": (lambda: D.likelihood_summary(np.zeros(0), "exact", 256, 8.0, 1, 0.1), "bpd", "(0,)"),
}


@pytest.mark.parametrize("name", sorted(SHAPE_CASES))
def test_shapes_are_checked_and_named(name):
    call, *words = SHAPE_CASES[name]
    _raises(ValueError, call, *words)


LIST_CASES = {
    "score_from_eps eps": (lambda: D.score_from_eps(Z.tolist(), 0.5), "eps", "list"),
    "q_sample x0": (lambda: D.q_sample(X.tolist(), 3, Z, BETAS), "x0", "list"),
    "ancestral_step x_t": (lambda: D.ancestral_step(X.tolist(), 3, S, Z, BETAS), "x_t", "list"),
    "langevin_move x": (lambda: D.langevin_move(X.tolist(), S, 0.1, Z), "x", "list"),
    "VPSDE.marginal_prob x0": (lambda: VP.marginal_prob(X.tolist(), 0.5), "x0", "list"),
    "reverse_drift score_fn": (lambda: VP.reverse_drift("not a function", X, 0.5), "score_fn", "str"),
    "edm_denoiser features": (lambda: D.edm_denoiser(None, X, 1.0, 0.5), "features", "NoneType"),
    "likelihood_weighting sde": (lambda: D.likelihood_weighting("vp", 0.5), "sde", "str"),
    "sigma a string": (lambda: D.score_from_eps(Z, "0.5"), "sigma", "'0.5'"),
}


@pytest.mark.parametrize("name", sorted(LIST_CASES))
def test_lists_and_non_arrays_are_type_errors(name):
    call, *words = LIST_CASES[name]
    _raises(TypeError, call, *words)


def test_a_list_of_per_example_coefficients_is_read_as_an_array():
    # a list of sigmas, one per example (a documented correct result): the same as the array
    np.testing.assert_array_equal(D.score_from_eps(Z, SIG.tolist()), D.score_from_eps(Z, SIG))
    np.testing.assert_array_equal(D.score_from_eps(Z, SIG), -Z / SIG[:, None])


# ----- validation is metadata-only on devices, and differentiable ---------------------------------------------
def test_validation_reads_no_device_array():
    bk = backends.get("strict")
    x, z, s = (bk.asarray(a) for a in (X, Z, S))
    sig = bk.asarray(SIG)
    with count_syncs() as c:
        D.score_from_eps(z, sig), D.x0_from_score(x, s, sig, sig), D.score_from_denoiser(x, s, sig)
        D.reverse_diffusion_step(x, s, 0.0, sig, z), D.langevin_move(x, s, 0.1, z)
        D.ancestral_step(x, bk.asarray([0, 1, 2, 6]), s, z, BETAS), D.tweedie_denoise_ve(x, s, sig)
        D.reverse_sde_step(VP, x, bk.asarray([0.2, 0.4, 0.6, 0.8]), 0.01, s, z)
        VP.discretize(x, bk.asarray([0.2, 0.4, 0.6, 0.8]), 0.1)
    assert c.syncs == 0, c.sites


def test_validation_passes_autograd_boxes():
    # d/dsigma of sum(-eps/sigma) = sum_j eps_ij / sigma_i^2, per example: the check reads the box's value only
    g = grad(lambda sg: np.sum(D.score_from_eps(Z, sg)))(SIG)
    np.testing.assert_allclose(g, Z.sum(axis=1) / SIG**2, rtol=1e-13)
    g = grad(lambda y: np.sum(D.score_from_denoiser(y, 0.5 * y, SIG)))(X)
    np.testing.assert_allclose(g, np.broadcast_to(-0.5 / SIG[:, None] ** 2, X.shape), rtol=1e-13)
    with pytest.raises(ValueError, match="sigma must be positive and finite, got -0.5 at index 0"):
        grad(lambda sg: np.sum(D.score_from_eps(Z, sg)))(-SIG)


def test_solvers_check_their_counts():
    _raises(ValueError, lambda: log_likelihood(VP, lambda x, t: -x, X, trace_chunk=0), "trace_chunk", "0")
    _raises(ValueError, lambda: log_likelihood(VP, lambda x, t: -x, X, rng=RNG, n_projections=-1), "n_projections")
