"""Issue 32: a case's model as another library's functions (refscore.conformance.frameworks, and
refscore.conformance.torch where PyTorch is installed). The NumPy namespace is checked against
refscore's own models (autograd for the MLP, closed forms for the Gaussians); the PyTorch one
against the NumPy one and by a green verify of a user's torch DSM."""
import numpy as np
import pytest

from refscore import conformance
from refscore.conformance import frameworks, models

KINDS = [("quadratic", "ve"), ("mlp", "ve"), ("gaussian_family", "ve"), ("gaussian_family", "vp")]


@pytest.mark.parametrize("kind,param", KINDS)
def test_numpy_functions_agree_with_refscore_models(kind, param):
    rng = np.random.default_rng(7)
    model = models.random_model(kind, 4, rng, parametrization=param)
    x, level = rng.standard_normal((5, 4)), rng.uniform(0.1, 0.9, 5)
    energy, score, _ = frameworks.model_functions(model)
    want = models.noise_conditional_score_fn(model)(x, level)
    assert np.allclose(score(x, level), want, rtol=1e-12, atol=1e-12)
    h = 1e-6  # the score is −∇E: central differences, error O(h²)
    for j in range(4):
        e = np.eye(4)[j] * h
        assert np.allclose(-(energy(x + e, level) - energy(x - e, level)) / (2 * h), want[:, j], rtol=1e-6, atol=1e-6)


def test_the_denoiser_is_tweedies_and_a_level_is_required():
    rng = np.random.default_rng(3)
    model = models.random_model("gaussian_family", 3, rng)
    x, sigma = rng.standard_normal((4, 3)), rng.uniform(0.1, 2.0, 4)
    _, score, denoiser = frameworks.model_functions(model)
    assert np.allclose(denoiser(x, sigma), x + sigma[:, None] ** 2 * score(x, sigma), rtol=1e-14)
    with pytest.raises(ValueError, match="needs its noise level"):
        score(x)
    with pytest.raises(ValueError, match="model kind must be"):
        frameworks.model_functions({"kind": "spline"})


def dsm_from(score_of, as_array):
    """A user's DSM written against score_of(model)(x, level): the same code for NumPy and torch."""
    def dsm(case):
        n, sigma = len(case["x"]), case["sigma"]
        x, z = as_array(case["x"]).reshape(n, -1), as_array(case["z"]).reshape(n, -1)
        s = score_of(case["model"])(x + sigma * z, sigma)
        return 0.5 * ((s + z / sigma) ** 2).sum(1)
    return dsm


def test_a_users_dsm_on_the_numpy_namespace_passes():
    assert conformance.verify("dsm", dsm_from(lambda m: frameworks.model_functions(m)[1], np.asarray)).passed


def test_the_torch_adapter_matches_numpy_and_passes_a_dsm_case():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed here (it is optional: pip install torch)")
    from refscore.conformance import torch as ct

    for kind, param in KINDS:
        model = models.random_model(kind, 3, np.random.default_rng(1), parametrization=param)
        x = np.random.default_rng(2).standard_normal((4, 3))
        got = ct.score_fn(model)(torch.as_tensor(x), 0.5).numpy()
        assert np.allclose(got, frameworks.model_functions(model)[1](x, 0.5), rtol=1e-12)
        assert ct.tensors({"x": x, "t": np.arange(4)})["t"].dtype == torch.int64
    assert conformance.verify("dsm", dsm_from(ct.score_fn, lambda a: torch.as_tensor(a, dtype=torch.float64))).passed


def test_the_jax_adapter_matches_numpy_and_passes_a_dsm_case():
    jax = pytest.importorskip("jax", reason="JAX is not installed here (it is optional: pip install jax)")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from refscore.conformance import jax as cj

    for kind, param in KINDS:
        model = models.random_model(kind, 3, np.random.default_rng(1), parametrization=param)
        x = np.random.default_rng(2).standard_normal((4, 3))
        got = np.asarray(cj.score_fn(model)(jnp.asarray(x), 0.5))
        assert np.allclose(got, frameworks.model_functions(model)[1](x, 0.5), rtol=1e-12)
    assert conformance.verify("dsm", dsm_from(cj.score_fn, jnp.asarray)).passed


def test_a_wrapper_handing_sigma_to_its_inner_model_is_named_a_convention():
    """k-diffusion's Denoiser passes σ itself as the inner model's noise input (its models take ¼ ln σ)."""
    def precond(case):
        s, sd = case["sigma"], case["sigma_data"]
        r = np.sqrt(s * s + sd * sd)
        return np.stack([sd * sd / r**2, s * sd / r, 1 / r, s], 1)
    report = conformance.verify("edm_precond", precond)
    assert not report.passed
    assert all(row.conventions == ("c_noise left to the inner model",) for row in report.rows)
    assert conformance.verify("edm_precond", precond, variant="c_noise left to the inner model").passed


def test_an_euler_step_denoising_before_the_churn_is_named():
    """diffusers' EulerDiscreteScheduler with s_churn > 0: the model output was computed on x at σ,
    before step() adds the churn, and is used for x̂ at σ̂ (written here in NumPy as it computes)."""
    def euler(case):
        n = len(case["x"])
        x, z = case["x"].reshape(n, -1), case["z"].reshape(n, -1)
        s, s_hat = case["sigma"], case["sigma"] * (1 + case["gamma"])
        x_hat = x + (np.sqrt(s_hat**2 - s**2) * case["S_noise"])[:, None] * z
        denoised = frameworks.model_functions(case["model"])[2](x, s)  # D(x, σ): before the churn
        return (x_hat + ((case["sigma_next"] - s_hat) / s_hat)[:, None] * (x_hat - denoised)).reshape(case["x"].shape)
    report = conformance.verify("edm_euler_step", euler)
    assert not report.passed
    assert all(row.faults == ("denoised before the churn",) for row in report.rows if not row.passed)
