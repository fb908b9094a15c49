"""Issue 24: bits per dimension with L-level uniform dequantisation, and the bits/dim of a
noise-conditional score model by the VE probability-flow ODE (exact trace and Hutchinson)."""
import math

import autograd.numpy as anp
import numpy as np
import pytest

from refscore import diffusion
from refscore.energies import Gaussian
from refscore.sde import VESDE, VPSDE, flow_bits_per_dim
from refscore.traces import jacobian_trace

MU = np.array([0.4, 0.6, 0.5])
S = np.array([[0.05, 0.01, 0.0], [0.01, 0.03, 0.005], [0.0, 0.005, 0.04]])
SIG_MIN, SIG_MAX = 0.02, 3.0


@pytest.mark.parametrize("levels,scale,offset", [(256, 1.0, 8.0), (256, 2.0, 7.0), (17, 1.0, math.log2(17)),
                                                 (2, 1.0, 1.0)])
def test_offset_is_log2_levels_over_scale(levels, scale, offset):
    d = 12
    assert diffusion.bits_per_dim(np.array([0.0]), d, scale=scale, levels=levels)[0] == pytest.approx(offset, rel=1e-14)
    # the uniform density on the data's cube [0, a]^D (log p = -D log a) costs exactly log2 L bits/dim
    uniform = diffusion.bits_per_dim(np.array([-d * math.log(scale)]), d, scale=scale, levels=levels)[0]
    assert uniform == pytest.approx(math.log2(levels), rel=1e-14)


def test_bad_levels_and_pixels_are_refused():
    with pytest.raises(ValueError, match="levels"):
        diffusion.bits_per_dim(np.zeros(2), 4, levels=1)
    with pytest.raises(ValueError, match="0..16"):
        diffusion.dequantise(np.full((2, 3), 17), 17, np.random.default_rng(0))


def test_piecewise_constant_density_gives_the_discrete_entropy():
    # p(x) = prod_i L P(k_i) on the cell of k: its dequantised bits/dim is exactly -sum log2 P(k_i) / D,
    # the code length of the discrete law; dequantise must put x in the cell of k, and u must be U(0, 1)
    L, D, n = 5, 7, 4000
    P = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    rng = np.random.default_rng(0)
    k = rng.choice(L, size=(n, D), p=P)
    x = diffusion.dequantise(k, L, rng)
    cell = np.floor(x * L).astype(int)
    np.testing.assert_array_equal(cell, k)
    log_p = np.sum(np.log(L * P[cell]), axis=1)
    np.testing.assert_allclose(diffusion.bits_per_dim(log_p, D, levels=L), -np.sum(np.log2(P[k]), axis=1) / D,
                               rtol=1e-12)
    u = (x * L - k).ravel()  # U(0, 1): mean 1/2, sd 1/sqrt(12)
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12) / math.sqrt(u.size)


def test_floor_is_reached_by_point_data_at_its_point():
    # p = delta_0 perturbed by sigma: p_sigma(0) = (2 pi sigma^2)^(-D/2), the largest density any p_sigma has
    d, sigma = 5, 0.01
    log_p = Gaussian(np.zeros(d), sigma**2 * np.eye(d)).log_prob(np.zeros((1, d)))
    floor = diffusion.perturbed_bits_floor(sigma, 256)
    assert diffusion.bits_per_dim(log_p, d, levels=256)[0] == pytest.approx(floor, rel=1e-12)
    assert floor == pytest.approx(2.682, abs=5e-4)  # MNIST at sigma_min = 0.01


def _gaussian_score(x, sigma):
    """The exact noise-conditional score of N(MU, S) perturbed by N(0, sigma^2 I)."""
    P = np.linalg.inv(S + sigma**2 * np.eye(3))
    return -anp.dot(x - MU, P)


def _exact_bpd(x, levels):
    """-log2 N(x; MU, S + sigma_min^2 I) / D + log2 L: p_{sigma_min}, what the flow should give."""
    ll = diffusion.gaussian_flow_log_likelihood(MU, S + SIG_MIN**2 * np.eye(3), VESDE(SIG_MIN, SIG_MAX), x, 0.0)
    return diffusion.bits_per_dim(ll, 3, levels=levels)


def test_flow_bits_per_dim_is_exact_on_gaussian_data():
    # with the exact score and the exact prior N(MU, S + sigma_max^2 I), the ODE from sigma_min returns
    # log p_{sigma_min}; tolerance: 1e-4 nats of log p (the ODE at rtol = atol = 1e-7), in bits/dim
    x = Gaussian(MU, S).sample(5, np.random.default_rng(1))
    prior = Gaussian(MU, S + SIG_MAX**2 * np.eye(3)).log_prob
    r = flow_bits_per_dim(_gaussian_score, x, SIG_MIN, SIG_MAX, levels=17, rtol=1e-7, atol=1e-7,
                                    prior_log_prob=prior)
    np.testing.assert_allclose(r["bpd"], _exact_bpd(x, 17), atol=1e-4 / (3 * math.log(2)))
    assert r["offset"] == pytest.approx(math.log2(17)) and r["method"] == "exact" and r["n"] == 5
    assert r["nfev"] > 0 and r["probe_sd"] is None
    # the default prior is the VE SDE's N(0, sigma_max^2 I): off by its log-ratio to the exact prior at x(1)
    d = flow_bits_per_dim(_gaussian_score, x, SIG_MIN, SIG_MAX, levels=17, rtol=1e-7, atol=1e-7)
    assert np.all(np.abs(d["bpd"] - r["bpd"]) > 1e-3)


def test_hutchinson_agrees_with_the_exact_trace_within_its_standard_error():
    rng = np.random.default_rng(2)
    x = Gaussian(MU, S).sample(200, rng)
    prior = Gaussian(MU, S + SIG_MAX**2 * np.eye(3)).log_prob
    ex = flow_bits_per_dim(_gaussian_score, x, SIG_MIN, SIG_MAX, levels=17, prior_log_prob=prior)
    hu = flow_bits_per_dim(_gaussian_score, x, SIG_MIN, SIG_MAX, levels=17, prior_log_prob=prior,
                                     rng=rng, n_probes=1, probe_sets=2)
    diff = hu["bpd"] - ex["bpd"]  # the probes' noise only: the same x
    assert abs(diff.mean()) < 5 * diff.std(ddof=1) / math.sqrt(len(diff)) + 1e-4
    assert hu["probe_sd"] > 0 and hu["method"] == "hutchinson (M=1)"


@pytest.mark.parametrize("chunk", [1, 5, 7, 64])
def test_batched_exact_trace_equals_the_loop(chunk):
    W = np.random.default_rng(3).normal(size=(4, 4))
    f = lambda x: anp.tanh(anp.dot(x, W)) * x  # noqa: E731  (rows do not interact)
    x = np.random.default_rng(4).normal(size=(3, 4))
    s0, t0 = jacobian_trace(f, x)
    s1, t1 = jacobian_trace(f, x, chunk=chunk)
    np.testing.assert_allclose(s1, s0, rtol=1e-14)
    np.testing.assert_allclose(t1, t0, rtol=1e-12)


def test_histogram_baseline_is_the_code_length_of_independent_pixels():
    from refscore.apps.bits_per_dim import histogram_bits_per_dim

    rng = np.random.default_rng(0)
    L, n = 4, 2000
    k_train = np.column_stack([np.zeros(n, int), rng.integers(0, L, n)])  # a blank pixel, a uniform one
    k_test = np.column_stack([np.zeros(500, int), rng.integers(0, L, 500)])
    mean, se = histogram_bits_per_dim(k_train, k_test, L)
    # pixel 0 costs -log2((n+1)/(n+L)); pixel 1 about log2 L = 2 bits, within the counts' noise
    blank = -np.log2((n + 1) / (n + L))
    assert abs(mean - (blank + 2.0) / 2) < 4 * (se + np.sqrt(L / n))
    with pytest.raises(ValueError, match="values in 0..3"):
        histogram_bits_per_dim(k_train, k_test + 1, L)


def test_flow_bits_per_dim_by_the_vp_sde_is_exact_on_gaussian_data():
    # the same sigma-conditioned score as the VP SDE's time score, s(x, t) = s_sigma(x / a, s/a) / a, from the
    # time where s/a = sigma_min: the flow returns log N(x; a MU, a^2 S + s^2 I) at t_min (exact prior at 1)
    sde = VPSDE(0.1, 2 * math.log1p(SIG_MAX**2) - 0.1)  # s/a = sigma_max at t = 1
    t_min = float(sde.time_of_level(SIG_MIN))
    assert sde.noise_level(t_min)[1] == pytest.approx(SIG_MIN, rel=1e-9)
    x = Gaussian(MU, S).sample(5, np.random.default_rng(1))
    a1, s1 = sde.marginal_coeffs(1.0)
    prior = Gaussian(a1 * MU, a1 * a1 * S + s1 * s1 * np.eye(3)).log_prob
    r = flow_bits_per_dim(_gaussian_score, x, levels=17, rtol=1e-7, atol=1e-7, prior_log_prob=prior, sde=sde,
                          t_min=t_min)
    want = diffusion.bits_per_dim(diffusion.gaussian_flow_log_likelihood(MU, S, sde, x, t_min), 3, levels=17)
    np.testing.assert_allclose(r["bpd"], want, atol=1e-4 / (3 * math.log(2)))
    with pytest.raises(ValueError, match="not both"):
        flow_bits_per_dim(_gaussian_score, x, SIG_MIN, SIG_MAX, sde=sde)
