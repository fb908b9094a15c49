"""Every bad or edge-case input gets an answer (issue 20): either the correct result, or an
exception whose type and words say what was wrong, with the bad value, and what to do."""
import math

import autograd.numpy as anp
import numpy as np
import pytest

from refscore import datasets, diagnostics, losses, partition, samplers, sde
from refscore.energies import Energy, Gaussian, GaussianMixture, MLPEnergy
from refscore.pytree import tree_leaves
from refscore.training import train

RNG = np.random.default_rng
X = RNG(0).normal(size=(6, 2))
SCORE = lambda y: -y


def _mixture():
    return GaussianMixture([0.3, 0.7], [[-1.0, 0.0], [1.0, 0.5]], [0.5, 0.8])


# ----- integers are cast to the default float dtype -----
@pytest.mark.parametrize("loss", ["ssm", "dsm", "ism", "esm", "vp_denoising", "esm_ism_gap"])
def test_integer_data_are_cast_to_float64_in_every_loss(loss):
    xi = np.arange(12).reshape(6, 2)
    call = {
        "ssm": lambda x: losses.ssm(SCORE, x, RNG(1)),
        "dsm": lambda x: losses.dsm(SCORE, x, 0.5, RNG(1)),
        "ism": lambda x: losses.ism(SCORE, x),
        "esm": lambda x: losses.esm(SCORE, x, lambda y: -2 * y),
        "vp_denoising": lambda x: losses.vp_denoising(lambda y, b: -y, x, 0.3, RNG(1)),
        "esm_ism_gap": lambda x: losses.esm_ism_gap(lambda y: -y, x),
    }[loss]
    got = call(xi)
    assert got.dtype == np.float64 and got == call(xi.astype(np.float64))


def test_fit_casts_integer_data():
    data = RNG(0).integers(-3, 4, size=(64, 2))
    model = MLPEnergy(2, (4,), rng=RNG(0))
    loss = lambda p, b, r: losses.dsm(model.score_fn(p), b, 0.5, r)
    params, hist = train.fit(loss, model.params, data, RNG(1), n_steps=3, batch_size=8, progress_bar=False,
                             eval_data=data[:16], log_every=3)
    assert len(hist["loss"]) == 3 and math.isfinite(hist["eval_loss"][0]) and all(math.isfinite(v) for v in hist["loss"])
    assert all(leaf.dtype == np.float64 for _, leaf in tree_leaves(params))


# ----- explicit randomness must have x's shape -----
def test_a_one_row_z_in_dsm_is_refused_not_broadcast():
    with pytest.raises(ValueError, match=r"z must have shape \(6, 2\) .*never broadcast.*got shape \(1, 2\)"):
        losses.dsm(SCORE, X, 0.5, z=np.zeros((1, 2)))


@pytest.mark.parametrize("call, words", [
    (lambda: losses.dsm(SCORE, X, 0.5, z=np.zeros((6, 3))), r"z must have shape \(6, 2\).*got shape \(6, 3\)"),
    (lambda: losses.vp_denoising(lambda y, b: -y, X, 0.3, eps=np.zeros((1, 2))),
     r"eps must have shape \(6, 2\).*got shape \(1, 2\)"),
    (lambda: losses.ssm(SCORE, X, v=np.zeros((6, 2))), r"v must have shape \(M, 6, 2\).*got \(6, 2\)"),
    (lambda: losses.ssm(SCORE, X, v=np.zeros((3, 6, 5))), r"v must have shape \(M, 6, 2\).*got \(3, 6, 5\)"),
    (lambda: losses.ncsn(lambda y, s: -y, X, [1.0, 0.5], z=np.zeros((2, 1, 2))),
     r"z must have shape \(2, 6, 2\).*got shape \(2, 1, 2\)"),
])
def test_explicit_noise_of_the_wrong_shape_is_named(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_explicit_noise_of_the_right_shape_is_used():
    z = RNG(2).normal(size=X.shape)
    expected = 0.5 * np.mean(np.sum((-(X + 0.5 * z) + z / 0.5) ** 2, axis=1))
    assert np.isclose(losses.dsm(SCORE, X, 0.5, z=z), expected, rtol=1e-12)


# ----- beta of the VP objective -----
def test_beta_as_a_list_or_numpy_scalar_works():
    eps = RNG(3).normal(size=X.shape)
    f = lambda y, b: -y
    ref = losses.vp_denoising(f, X, 0.3, eps=eps)
    assert losses.vp_denoising(f, X, np.float32(0.3), eps=eps) == pytest.approx(float(ref), rel=1e-7)
    assert losses.vp_denoising(f, X, [0.3] * 6, eps=eps) == pytest.approx(float(ref), rel=1e-12)
    assert losses.vp_denoising(f, X, np.full(6, 0.3), eps=eps) == pytest.approx(float(ref), rel=1e-12)


@pytest.mark.parametrize("beta, words", [
    (1.5, r"beta must lie in \(0, 1\), got 1.5"),
    (np.float32(-0.25), r"beta must be positive and finite, got -0.25"),
    ([0.3, 0.3, 0.3, 1.5, 0.3, 0.3], r"every beta must lie in \(0, 1\), got 1.5 at index 3"),
    ([0.3, 0.3], r"beta must be a number or an array of shape \(6,\) \(one per row\), got shape \(2,\)"),
])
def test_an_out_of_range_beta_is_shown(beta, words):
    with pytest.raises(ValueError, match=words):
        losses.vp_denoising(lambda y, b: -y, X, beta, RNG(0))


# ----- dsm_esm_gap -----
def test_dsm_esm_gap_refuses_what_is_not_a_law():
    with pytest.raises(TypeError, match="data must be the law of the data as a refscore.energies.Gaussian "
                                        "or GaussianMixture.*got ndarray"):
        losses.dsm_esm_gap(X, 0.5)


def test_dsm_esm_gap_needs_two_monte_carlo_samples_for_a_standard_error():
    with pytest.raises(ValueError, match="n_mc must be an integer >= 2, got 1"):
        losses.dsm_esm_gap(_mixture(), 0.5, method="mc", rng=RNG(0), n_mc=1, return_stderr=True)
    value, se = losses.dsm_esm_gap(_mixture(), 0.5, method="mc", rng=RNG(0), n_mc=2, return_stderr=True)
    assert math.isfinite(value) and math.isfinite(se) and se > 0


# ----- diagnostics -----
def test_acceptance_summary_of_a_langevin_run_says_ula_never_accepts():
    g = Gaussian(np.zeros(2), np.eye(2))
    _, info = samplers.langevin(g.score, np.zeros((3, 2)), 0.1, 5, RNG(0))
    with pytest.raises(ValueError, match=r"info has no 'acceptance_rate': only Metropolis samplers \(mala, rwmh\)"):
        diagnostics.acceptance_summary(info)
    with pytest.raises(TypeError, match="info must be the record a sampler returns"):
        diagnostics.acceptance_summary([0.5])


@pytest.mark.parametrize("x, rng, error, words", [
    (np.array([[0.0, np.nan], [1.0, 2.0]]), None, ValueError, r"x contains NaN or inf in 1 of 2 rows \(row 0 first\)"),
    (np.zeros((0, 2)), None, ValueError, r"x is empty \(shape \(0, 2\)\)"),
    (np.zeros((4, 3)), None, ValueError, r"same d, got \(4, 3\) and \(5, 2\)"),
    (np.zeros((4, 2)), 0, TypeError, r"rng must be a numpy.random.Generator \(np.random.default_rng\(seed\)\), got 0"),
])
def test_sliced_wasserstein_bad_inputs(x, rng, error, words):
    with pytest.raises(error, match=words):
        diagnostics.sliced_wasserstein(x, RNG(1).normal(size=(5, 2)), rng=rng)


def test_sliced_wasserstein_sort_quantiles_equal_numpys_quantiles():
    """The sort-based quantiles are NumPy's linear-interpolation quantiles at k/(K+1)."""
    x, y = RNG(1).normal(size=(300, 3)), RNG(2).normal(size=(200, 3)) + 0.5
    th = RNG(0).standard_normal((3, 128))
    th /= np.linalg.norm(th, axis=0)
    qs = np.linspace(0, 1, 202)[1:-1]
    ref = np.sqrt(np.mean((np.quantile(x @ th, qs, axis=0) - np.quantile(y @ th, qs, axis=0)) ** 2))
    assert diagnostics.sliced_wasserstein(x, y) == pytest.approx(ref, rel=1e-12)
    assert diagnostics.sliced_wasserstein(x, x) == 0.0


# ----- SDE times, data-set noise, quadrature bounds, perturbed laws -----
@pytest.mark.parametrize("make", [lambda: sde.VESDE(0.01, 10.0), lambda: sde.VPSDE()])
@pytest.mark.parametrize("t, words", [(-0.1, r"got -0.1$"), (1.5, r"got 1.5$"),
                                      (np.array([0.1, 0.2, 1.2]), r"got 1.2 \(entry 2\)")])
def test_marginal_prob_outside_the_time_horizon(make, t, words):
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\], the SDE's time horizon.*" + words):
        make().marginal_prob(np.zeros((3, 2)), t)


@pytest.mark.parametrize("noise, error, words", [
    (float("nan"), ValueError, "noise must be finite, got nan"),
    (-1, ValueError, "noise is a standard deviation and must be >= 0, got -1"),
    ("0.1", TypeError, "noise must be a real number, got '0.1'"),
])
def test_datasets_refuse_bad_noise(noise, error, words):
    with pytest.raises(error, match=words):
        datasets.make("two_moons", 10, RNG(0), noise=noise)
    assert datasets.make("two_moons", 10, RNG(0), noise=0.0).shape == (10, 2)


@pytest.mark.parametrize("bounds, error, words", [
    ((-5, 5), TypeError, r"bounds must be a list of 1 \(low, high\) pairs.*like \[\(-5, 5\)\]; got the flat pair "
                         r"\(-5, 5\): wrap it in a list"),
    ([(-np.inf, np.inf)], ValueError, r"bounds must be finite: dimension 0 is \(-inf, inf\)"),
    ([(-5, np.inf)], ValueError, r"bounds must be finite: dimension 0 is \(-5.0, inf\)"),
    ([(5, -5)], ValueError, r"bounds need low < high: dimension 0 is \(5.0, -5.0\)"),
])
def test_quadrature_bounds(bounds, error, words):
    with pytest.raises(error, match=words):
        partition.log_partition_quadrature(Gaussian(np.zeros(1), np.eye(1)), bounds)


def test_perturbed_with_a_huge_sigma_names_sigma():
    with pytest.raises(ValueError, match=r"sigma=1e\+200 is too large.*sigma must be below 1.34e\+154"):
        _mixture().perturbed(1e200)


# ----- score functions autograd cannot trace -----
@pytest.mark.parametrize("loss", [lambda f: losses.ism(f, X), lambda f: losses.ssm(f, X, RNG(0))])
@pytest.mark.parametrize("score_fn", [lambda x: -np.asarray(x), lambda x: -np.asarray(x, dtype=float)])
def test_a_score_written_with_plain_numpy_says_use_autograd_numpy(loss, score_fn):
    with pytest.raises(TypeError, match="score_fn cannot be differentiated by autograd.*Write it with autograd.numpy"):
        loss(score_fn)


# ----- models and energies (refused at construction / on a wrong energy shape) -----
@pytest.mark.parametrize("hidden", [(0,), (4, -2)])
def test_mlp_energy_refuses_zero_and_negative_widths(hidden):
    with pytest.raises(ValueError, match=r"hidden must hold positive integer widths, got \[.*\]"):
        MLPEnergy(2, hidden, rng=RNG(0))


def test_an_energy_subclass_returning_a_scalar_is_refused():
    class Scalar(Energy):
        dim = 2

        def energy_unchecked(self, x):
            return anp.sum(x**2)

    with pytest.raises(ValueError, match=r"\(3,\)"):
        Scalar().energy(np.ones((3, 2)))
