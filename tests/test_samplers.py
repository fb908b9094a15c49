"""Samplers (issue 4). Statistical assertions: fixed seeds, 5 standard errors."""
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from refscore import backends, datasets, diagnostics, samplers
from refscore.energies import Gaussian, GaussianBernoulliRBM, GaussianMixture
from refscore.losses import geometric_sigmas
from refscore.samplers import langevin_log_q, langevin_move, mh_accept, rows_finite, select_rows

from conftest import to_np

N_SE = 5.0
STD = Gaussian([0.0], [[1.0]])


def var_within_se(x, target):
    n = x.size
    se = target * math.sqrt(2.0 / n)  # SE of a Gaussian sample variance
    assert abs(x.var() - target) < N_SE * se, (x.var(), target, se)


def test_ula_is_biased_and_mala_is_not():
    rng = np.random.default_rng(0)
    h = 0.5
    x0 = rng.standard_normal((20000, 1))
    x, info = samplers.langevin(STD.score, x0, h, 60, rng)
    var_within_se(x, 1.0 / (1.0 - h / 2))  # ULA: x' = (1-h)x + √(2h)z
    x, info = samplers.mala(STD.unnormalized_log_prob, x0, h, 60, rng, score_fn=STD.score)
    var_within_se(x, 1.0)
    assert info["acceptance_rate"].shape == (20000,)


def test_notes_proposal_without_and_with_mh():
    """Seed 003_…, §11.2.1: y = x + η s + √η ε. Unadjusted on N(0,1): variance 1/(2-η); with MH: exact."""
    rng = np.random.default_rng(1)
    eta = 0.6
    x0 = rng.standard_normal((20000, 1))
    x, _ = samplers.langevin(STD.score, x0, eta, 60, rng, noise_var=eta)
    var_within_se(x, 1.0 / (2.0 - eta))
    x, _ = samplers.mala(STD.unnormalized_log_prob, x0, eta, 60, rng, score_fn=STD.score, noise_var=eta)
    var_within_se(x, 1.0)


def test_mala_acceptance_limits():
    rng = np.random.default_rng(2)
    g = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.5, 0.5]], [0.5, 1.0])
    x0 = g.sample(2000, rng)
    rates = [float(samplers.mala(g.unnormalized_log_prob, x0, h, 20, rng, score_fn=g.score)[1]["acceptance_rate"].mean())
             for h in (1e-5, 0.1, 1.0)]
    assert rates[0] > 0.999 and rates[0] > rates[1] > rates[2]


def test_proposal_log_density_is_the_gaussian_closed_form():
    rng = np.random.default_rng(3)
    x, s, h = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), 0.3
    y1, y2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    ref = lambda y: np.array([stats.multivariate_normal(x[i] + h * s[i], 2 * h * np.eye(3)).logpdf(y[i]) for i in range(5)])
    np.testing.assert_allclose(langevin_log_q(to=y1, given=x, score_given=s, h=h) - langevin_log_q(to=y2, given=x, score_given=s, h=h), ref(y1) - ref(y2), rtol=1e-10)
    z = rng.normal(size=(5, 3))
    np.testing.assert_allclose(langevin_move(x, s, h, z), x + h * s + math.sqrt(2 * h) * z)


BIMODAL = GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [0.3, 1.0])


def _bimodal_cdf(t):
    h = BIMODAL.host_params
    return sum(w * stats.norm(m[0], math.sqrt(c[0, 0])).cdf(t) for w, m, c in zip(h["weights"], h["means"], h["covs"]))


def _swapped_mala(log_prob, score, x0, h, n_steps, rng):
    """blackjax #653: forward and reverse proposal densities swapped."""
    x, lp, s = x0, log_prob(x0), score(x0)
    for _ in range(n_steps):
        y = langevin_move(x, s, h, rng.standard_normal(x.shape))
        lpy, sy = log_prob(y), score(y)
        wrong = lpy - lp + langevin_log_q(to=y, given=x, score_given=s, h=h) - langevin_log_q(to=x, given=y, score_given=sy, h=h)
        acc = mh_accept(wrong, rng.random(x.shape[0]), rows_finite(y))
        x, lp, s = select_rows(acc, y, x), np.where(acc, lpy, lp), select_rows(acc, sy, s)
    return x


def test_mala_leaves_a_non_gaussian_target_invariant_and_the_swap_does_not():
    rng = np.random.default_rng(4)
    x0 = BIMODAL.sample(20000, rng)
    x, _ = samplers.mala(BIMODAL.unnormalized_log_prob, x0, 0.4, 30, rng, score_fn=BIMODAL.score)
    assert stats.kstest(x[:, 0], _bimodal_cdf).pvalue > 1e-3
    bad = _swapped_mala(BIMODAL.unnormalized_log_prob, BIMODAL.score, x0, 0.4, 30, rng)
    assert stats.kstest(bad[:, 0], _bimodal_cdf).pvalue < 1e-6


def _exact_mala_acceptance_std_gaussian(d, h, n=400_000, seed=0):
    """E[min(1, α)] for MALA on N(0, I_d) at stationarity, and its Monte Carlo SE.

    Independent of the sampler: for x, z ~ N(0, I_d) the log acceptance ratio depends only on the
    Gram matrix of (x, z), a Wishart(d, I_2) draw made by the Bartlett decomposition, so d = 1000
    costs as little as d = 10. With y = (1-h)x + √(2h)z (score -x),
    log α = -½|y|² + ½|x|² - |x-(1-h)y|²/(4h) + |y-(1-h)x|²/(4h).
    """
    r = np.random.default_rng(seed)
    c1, c2, n21 = np.sqrt(r.chisquare(d, n)), np.sqrt(r.chisquare(d - 1, n)), r.standard_normal(n)
    xx, xz, zz = c1 * c1, c1 * n21, n21 * n21 + c2 * c2
    a, b = 1.0 - h, math.sqrt(2.0 * h)
    yy, xy = a * a * xx + 2 * a * b * xz + b * b * zz, a * xx + b * xz
    log_alpha = -0.5 * yy + 0.5 * xx - (xx - 2 * a * xy + a * a * yy) / (4 * h) + b * b * zz / (4 * h)
    acc = np.exp(np.minimum(log_alpha, 0.0))
    return acc.mean(), acc.std() / math.sqrt(n)


def _mala_acceptance_matches_exact(d, h, n_chains, n_steps, rng):
    x0 = rng.standard_normal((n_chains, d))  # chains start at stationarity
    lp, sc = (lambda x: -0.5 * np.sum(x * x, 1)), (lambda x: -x)
    per_chain = samplers.mala(lp, x0, h, n_steps, rng, score_fn=sc)[1]["acceptance_rate"]  # (n_chains,)
    exact, se_exact = _exact_mala_acceptance_std_gaussian(d, h)
    se = math.sqrt(per_chain.var(ddof=1) / n_chains + se_exact**2)
    assert abs(per_chain.mean() - exact) < N_SE * se, (d, h, per_chain.mean(), exact, se)
    return exact, se_exact


@pytest.mark.slow
def test_mala_acceptance_flat_with_h_proportional_to_d_to_minus_one_third():
    rng = np.random.default_rng(5)
    for d in (10, 100, 1000):
        _mala_acceptance_matches_exact(d, 1.2 * d ** (-1 / 3), 2000, 20, rng)


@pytest.mark.filterwarnings("ignore:.*never accepted a proposal:RuntimeWarning")
def test_mala_acceptance_with_h_proportional_to_d_to_minus_one_third_tends_to_its_limit():
    """Roberts & Rosenthal (1998), Thm 1/2: with proposal variance 2h = ℓ² d^(-1/3) on N(0, I_d) the
    acceptance tends to a(ℓ) = 2Φ(-ℓ³/8) (for a Gaussian K = 1/4); with a fixed h it collapses.
    The measured acceptance at each d matches the exact finite-d expectation within N_SE SE."""
    rng = np.random.default_rng(5)
    limit = 2 * stats.norm.cdf(-(2.4 ** 1.5) / 8)
    exact = {d: _mala_acceptance_matches_exact(d, 1.2 * d ** (-1 / 3), 200, 10, rng) for d in (10, 100, 1000)}
    fixed = {d: _mala_acceptance_matches_exact(d, 0.6, 200, 10, rng)[0] for d in (10, 1000)}
    assert abs(exact[1000][0] - limit) < N_SE * exact[1000][1], (exact, limit)
    assert abs(exact[10][0] - limit) > abs(exact[1000][0] - limit)
    assert fixed[1000] < 1e-3 * exact[1000][0]  # a fixed h collapses: 0.62 at d = 10, ~5e-8 at d = 1000


def test_annealed_langevin_recovers_mixture_weights_plain_langevin_does_not():
    """NCSN two-mode experiment (Song & Ermon 2019, §3.2.2 / Fig. 3)."""
    rng = np.random.default_rng(6)
    g = GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], [1.0, 1.0])
    n = 4000
    x0 = rng.uniform(-8, 8, (n, 2))
    sig = geometric_sigmas(20.0, 0.5, 10)
    scores = {float(s): g.perturbed(float(s)).score for s in sig}
    x, info = samplers.annealed_langevin(lambda y, s: scores[s](y), x0, sig, 0.05, 100, rng)
    frac = float(np.mean(x[:, 0] > 0))
    se = math.sqrt(0.8 * 0.2 / n)
    assert abs(frac - 0.8) < N_SE * se, frac
    assert info["n_steps"] == 1000 and np.isclose(info["step_sizes"][0], 0.05 * 1600)
    y, _ = samplers.langevin(g.score, x0, 0.05, 1000, rng)
    frac_plain = float(np.mean(y[:, 0] > 0))
    assert abs(frac_plain - 0.8) > 10 * se, frac_plain  # stuck near the initial 50/50 split


def test_rwmh_targets_the_density():
    rng = np.random.default_rng(7)
    x0 = BIMODAL.sample(10000, rng)
    x, info = samplers.rwmh(BIMODAL.unnormalized_log_prob, x0, 1.0, 30, rng)
    assert stats.kstest(x[:, 0], _bimodal_cdf).pvalue > 1e-3
    # acceptance at stationarity: E[min(1, p(y)/p(x))], x ~ p, y = x + δz, by independent Monte Carlo
    xs = BIMODAL.sample(200_000, np.random.default_rng(70))
    ys = xs + np.random.default_rng(71).standard_normal(xs.shape)
    acc = np.exp(np.minimum(BIMODAL.log_prob(ys) - BIMODAL.log_prob(xs), 0.0))
    per_chain = info["acceptance_rate"]
    se = math.sqrt(per_chain.var(ddof=1) / per_chain.size + acc.var() / acc.size)
    assert abs(per_chain.mean() - acc.mean()) < N_SE * se, (per_chain.mean(), acc.mean(), se)


def test_gibbs_on_tiny_rbm_matches_exact_marginals():
    rng = np.random.default_rng(8)
    W, b, c = rng.normal(0, 0.8, (2, 3)), rng.normal(size=2), rng.normal(size=3)
    rbm = GaussianBernoulliRBM(W, b, c)
    # exact marginal: mixture over the 2^3 hidden states with weights ∝ exp(cᵀh + ½||b+Wh||²)
    hs = np.array([[(k >> j) & 1 for j in range(3)] for k in range(8)], float)
    means = b + hs @ W.T
    logw = hs @ c + 0.5 * np.sum(means**2, 1)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    exact = GaussianMixture(w, means, np.ones(8))
    x, info = samplers.rbm_gibbs(rbm, rng.normal(size=(20000, 2)), 50, rng)
    m = w @ means
    cov = np.einsum("k,ki,kj->ij", w, means, means) + np.eye(2) - np.outer(m, m)
    se = np.sqrt(np.diag(cov) / x.shape[0])
    assert np.all(np.abs(x.mean(0) - m) < N_SE * se)
    for j in range(2):  # each marginal, by KS against the exact mixture's CDF
        cdf = lambda t, j=j: sum(wk * stats.norm(mk[j], 1.0).cdf(t) for wk, mk in zip(w, means))
        assert stats.kstest(x[:, j], cdf).pvalue > 1e-3
    # the free energy is the mixture's energy up to a constant
    pts = rng.normal(size=(5, 2))
    d = rbm.energy(pts) - exact.energy(pts)
    np.testing.assert_allclose(d, d[0], rtol=1e-10)


def test_non_finite_proposals_are_rejected_and_counted():
    rng = np.random.default_rng(9)
    lp = lambda x: np.where(x[:, 0] > 1.0, np.nan, -0.5 * np.sum(x * x, 1))
    x, info = samplers.mala(lp, np.zeros((500, 1)), 0.5, 50, rng, score_fn=lambda x: -x)
    assert np.all(x[:, 0] <= 1.0) and info["n_nonfinite"].sum() > 0
    x, info = samplers.rwmh(lp, np.zeros((500, 1)), 1.0, 50, rng)
    assert np.all(np.isfinite(x)) and info["n_nonfinite"].sum() > 0


def test_ula_divergence_is_reported_never_silent():
    rng = np.random.default_rng(10)
    with pytest.raises(FloatingPointError, match="every one of the 50 ULA chains diverged"):
        with np.errstate(all="ignore"):
            samplers.langevin(lambda x: -x**3, np.full((50, 1), 10.0), 1.0, 50, rng)
    x0 = np.concatenate([np.full((5, 1), 10.0), np.zeros((45, 1))])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="5 of 50 ULA chains diverged"):
        _, info = samplers.langevin(lambda x: -x**3, x0, 0.05, 30, rng)
    assert info["n_diverged"] == 5 and info["diverged"][:5].all()


def test_samplers_agree_across_backends_with_the_same_seed(bk):
    g = GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.0, 1.0]], [0.5, 1.0], backend=bk.name)
    gn = GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.0, 1.0]], [0.5, 1.0])
    x0 = np.random.default_rng(0).normal(size=(64, 2))
    np_bk = type(bk)  # noqa: F841
    from refscore import backends

    nb = backends.get("numpy")
    runs = [
        (lambda B, G, r: samplers.langevin(G.score, B.asarray(x0), 0.1, 5, r)[0]),
        (lambda B, G, r: samplers.mala(G.unnormalized_log_prob, B.asarray(x0), 0.1, 5, r, score_fn=G.score)[0]),
        (lambda B, G, r: samplers.rwmh(G.unnormalized_log_prob, B.asarray(x0), 0.5, 5, r)[0]),
        (lambda B, G, r: samplers.annealed_langevin(lambda y, s: G.perturbed(s).score(y), B.asarray(x0),
                                                    [1.0, 0.5], 0.05, 3, r)[0]),
    ]
    if bk.name == "cupy":
        pytest.skip("cupy draws different random numbers: its parity is checked statistically (test_gpu.py)")
    for run in runs:
        np.testing.assert_allclose(to_np(run(bk, g, bk.rng(3))), run(nb, gn, nb.rng(3)), rtol=1e-10, atol=1e-12)


def test_keep_every_and_argument_errors():
    rng = np.random.default_rng(0)
    x, info = samplers.langevin(STD.score, np.zeros((3, 1)), 0.1, 10, rng, keep_every=5)
    assert info["trajectory"].shape == (2, 3, 1) and np.array_equal(info["trajectory"][-1], x)
    with pytest.raises(ValueError, match="step_size must be positive"):
        samplers.mala(STD.unnormalized_log_prob, np.zeros((3, 1)), -0.1, 10, rng)
    with pytest.raises(ValueError, match="x0 must be a 2-D array"):
        samplers.langevin(STD.score, np.zeros(3), 0.1, 10, rng)
    with pytest.raises(ValueError, match="sigmas must be strictly decreasing"):
        samplers.annealed_langevin(lambda x, s: -x, np.zeros((3, 1)), [0.1, 1.0], 0.1, 2, rng)
    with pytest.raises(TypeError, match="rng must be"):
        samplers.langevin(STD.score, np.zeros((3, 1)), 0.1, 10, 42)


# ---------------------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------------------
def test_ess_of_ar1_matches_theory_and_rhat_flags_stuck_chains():
    """AR(1) chains x_t = ρx_{t-1} + z_t: integrated autocorrelation time τ = (1+ρ)/(1-ρ), so
    ESS = nm/τ. R independent replicates give the standard errors; split-R̂ of stationary chains
    is 1 + (τ-1)/(2n') for halves of length n' (E[B/n'] = τσ²/n', E[W] ≈ σ²(1 - (τ-1)/n'))."""
    rng = np.random.default_rng(11)
    rho, n, m, R = 0.8, 4000, 8, 25
    x = np.zeros((n, m * R))
    x[0] = rng.standard_normal(m * R) / math.sqrt(1 - rho**2)
    z = rng.standard_normal((n, m * R))
    for t in range(1, n):
        x[t] = rho * x[t - 1] + z[t]
    reps = [x[:, r * m:(r + 1) * m] for r in range(R)]
    tau = (1 + rho) / (1 - rho)
    ratio = np.array([diagnostics.effective_sample_size(c)[0] for c in reps]) / (n * m / tau)
    assert abs(ratio.mean() - 1) < N_SE * ratio.std(ddof=1) / math.sqrt(R), ratio.mean()
    rhat = np.array([diagnostics.split_rhat(c)[0] for c in reps])
    expected = 1 + (tau - 1) / (2 * (n // 2))
    assert abs(rhat.mean() - expected) < N_SE * rhat.std(ddof=1) / math.sqrt(R), (rhat.mean(), expected)
    x = reps[0]
    stuck = x + np.arange(m) * 3.0
    assert diagnostics.split_rhat(stuck)[0] > 1.5
    s = diagnostics.acceptance_summary({"acceptance_rate": np.array([0.5, 0.7])})
    assert s["mean"] == pytest.approx(0.6) and s["n_chains"] == 2
    with pytest.raises(ValueError, match="chains must be"):
        diagnostics.effective_sample_size(np.zeros(3))


def test_in_mode_share_of_exact_ring_samples_is_the_chi2_probability_and_uniform_noise_scores_less():
    """Exact samples: ||x-μ||²/s² ~ χ²₂, so P(within 3s) = 1 - exp(-9/2) = 0.9889 (the ring's modes
    are 10 s apart). Uniform points on the square of side 6: the eight discs of radius 3s lie
    inside it and do not overlap, so the share is their area, 8π(3s)²/36 = 0.141."""
    ring, n, s = datasets.gaussian_mixture_law(), 20000, 0.15
    mu = np.asarray(ring.means)
    p_exact, p_uniform = 1 - math.exp(-4.5), 8 * math.pi * (3 * s) ** 2 / 36
    exact = ring.sample(n, np.random.default_rng(0))
    uniform = np.random.default_rng(1).uniform(-3, 3, (n, 2))
    for x, p in [(exact, p_exact), (uniform, p_uniform)]:
        share = diagnostics.in_mode_share(x, mu, s)
        assert abs(share - p) < N_SE * math.sqrt(p * (1 - p) / n), (share, p)


def test_mode_weights_recover_unequal_mixture_weights():
    """Weights 0.4, 0.1, ... by nearest mode, each within 5 binomial SE sqrt(w(1-w)/n)."""
    w = np.array([0.4] + [0.6 / 7] * 7)
    means = np.asarray(datasets.gaussian_mixture_law().means)
    ring = GaussianMixture(w, means, [0.15**2] * 8)
    n = 20000
    got = diagnostics.mode_weights(ring.sample(n, np.random.default_rng(3)), ring.means)
    assert got.shape == (8,) and got.sum() == pytest.approx(1.0)
    assert np.all(np.abs(got - w) < N_SE * np.sqrt(w * (1 - w) / n)), (got, w)
    with pytest.raises(ValueError, match="same d"):
        diagnostics.mode_weights(np.zeros((3, 2)), np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------
# the one sampler record
# ---------------------------------------------------------------------------------------
_X0 = np.random.default_rng(12).normal(size=(6, 2))
_G2 = Gaussian([0.0, 0.0], np.eye(2))
_RBM = GaussianBernoulliRBM(np.full((2, 3), 0.1), np.zeros(2), np.zeros(3))
DRIVERS = {
    "langevin": (lambda r: samplers.langevin(_G2.score, _X0, 0.1, 6, r, keep_every=2), False),
    "annealed": (lambda r: samplers.annealed_langevin(lambda y, s: -y / (1 + s * s), _X0, [1.0, 0.5], 0.1, 3, r,
                                                      keep_every=2), False),
    "gibbs": (lambda r: samplers.rbm_gibbs(_RBM, _X0, 6, r, keep_every=2), False),
    "mala": (lambda r: samplers.mala(_G2.unnormalized_log_prob, _X0, 0.1, 6, r, keep_every=2,
                                     record_accepted=True), True),
    "rwmh": (lambda r: samplers.rwmh(_G2.unnormalized_log_prob, _X0, 0.5, 6, r, keep_every=2,
                                     record_accepted=True), True),
}


@pytest.mark.parametrize("name", list(DRIVERS))
def test_every_driver_returns_the_same_record(name):
    run, metropolis = DRIVERS[name]
    x, info = run(np.random.default_rng(13))
    extra = {"step_sizes", "hidden", "state"}  # driver-specific additions, documented per driver
    core = {"n_steps", "diverged", "n_diverged", "trajectory"}
    mh = {"acceptance_rate", "n_nonfinite", "is_accepted"}
    assert set(info) - extra == (core | mh if metropolis else core)
    assert set(info) - extra <= set(samplers.SAMPLER_INFO)
    assert info["n_steps"] == 6 and info["diverged"].shape == (6,) and info["diverged"].dtype == bool
    assert info["n_diverged"] == 0 and info["trajectory"].shape == (3, 6, 2)
    np.testing.assert_array_equal(info["trajectory"][-1], x)
    if metropolis:
        acc = info["is_accepted"]
        assert acc.shape == (6, 6) and acc.dtype == bool
        np.testing.assert_allclose(info["acceptance_rate"], acc.mean(0), rtol=1e-15)


_FAMILIES = {"langevin": "ChainInfo", "annealed": "AnnealedInfo", "gibbs": "GibbsInfo", "mala": "MetropolisInfo",
             "rwmh": "MetropolisInfo"}


@pytest.mark.parametrize("name", list(DRIVERS))
def test_every_record_is_typed_frozen_and_read_by_key(name):
    """Issue 31: `info` is a frozen dataclass per sampler family (like StepResult), and still a
    mapping where the docs promise keys: info["n_diverged"] is info.n_diverged."""
    import dataclasses

    from refscore.samplers import chain

    run, metropolis = DRIVERS[name]
    _, info = run(np.random.default_rng(13))
    assert type(info) is getattr(chain, _FAMILIES[name]) and isinstance(info, chain.ChainInfo)
    for key in info:
        assert info[key] is getattr(info, key)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.n_diverged = 1
    if metropolis:  # record_accepted=False: is_accepted None as a field, absent as a key
        plain = samplers.mala(_G2.unnormalized_log_prob, _X0, 0.1, 6, np.random.default_rng(13))[1]
        assert plain.is_accepted is None and "is_accepted" not in plain and "trajectory" not in plain
        with pytest.raises(KeyError):
            plain["is_accepted"]
        assert plain.state.position.shape == _X0.shape
    assert dict(info)["n_steps"] == info.n_steps == 6


def test_mala_takes_log_density_and_score_from_one_pass():
    calls = {"n": 0}

    def lp(x):
        calls["n"] += 1
        return -0.5 * np.sum(x * x, 1)

    x_auto, _ = samplers.mala(lp, _X0, 0.3, 5, np.random.default_rng(14))
    assert calls["n"] == 5 + 1  # one evaluation per step (and one at the start), the score by its VJP
    x_closed, _ = samplers.mala(lp, _X0, 0.3, 5, np.random.default_rng(14), score_fn=lambda x: -x)
    np.testing.assert_allclose(x_auto, x_closed, rtol=1e-12)


def test_reverse_diffusion_carries_a_gaussian_to_its_law_at_the_last_level():
    # N(mu, s^2) perturbed at sigma is N(mu, V) with V = s^2 + sigma^2 and score -(x - mu)/V. One step
    # with gap g = sigma_i^2 - sigma_{i+1}^2 maps variance V_i to (1 - g/V_i)^2 V_i + g
    # = V_{i+1} + g^2/V_i (Song et al. 2021, eq. 47): the recursion below is what the chain must
    # reach, and a Langevin-scaled noise sqrt(2g) (or a missing one) lands far away
    from refscore.diffusion import karras_sigmas

    bk = backends.get("numpy")
    mu, s2, n = 1.0, 0.25, 20_000
    sig = karras_sigmas(np.arange(60), 60, 0.05, 20.0)
    score = lambda x, sigma: -(x - mu) / (s2 + sigma * sigma)
    x0 = mu + np.sqrt(s2 + sig[0] ** 2) * bk.normal(bk.rng(3), (n, 1))
    x, info = samplers.reverse_diffusion(score, x0, sig, bk.rng(4), final_denoise=False)

    def final_variance(levels):
        v = s2 + levels[0] ** 2
        for a, b in zip(levels[:-1], levels[1:]):
            g = a * a - b * b
            v = (1 - g / (s2 + a * a)) ** 2 * v + g
        return v

    v = final_variance(sig)
    assert info["n_diverged"] == 0 and info["n_steps"] == 59
    assert abs(x.mean() - mu) < 4 * np.sqrt(v / n)
    assert abs(x.var() - v) < 4 * v * np.sqrt(2 / (n - 1))
    # the recursion's excess sum g^2/V is first order in the gaps: four times the levels, a quarter of it
    excess = lambda N: final_variance(karras_sigmas(np.arange(N), N, 0.05, 20.0)) - (s2 + 0.05**2)
    assert 0 < excess(240) < excess(60) / 2
    # the final Tweedie step gives the posterior mean E[x0 | x], whose variance is s^4 / V_N
    xd, _ = samplers.reverse_diffusion(score, x0, sig, bk.rng(4), final_denoise=True)
    np.testing.assert_allclose(xd, mu + (x - mu) * s2 / (s2 + sig[-1] ** 2), rtol=1e-12, atol=1e-15)


def test_reverse_diffusion_move_and_its_checks():
    x, s, z = np.ones((2, 3)), np.full((2, 3), 2.0), np.full((2, 3), -1.0)
    np.testing.assert_allclose(samplers.reverse_diffusion_move(x, s, 2.0, 1.0, z), 1 + 3 * 2.0 - np.sqrt(3.0))
    bk = backends.get("numpy")
    with pytest.raises(ValueError, match="at least two levels"):
        samplers.reverse_diffusion(lambda y, t: -y, np.zeros((2, 1)), [1.0], bk.rng(0))
    with pytest.raises(ValueError, match="decreasing"):
        samplers.reverse_diffusion(lambda y, t: -y, np.zeros((2, 1)), [1.0, 2.0], bk.rng(0))
