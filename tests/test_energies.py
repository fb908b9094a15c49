"""Energies: closed forms against autograd and quadrature; noised laws against sampled moments."""
import math

import autograd.numpy as anp
import numpy as np
from autograd.test_util import check_grads
import pytest
from autograd import elementwise_grad
from hypothesis import given, strategies as st
from scipy import integrate

from refscore import backends
from refscore.energies import (Banana, DoubleWell, Gaussian, GaussianBernoulliRBM, GaussianMixture,
                               MLPEnergy, NealsFunnel, Ring, SumOfEnergies)
from refscore.partition import log_partition_quadrature

from conftest import to_np

seeds = st.integers(0, 2**31 - 1)


def random_spd(rng, d, lo=0.3, hi=2.0):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * rng.uniform(lo, hi, d)) @ q.T


def random_gmm(seed, d, K, diag=False, backend="numpy"):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(K))
    mu = rng.normal(0, 2, (K, d))
    covs = np.stack([np.diag(rng.uniform(0.3, 2.0, d)) if diag else random_spd(rng, d) for _ in range(K)])
    return GaussianMixture(w, mu, covs, backend=backend)


def autograd_score(energy, x):
    return elementwise_grad(lambda y: -anp.sum(energy.energy_unchecked(y)))(x)


@given(seed=seeds, d=st.integers(1, 4), K=st.integers(1, 4), diag=st.booleans())
def test_gmm_closed_form_score_equals_autograd(seed, d, K, diag):
    g = random_gmm(seed, d, K, diag)
    x = np.random.default_rng(seed + 1).normal(0, 3, (7, d))
    np.testing.assert_allclose(g.score(x), autograd_score(g, x), rtol=1e-9, atol=1e-10)


@given(seed=seeds, d=st.integers(1, 4))
def test_gaussian_closed_form_score_equals_autograd(seed, d):
    rng = np.random.default_rng(seed)
    g = Gaussian(rng.normal(size=d), random_spd(rng, d))
    x = rng.normal(0, 2, (5, d))
    np.testing.assert_allclose(g.score(x), autograd_score(g, x), rtol=1e-10, atol=1e-12)


@given(seed=seeds, d=st.integers(1, 4), shape=st.sampled_from(["isotropic", "diagonal", "full"]),
       centred=st.booleans(), dtype=st.sampled_from(["float64", "float32"]))
def test_gaussian_score_on_each_of_its_fast_paths(seed, d, shape, centred, dtype):
    """cI (one scalar pass), diagonal (a column scaling) and full precision (a product), centred or not:
    each is autograd's score of the energy, in the Gaussian's dtype."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.3, 2.0)
    cov = {"isotropic": c * np.eye(d), "diagonal": np.diag(rng.uniform(0.3, 2.0, d)),
           "full": random_spd(rng, d)}[shape]
    g = Gaussian(np.zeros(d) if centred else rng.normal(size=d), cov, dtype=dtype)
    x = rng.normal(0, 2, (5, d)).astype(dtype)
    s = g.score(x)
    assert s.dtype == np.dtype(dtype)
    tol = 1e4 * np.finfo(dtype).eps * d  # the covariance's inverse and a d-term sum, in the Gaussian's precision
    np.testing.assert_allclose(s, autograd_score(Gaussian(g.mean, cov), x.astype(float)), rtol=tol, atol=tol)


@given(seed=seeds)
def test_rbm_closed_form_score_equals_autograd(seed):
    rng = np.random.default_rng(seed)
    rbm = GaussianBernoulliRBM(rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=4))
    x = rng.normal(size=(6, 3))
    np.testing.assert_allclose(rbm.score(x), autograd_score(rbm, x), rtol=1e-10, atol=1e-12)


def test_rbm_free_energy_sums_the_joint_energy_over_hidden_states():
    """E(x) = -log Σ_h exp(-E(x, h)) over all 2^m hidden states (Hinton 2010, §13.2): the free energy
    and the joint energy of GaussianBernoulliRBM agree, by enumeration for m = 4."""
    import itertools

    rng = np.random.default_rng(3)
    rbm = GaussianBernoulliRBM(rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=4))
    x = rng.normal(size=(5, 3))
    hs = np.array(list(itertools.product([0.0, 1.0], repeat=4)))  # (16, 4)
    joint = np.stack([rbm.joint_energy(x, np.tile(h, (5, 1))) for h in hs])  # (16, 5)
    free = -np.log(np.exp(-joint).sum(0))
    np.testing.assert_allclose(rbm.energy(x), free, rtol=1e-12)


def test_gmm_agrees_across_backends_and_with_single_gaussian(bk):
    g = random_gmm(3, 3, 4, backend=bk.name)
    gn = random_gmm(3, 3, 4)
    x = np.random.default_rng(0).normal(size=(9, 3))
    np.testing.assert_allclose(to_np(g.energy(bk.asarray(x))), gn.energy(x), rtol=1e-12)
    np.testing.assert_allclose(to_np(g.score(bk.asarray(x))), gn.score(x), rtol=1e-10, atol=1e-12)
    # a one-component mixture is that Gaussian, normalised
    rng = np.random.default_rng(1)
    mu, S = rng.normal(size=3), random_spd(rng, 3)
    one, gauss = GaussianMixture([1.0], mu[None], S[None]), Gaussian(mu, S)
    np.testing.assert_allclose(one.log_prob(x), gauss.log_prob(x), rtol=1e-12)


@given(seed=seeds, K=st.integers(1, 3))
def test_log_prob_integrates_to_one_1d(seed, K):
    g = random_gmm(seed, 1, K)
    lo, hi = float(g.host_params["means"].min()) - 15, float(g.host_params["means"].max()) + 15
    assert abs(log_partition_quadrature(g, [(lo, hi)])) < 1e-7


@given(seed=seeds, K=st.integers(1, 3))
def test_log_prob_integrates_to_one_2d(seed, K):
    g = random_gmm(seed, 2, K)
    lo, hi = float(g.host_params["means"].min()) - 12, float(g.host_params["means"].max()) + 12
    assert abs(log_partition_quadrature(g, [(lo, hi), (lo, hi)])) < 1e-6


@pytest.mark.parametrize("energy,box", [
    (Gaussian([0.5, -1.0], [[1.0, 0.3], [0.3, 0.5]]), [(-10, 10), (-10, 10)]),
    (Banana(a=1.0, b=0.5), [(-8, 8), (-10, 40)]),
    (Ring(radius=2.0, width=0.3), [(-5, 5), (-5, 5)]),
    (DoubleWell(dim=1, barrier=2.0), [(-5, 5)]),
    (DoubleWell(dim=2, barrier=1.0), [(-5, 5), (-9, 9)]),
])
def test_closed_form_log_partition_matches_quadrature(energy, box):
    assert abs(log_partition_quadrature(energy, box) - energy.log_partition()) < 1e-6


@given(seed=seeds, K=st.integers(1, 3), sigma=st.floats(0.2, 2.0))
def test_posterior_mean_matches_quadrature_1d(seed, K, sigma):
    g = random_gmm(seed, 1, K)
    y = float(np.random.default_rng(seed).normal(0, 3))
    log_lik = lambda x: -g.energy(np.array([[x]]))[0] - (y - x) ** 2 / (2 * sigma**2)
    mus = list(np.asarray(g.means)[:, 0])
    lo, hi = min(mus + [y]) - 12 * max(sigma, 1.5), max(mus + [y]) + 12 * max(sigma, 1.5)
    # the integrand's mass can be 1e-17: shift its log by the maximum (as partition.py does) and ask
    # quad for a relative accuracy only (epsabs=0), else its default absolute tolerance wins
    shift = max(log_lik(x) for x in np.linspace(lo, hi, 4001))
    lik = lambda x: math.exp(log_lik(x) - shift)
    pts = sorted(set(mus + [y]))  # tell the adaptive rule where the mass can be
    num = integrate.quad(lambda x: x * lik(x), lo, hi, limit=400, points=pts, epsabs=0, epsrel=1e-10)[0]
    den = integrate.quad(lik, lo, hi, limit=400, points=pts, epsabs=0, epsrel=1e-10)[0]
    assert g.posterior_mean(np.array([[y]]), sigma)[0, 0] == pytest.approx(num / den, rel=1e-6, abs=1e-7)


def _moments_within_mc_error(samples, mean, cov, n_se=5.0):
    """Sample mean and covariance against the truth, tolerances from the standard errors."""
    n = samples.shape[0]
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(samples.mean(0) - mean) < n_se * se_mean), (samples.mean(0), mean)
    c = samples - mean
    emp = c.T @ c / n
    # Var[(x_i - m_i)(x_j - m_j)] estimated from the samples themselves
    prods = c[:, :, None] * c[:, None, :]
    se_cov = prods.std(0) / np.sqrt(n)
    assert np.all(np.abs(emp - cov) < n_se * se_cov + 1e-12), (emp, cov)


def _mixture_moments(w, mu, covs):
    m = w @ mu
    second = np.einsum("k,kij->ij", w, covs + np.einsum("ki,kj->kij", mu, mu))
    return m, second - np.outer(m, m)


@given(seed=seeds, sigma=st.floats(0.1, 3.0))
def test_perturbed_matches_sampled_moments(seed, sigma):
    g = random_gmm(seed, 2, 3)
    rng = np.random.default_rng(seed)
    n = 20000
    x = g.sample(n, rng) + sigma * rng.standard_normal((n, 2))
    p = g.perturbed(sigma)
    h = p.host_params
    _moments_within_mc_error(x, *_mixture_moments(h["weights"], h["means"], h["covs"]))
    # the covariance grows by σ² I — not replaced by σ² I (ncsn #6)
    np.testing.assert_allclose(h["covs"], g.host_params["covs"] + sigma**2 * np.eye(2))


@given(seed=seeds, beta=st.floats(0.01, 0.99))
def test_diffused_matches_sampled_moments(seed, beta):
    g = random_gmm(seed, 2, 2)
    rng = np.random.default_rng(seed)
    n = 20000
    x = math.sqrt(1 - beta) * g.sample(n, rng) + math.sqrt(beta) * rng.standard_normal((n, 2))
    h = g.diffused(beta).host_params
    _moments_within_mc_error(x, *_mixture_moments(h["weights"], h["means"], h["covs"]))


def test_gmm_sample_moments(bk):
    g = random_gmm(5, 3, 3, backend=bk.name)
    x = to_np(g.sample(20000, bk.rng(0)))
    h = g.host_params
    _moments_within_mc_error(x, *_mixture_moments(h["weights"], h["means"], h["covs"]))


@given(seed=seeds)
def test_sum_of_energies_adds_energies_and_scores(seed):
    a, b = random_gmm(seed, 2, 2), Banana(b=0.3)
    s = SumOfEnergies([a, b])
    x = np.random.default_rng(seed).normal(size=(5, 2))
    np.testing.assert_allclose(s.energy(x), a.energy(x) + b.energy(x), rtol=1e-12)
    np.testing.assert_allclose(s.score(x), a.score(x) + b.score(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s.score(x), autograd_score(s, x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: Banana(2.0, 0.5), lambda: NealsFunnel(3, 1.0)])
def test_exact_samplers_match_moments(make):
    e = make()
    x = e.sample(40000, np.random.default_rng(0))
    if isinstance(e, Banana):
        # x1 ~ N(0, a²), E[x2] = 0, Var[x2] = 1 + 2 b² a⁴
        _moments_within_mc_error(x, np.zeros(2), np.diag([e.a**2, 1 + 2 * e.b**2 * e.a**4]))
    else:
        # v ~ N(0, s²); E[x_i²] = E[e^v] = exp(s²/2)
        _moments_within_mc_error(x, np.zeros(3), np.diag([1.0, math.exp(0.5), math.exp(0.5)]))


def test_toy_energies_are_finite_and_scores_autograd(bk):
    x = bk.asarray(np.random.default_rng(0).normal(size=(6, 2)))
    for e in (DoubleWell(), Banana(), NealsFunnel(), Ring()):
        assert np.all(np.isfinite(to_np(e.energy(x))))
        assert to_np(e.score(x)).shape == (6, 2)
    # double-well score in closed form: -(4a x1(x1²-1), x2)
    xn = to_np(x)
    dw = DoubleWell(barrier=1.5)
    expected = -np.stack([4 * 1.5 * xn[:, 0] * (xn[:, 0] ** 2 - 1), xn[:, 1]], 1)
    np.testing.assert_allclose(to_np(dw.score(x)), expected, rtol=1e-12)


def test_mlp_energy_on_every_backend(bk):
    m = MLPEnergy(3, (16, 16), rng=bk.rng(0))
    ref = MLPEnergy(3, (16, 16), rng=backends.get("numpy").rng(0))
    x = np.random.default_rng(1).normal(size=(5, 3))
    assert to_np(m.energy(bk.asarray(x))).shape == (5,)
    np.testing.assert_allclose(to_np(m.score(bk.asarray(x))), ref.score(x), rtol=1e-10)
    # the energy's own derivatives, by autograd's gradient checker (central differences), to 2nd order
    check_grads(lambda y: anp.sum(ref.energy(y)), modes=["rev"], order=2)(x)


@pytest.mark.parametrize("scale", [1e150, 1e300])
def test_gmm_score_is_finite_far_away_like_gaussian(scale):
    """Issue 11: at |x| ~ 1e300, xᵀx overflows; the mixture's score must stay finite and equal the
    dominant component's score -(x - μ_k)/σ_k² (largest variance, then largest μ_k·x)."""
    from refscore.energies import Gaussian, GaussianMixture

    x = np.array([[scale, -0.5 * scale], [-scale, 0.0]])
    g = GaussianMixture([0.5, 0.5], [[1.0, 0.0], [-1.0, 2.0]], [1.0, 4.0])
    s = g.score(x)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, -(x - np.array([-1.0, 2.0])) / 4.0, rtol=1e-12)
    same = GaussianMixture([0.5, 0.5], [[1.0, 0.0], [-1.0, 2.0]], [1.0, 1.0])  # equal variances: μ_k·x decides
    np.testing.assert_allclose(same.score(x[:1]), Gaussian([1.0, 0.0], np.eye(2)).score(x[:1]), rtol=1e-12)
    e = g.energy(x)  # as Gaussian.energy: the dominant component's quadratic, +inf once it overflows
    with np.errstate(over="ignore"):
        expected = 0.5 * np.sum((x - np.array([-1.0, 2.0])) ** 2, axis=1) / 4.0  # inf at 1e300
    np.testing.assert_allclose(e, expected, rtol=1e-12)
