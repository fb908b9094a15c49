"""The NumPy backend's float32 normal generator (issue 25): Box–Muller over the Generator's bits.

Every tolerance is a multiple of a Monte Carlo standard error (5 SE, or a tail probability of
1e-6 for KS and χ² statistics, whose null laws are known), or, for the deterministic tail map,
the float32 rounding bound worked out beside the test. Seeds are fixed. A mutation test plants
the two classic Box–Muller bugs and shows these checks reject them.
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import special, stats

from refscore import backends, samplers
from refscore.backends.box_muller import MAX_RADIUS, box_muller, standard_normal_float32

NP = backends.get("numpy")
N = 2_000_000
ALPHA = 1e-6  # false-alarm probability of the KS and χ² checks


def _draws(seed=0, n=N):
    return NP.normal(NP.rng(seed), (n,), "float32")


def moments_ok(z):
    """Mean, variance, skewness, excess kurtosis within 5 standard errors of N(0, 1)'s 0, 1, 0, 0."""
    z = z.astype(np.float64)
    n = z.size
    got = (z.mean(), z.var(), stats.skew(z), stats.kurtosis(z))
    se = (1 / math.sqrt(n), math.sqrt(2 / n), math.sqrt(6 / n), math.sqrt(24 / n))
    return all(abs(g - e) < 5 * s for g, e, s in zip(got, (0.0, 1.0, 0.0, 0.0), se))


def pairs_independent(z1, z2):
    """Each Box–Muller pair: uncorrelated (SE 1/√m), E[z₁²z₂²] = 1 (Var z₁²z₂² = 9 − 1 = 8), and a
    10×10 grid of (Φ(z₁), Φ(z₂)) uniform by a χ²₉₉ test at level ALPHA."""
    z1, z2 = z1.astype(np.float64), z2.astype(np.float64)
    m = z1.size
    corr_ok = abs(np.mean(z1 * z2)) < 5 / math.sqrt(m)
    fourth_ok = abs(np.mean(z1**2 * z2**2) - 1) < 5 * math.sqrt(8 / m)
    cells = np.histogram2d(special.ndtr(z1), special.ndtr(z2), bins=10, range=[[0, 1], [0, 1]])[0]
    chi2 = ((cells - m / 100) ** 2 / (m / 100)).sum()
    return corr_ok and fourth_ok and chi2 < stats.chi2.isf(ALPHA, 99)


def test_dtype_shape_and_float64_unchanged():
    z = NP.normal(NP.rng(0), (3, 5), "float32")
    assert z.dtype == np.float32 and z.shape == (3, 5)
    assert NP.normal(NP.rng(0), (0, 2), np.float32).shape == (0, 2)
    np.testing.assert_array_equal(NP.normal(NP.rng(1), (4, 3)), np.random.default_rng(1).standard_normal((4, 3)))


@given(seed=st.integers(0, 2**32 - 1), shape=st.lists(st.integers(0, 7), min_size=1, max_size=3))
def test_same_seed_same_numbers_and_flat_draws_depend_on_the_count_only(seed, shape):
    a, b = NP.normal(NP.rng(seed), shape, "float32"), NP.normal(NP.rng(seed), shape, "float32")
    np.testing.assert_array_equal(a, b)
    flat = NP.normal(NP.rng(seed), (math.prod(shape),), "float32")
    np.testing.assert_array_equal(a.reshape(-1), flat)
    assert np.all(np.isfinite(a))


def test_checkpointed_state_resumes_the_same_draws():
    rng = NP.rng(5)
    NP.normal(rng, (7,), "float32")
    state = NP.rng_state(rng)
    a = NP.normal(rng, (101,), "float32")
    NP.set_rng_state(rng, state)
    np.testing.assert_array_equal(NP.normal(rng, (101,), "float32"), a)


def test_moments_match_the_standard_normal():
    assert moments_ok(_draws(0))


def test_kolmogorov_smirnov_against_the_normal_cdf():
    z = _draws(1)
    d = stats.kstest(z.astype(np.float64), "norm").statistic
    assert d < stats.kstwobign.isf(ALPHA) / math.sqrt(z.size)


@pytest.mark.parametrize("t", [3.0, 4.0, 5.0])
def test_tail_frequencies_within_5_standard_errors(t):
    """P(|z| > t) = erfc(t/√2) from 2·10⁷ draws: a binomial count, 5 SE (Poisson for rare t)."""
    rng, n, count = NP.rng(2), 0, 0
    for _ in range(10):
        z = NP.normal(rng, (N,), "float32")
        count, n = count + int(np.count_nonzero(np.abs(z) > t)), n + z.size
    p = math.erfc(t / math.sqrt(2))
    assert abs(count - n * p) < 5 * math.sqrt(n * p * (1 - p)) + 1


def tail_map_ok(radius_of, t):
    """With θ = 0 a draw is the radius R(k₁) = √(−2 log((k₁ + ½)2⁻³²)), so #{k₁ : R > t} must be
    c* = e^{−t²/2}·2³² up to one step of k₁, plus the k₁ whose R lies within float32 rounding
    of t: dk₁/dR = c*·R, and R carries ≤ 4 roundings (mul, add, log, sqrt) of 2⁻²⁴ relative
    each, so at most c*·t²·4·2⁻²⁴ more."""
    c_star = math.exp(-t * t / 2) * 2.0**32
    k1 = np.arange(int(2 * c_star) + 16, dtype=np.uint32)
    count = int(np.count_nonzero(radius_of(k1) > t))
    return abs(count - c_star) <= 1 + c_star * t * t * 4 * 2.0**-24


def radius(k1):
    """The generator's radius for each k₁ (θ = 0, so z₁ = R exactly)."""
    return box_muller(k1, np.zeros_like(k1))[: k1.size]


@pytest.mark.parametrize("t", [4.0, 5.0, 6.0, 6.5])
def test_the_radius_map_is_exact_in_the_tail_to_beyond_6_sigma(t):
    assert tail_map_ok(radius, t)


def test_the_largest_radius_is_the_documented_one():
    assert radius(np.zeros(1, np.uint32))[0] == pytest.approx(math.sqrt(33 * 2 * math.log(2)), rel=1e-6)
    assert MAX_RADIUS == pytest.approx(math.sqrt(33 * 2 * math.log(2)))


def test_the_two_members_of_each_pair_and_neighbours_are_independent():
    z = _draws(3)
    m = z.size // 2
    assert pairs_independent(z[:m], z[m:])        # the Box–Muller pairs (z₁ first half, z₂ second)
    assert pairs_independent(z[0:-1:2], z[1::2])  # neighbours, e.g. the two coordinates of a 2-D chain


def test_the_checks_reject_planted_box_muller_bugs():
    """Mutation test: the checks above must fail on the two classic mistakes."""
    k = np.random.default_rng(4).integers(0, 2**32, size=(2, N // 2), dtype=np.uint32)
    z = box_muller(k[0], k[0])  # one uniform for both radius and angle: dependent pairs
    assert not pairs_independent(z[: N // 2], z[N // 2:])
    # u₁ from 24 bits, as NumPy's float32 `random` makes them: u₁ ≥ 2⁻²⁴, so R ≤ 5.77 < 6
    radius_24 = lambda k1: np.sqrt(np.float32(-2) * np.log(((k1 >> 8) + 1).astype(np.float32) * np.float32(2.0**-24)))
    assert not tail_map_ok(radius_24, 6.0)
    cos_only = box_muller(k[0], k[1])[: N // 2] * np.float32(1.2)  # a wrong scale
    assert not moments_ok(cos_only)


def test_samplers_and_losses_draw_their_noise_through_it():
    from refscore import losses

    x = np.zeros((1000, 2), np.float32)
    y = samplers.langevin_step(x, lambda a: -a, 0.5, NP.rng(6))
    np.testing.assert_allclose(y, standard_normal_float32(np.random.default_rng(6), (1000, 2)), rtol=1e-6)
    v = losses.projections(NP.rng(7), (1, 10, 2), dtype="float32")
    np.testing.assert_array_equal(v, standard_normal_float32(np.random.default_rng(7), (1, 10, 2)))
    z = standard_normal_float32(np.random.default_rng(8), (1000, 2))
    loss = losses.dsm(lambda a: 0 * a, x, 1.0, NP.rng(8))  # x = 0, σ = 1, s = 0: ½E||z||²
    assert loss.dtype == np.float32 and loss == pytest.approx(0.5 * np.mean(np.sum(z * z, 1)), rel=1e-5)
