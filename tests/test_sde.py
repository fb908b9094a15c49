"""Reverse SDE, probability-flow ODE, exact log-likelihoods (issue 4)."""
import math

import numpy as np
import pytest

from refscore import sde as sdelib
from refscore.energies import Gaussian

MU = np.array([1.0, -0.5])
S = np.array([[1.0, 0.4], [0.4, 0.6]])
DATA = Gaussian(MU, S)


def marginal(sde, t):
    """p_t for Gaussian data: N(m μ, m² S + v I)."""
    return sdelib.marginal_law(DATA, sde, t)


def exact_score(sde):
    cache = {}

    def score(x, t):
        if t not in cache:
            cache[t] = marginal(sde, t)
        return cache[t].score(x)

    return score


@pytest.mark.parametrize("sde", [sdelib.VESDE(0.01, 5.0), sdelib.VPSDE(0.1, 20.0)], ids=["VE", "VP"])
def test_pf_ode_log_likelihood_matches_the_analytic_density(sde):
    x = DATA.sample(6, np.random.default_rng(0))
    p1 = marginal(sde, 1.0)
    ll = sdelib.log_likelihood(sde, exact_score(sde), x, prior_log_prob=p1.log_prob)
    np.testing.assert_allclose(ll, DATA.log_prob(x), atol=1e-4)


def test_hutchinson_log_likelihood_is_unbiased():
    sde = sdelib.VPSDE()
    x = DATA.sample(4, np.random.default_rng(1))
    p1 = marginal(sde, 1.0)
    runs = np.stack([sdelib.log_likelihood(sde, exact_score(sde), x, rng=np.random.default_rng(k),
                                           prior_log_prob=p1.log_prob, rtol=1e-4, atol=1e-4)
                     for k in range(30)])
    se = runs.std(0, ddof=1) / math.sqrt(runs.shape[0])
    assert np.all(np.abs(runs.mean(0) - DATA.log_prob(x)) < 5 * se + 1e-3)


def test_default_prior_is_close_for_vp():
    sde = sdelib.VPSDE()
    x = DATA.sample(3, np.random.default_rng(2))
    ll = sdelib.log_likelihood(sde, exact_score(sde), x)
    # p_1 is N(≈0, ≈I) for β_max = 20: e^{-B(1)/2} ≈ 0.0067
    np.testing.assert_allclose(ll, DATA.log_prob(x), atol=0.05)


@pytest.mark.parametrize("sde,corrector", [(sdelib.VPSDE(0.1, 20.0), 0), (sdelib.VESDE(0.01, 10.0), 1)],
                         ids=["VP-EM", "VE-PC"])
def test_reverse_sde_samples_have_the_right_moments(sde, corrector):
    rng = np.random.default_rng(3)
    n = 8000
    x1 = marginal(sde, 1.0).sample(n, rng)
    x = sdelib.reverse_sde_sample(sde, exact_score(sde), x1, rng, n_steps=500, t_min=1e-4,
                                  corrector_steps=corrector)
    target = marginal(sde, 1e-4)
    mean, cov = target.backend.to_numpy(target.mean), target.backend.to_numpy(target.cov)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se_mean), (x.mean(0), mean)
    emp = np.cov(x.T)
    se_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
    assert np.all(np.abs(emp - cov) < 5 * se_cov), (emp, cov)


def test_probability_flow_sampling_maps_prior_to_data():
    sde = sdelib.VPSDE()
    rng = np.random.default_rng(4)
    x1 = marginal(sde, 1.0).sample(2000, rng)
    x = sdelib.probability_flow_sample(sde, exact_score(sde), x1, t_min=1e-4)
    n = x.shape[0]
    assert np.all(np.abs(x.mean(0) - MU) < 5 * np.sqrt(np.diag(S) / n) + 1e-3)
    assert np.all(np.abs(np.cov(x.T) - S) < 5 * np.sqrt((S**2 + np.outer(np.diag(S), np.diag(S))) / n) + 1e-3)


def test_sde_marginals_and_errors():
    ve, vp = sdelib.VESDE(0.1, 10.0), sdelib.VPSDE(0.1, 20.0)
    assert ve.sigma(0.0) == pytest.approx(0.1) and ve.sigma(1.0) == pytest.approx(10.0)
    # ∫₀¹ g² dt = σ_max² - σ_min²: the VE diffusion matches its marginal
    ts = np.linspace(0, 1, 20001)
    g2 = np.array([ve.diffusion(t) ** 2 for t in ts])
    assert np.trapezoid(g2, ts) == pytest.approx(ve.marginal_coeffs(1.0)[1] ** 2, rel=1e-6)
    a, s = vp.marginal_coeffs(1.0)
    assert a * a + s * s == pytest.approx(1.0)  # variance preserving for unit-variance data
    with pytest.raises(ValueError, match="sigma_max must exceed sigma_min"):
        sdelib.VESDE(1.0, 0.5)
    with pytest.raises(ValueError, match="beta_min must be positive"):
        sdelib.VPSDE(-1.0, 2.0)


# ----- the SDE contract: per-row t, marginal coefficients, the marginal law -------------------
SDES = [sdelib.VESDE(0.01, 5.0), sdelib.VPSDE(0.1, 20.0)]


@pytest.mark.parametrize("sde", SDES, ids=["VE", "VP"])
def test_every_method_takes_one_time_per_row(sde):
    rng = np.random.default_rng(5)
    x, t = rng.normal(size=(4, 2)), np.array([0.0, 0.1, 0.5, 1.0])
    score = lambda y, tt: -y * (1.0 + np.reshape(tt, (-1, 1)))  # noqa: E731  depends on t
    rows = lambda f: np.concatenate([f(x[i:i + 1], float(t[i])) for i in range(4)])  # noqa: E731
    np.testing.assert_allclose(sde.drift(x, t), rows(sde.drift), rtol=1e-14)
    np.testing.assert_allclose(sde.marginal_prob(x, t)[0], rows(lambda a, s: sde.marginal_prob(a, s)[0]), rtol=1e-14)
    np.testing.assert_allclose(sde.reverse_drift(score, x, t), rows(lambda a, s: sde.reverse_drift(score, a, s)),
                               rtol=1e-14)
    np.testing.assert_allclose(sde.ode_drift(score, x, t), rows(lambda a, s: sde.ode_drift(score, a, s)), rtol=1e-14)
    for f in (sde.diffusion, lambda s: sde.drift_divergence(2, s), lambda s: sde.marginal_coeffs(s)[0],
              lambda s: sde.marginal_coeffs(s)[1], lambda s: sde.marginal_prob(x, s)[1]):
        np.testing.assert_allclose(f(t), [f(float(s)) for s in t], rtol=1e-14, atol=1e-300)


def test_marginal_coefficients_are_the_closed_forms():
    ve, vp = sdelib.VESDE(0.1, 10.0), sdelib.VPSDE(0.1, 20.0)
    for t in (0.0, 0.3, 1.0):
        # abs: the naive σ(t)² − σ_min² cancels to ~1e-9 at t = 0 where the expm1 form gives exactly 0
        assert ve.marginal_coeffs(t) == pytest.approx((1.0, math.sqrt(ve.sigma(t) ** 2 - 0.01)), rel=1e-12, abs=1e-8)
        B = 0.1 * t + 0.5 * t * t * 19.9  # ∫₀ᵗ β
        assert vp.marginal_coeffs(t) == pytest.approx((math.exp(-B / 2), math.sqrt(1 - math.exp(-B))), rel=1e-12)
    # float32 in, float32 out, scalar or per-row t
    x32 = np.ones((3, 2), np.float32)
    assert vp.drift(x32, 0.5).dtype == np.float32 and vp.drift(x32, np.full(3, 0.5)).dtype == np.float32


def test_sde_is_an_abstract_contract():
    with pytest.raises(TypeError, match="abstract"):
        sdelib.SDE()
    assert isinstance(sdelib.VESDE(), sdelib.SDE) and isinstance(sdelib.VPSDE(), sdelib.SDE)


@pytest.mark.parametrize("sde", SDES, ids=["VE", "VP"])
def test_marginal_law_matches_monte_carlo(sde):
    """x_t = a x0 + s z with x0 from a mixture: mean and variance per dimension within 5 SE."""
    from refscore.energies import GaussianMixture

    data = GaussianMixture([0.3, 0.7], [[-1.0, 2.0], [1.5, 0.0]], [0.2, 0.5])
    rng = np.random.default_rng(6)
    n, t = 200_000, 0.3
    a, s = sde.marginal_coeffs(t)
    xt = a * data.sample(n, rng) + s * rng.standard_normal((n, 2))
    law = sdelib.marginal_law(data, sde, t)
    w, mu, cov = law.weights, law.means, law.covs
    mean = w @ mu
    var = np.einsum("k,kii->i", w, cov) + w @ mu**2 - mean**2
    m4 = np.mean((xt - mean) ** 4, axis=0)
    assert np.all(np.abs(xt.mean(0) - mean) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(xt.var(0) - var) < 5 * np.sqrt((m4 - var**2) / n))
    g = sdelib.marginal_law(DATA, sde, t)  # a Gaussian stays a Gaussian: N(a μ, a² S + s² I)
    np.testing.assert_allclose(g.cov, a * a * S + s * s * np.eye(2), rtol=1e-12)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\], got 1.5"):
        sdelib.marginal_law(DATA, sde, 1.5)
