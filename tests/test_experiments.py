"""The open-question experiments (seed 004_…, Q2.1/Q2.2) run and say what the notes ask.

Every measured number is compared with its closed form within N_SE standard errors, the standard
error computed from the same samples (refscore.apps.experiments.variance_stderr)."""
import numpy as np

from refscore.apps import experiments

N_SE = 5.0


def test_dsm_variance_explodes_as_sigma_shrinks():
    t = experiments.dsm_variance_vs_sigma(sigmas=(0.05, 0.2, 1.0), n=4000)
    var, se, closed = t.column("var loss"), t.column("SE of var loss"), t.column("var loss (closed form)")
    assert np.all(np.abs(var - closed) < N_SE * se), (var, closed, se)
    assert np.all(var[:-1] - N_SE * se[:-1] > var[1:] + N_SE * se[1:])  # explodes as σ shrinks (Q2.1)
    assert "| sigma |" in t.markdown()


def test_dsm_bias_grows_with_sigma_and_fit_matches_the_perturbed_optimum():
    t = experiments.dsm_bias_vs_sigma(sigmas=(0.1, 1.0), n=20000)
    bias = t.column("rel. error of (S+s^2 I)^-1 vs S^-1")
    assert bias[0] < bias[1]
    err, se = t.column("rel. error of fitted P vs (S+s^2 I)^-1"), t.column("SE of that error")
    assert np.all(err < N_SE * se), (err, se)


def test_ssm_variance_matches_the_closed_form_and_falls_with_m():
    t = experiments.ssm_variance_vs_projections(Ms=(1, 8), n=4000)
    closed, measured, se = t.column("closed form"), t.column("measured var"), t.column("SE of measured var")
    assert np.all(np.abs(measured - closed) < N_SE * se), (measured, closed, se)
    assert np.all(measured[4:] + N_SE * se[4:] < measured[:4] - N_SE * se[:4])


def test_variance_stderr_matches_the_gaussian_formula():
    # for N(0, v) data the SE of the sample variance is v·sqrt(2/n). The estimate uses μ4 - σ⁴,
    # whose relative SE is sqrt(Var(c⁴))/(2v²√n) = sqrt(96)/(2√n) (Gaussian μ8 = 105v⁴), halved by the sqrt
    n = 200_000
    x = np.random.default_rng(0).normal(0, 3.0, n)
    rel_se = 0.5 * np.sqrt(96.0) / (2 * np.sqrt(n))
    assert abs(experiments.variance_stderr(x) / (9.0 * np.sqrt(2 / n)) - 1) < N_SE * rel_se
