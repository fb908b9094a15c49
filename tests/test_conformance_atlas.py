"""Issue 32: the verifier meets users' code where it is. A failing multi-output case names its
column; declined cases (NotImplementedError) are skipped and the rest still run; FILE.py:FUNC
imports the user's package from the current folder; an API taking one timestep is looped over the
examples; a convention can be the reference (variant); NaN from a known bug is still named."""
import pathlib
import sys

import numpy as np
import pytest
from conformance_atlas_impls import t_ddim
from test_conformance_diffusion import t_ancestral, t_posterior, t_reverse_step

from refscore import conformance
from refscore.apps.cli import main as cli_main
from refscore.apps.conformance_cli import load_callable
from refscore.conformance import testing, verify


def test_a_failing_multi_output_case_names_its_column():
    report = verify("ddpm_posterior", lambda c: t_posterior(c, "std for variance"))
    assert not report.passed and report.faults == ["std for variance"], str(report)
    assert "column 2 (variance β̃)" in str(report)


def test_nan_from_diffusers_fixed_large_log_is_named():
    report = verify("ddpm_ancestral_step", lambda c: t_ancestral(c, "√(log β) as the std (fixed_large_log)"))
    assert "returned NaN" in str(report) and report.faults == ["√(log β) as the std (fixed_large_log)"], str(report)


def _declines_images(c):
    if c["x"].ndim > 2:
        raise NotImplementedError("images are not supported")
    return t_ancestral(c, None)


def test_declined_cases_are_skipped_and_the_rest_still_run():
    report = verify("ddpm_ancestral_step", _declines_images)
    assert report.passed and [r.case for r in report.skipped] == ["ddpm_ancestral_step-large-img"], str(report)
    assert "1/1 cases pass (1 skipped)" in str(report) and "images are not supported" in str(report)
    broken = verify("ddpm_ancestral_step", lambda c: _declines_images(c) + 1.0)
    assert not broken.passed and len(broken.skipped) == 1


def test_a_report_where_every_case_is_declined_does_not_pass():
    def none(c):
        raise NotImplementedError("nothing")
    report = verify("ddpm_marginal", none)
    assert not report.passed and "0/0 cases pass (3 skipped) — no case ran" in str(report)


ADAPTER = """import numpy as np
from mypkg import ancestral  # the user's own package, importable from the current folder only


def step(case):
    if case["x"].ndim > 2:
        raise NotImplementedError("no images")
    return ancestral(case)
"""


def test_cli_file_adapter_imports_from_the_current_folder_and_skips_declined_cases(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from test_conformance_diffusion import t_ancestral\n\n"
                                     "def ancestral(c):\n    return t_ancestral(c, None)\n")
    (tmp_path / "adapters").mkdir()
    (tmp_path / "adapters" / "adapt.py").write_text(ADAPTER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).resolve().parent))
    assert callable(load_callable("adapters/adapt.py:step"))
    assert cli_main(["conformance", "verify", "ddpm_ancestral_step", "adapters/adapt.py:step"]) == 0
    assert "(1 skipped)" in capsys.readouterr().out


def test_one_at_a_time_loops_an_api_that_takes_one_timestep():
    def scheduler_step(c):  # a scheduler-like API: one integer t, a batch of one sample
        assert np.ndim(c["t"]) == 0 and c["x"].shape[0] == 1
        c = {**c, "t": np.array([int(c["t"])])}
        return t_ancestral(c, None)
    assert verify("ddpm_ancestral_step", conformance.one_at_a_time(scheduler_step)).passed

    def posterior_at(c):
        assert np.ndim(c["t"]) == 0
        return t_posterior({**c, "t": np.array([int(c["t"])])}, None)[0]  # (3,) for one t
    assert verify("ddpm_posterior", conformance.one_at_a_time(posterior_at)).passed


def test_a_convention_can_be_the_reference():
    impl = lambda c: t_reverse_step(c, "reverse-diffusion predictor (VE)")  # noqa: E731
    plain = verify("reverse_sde_step", impl, only="*ve*")
    assert not plain.passed and plain.conventions == ["reverse-diffusion predictor (VE)"], str(plain)
    assert "convention: reverse-diffusion predictor (VE) (" in str(plain)
    assert verify("reverse_sde_step", impl, only="*ve*", variant="reverse-diffusion predictor (VE)").passed
    clipped = lambda c: t_ddim(c, "clip_sample (x̂₀ clipped to [−1, 1])")  # noqa: E731
    assert verify("ddim_step", clipped, variant="clip_sample (x̂₀ clipped to [−1, 1])").passed
    with pytest.raises(ValueError, match="variant must be one of the conventions of 'ddim_step'"):
        verify("ddim_step", clipped, variant="no such variant")


def test_assert_case_skips_a_declined_case_and_hides_its_own_frames():
    case = next(c for c in conformance.cases("ddpm_ancestral_step") if c["x"].ndim > 2)
    with pytest.raises(pytest.skip.Exception, match="images are not supported"):
        testing.assert_case(_declines_images, case)
    assert "__tracebackhide__" in testing.assert_case.__code__.co_varnames


# ---- the references written in the record modules: mathematical facts ------------------------------
from refscore import diffusion  # noqa: E402
from refscore.conformance import objectives_edm_sampling as es, objectives_respaced as rs  # noqa: E402
from refscore.conformance import objectives_schedules as sch  # noqa: E402

BETAS = np.linspace(0.02, 0.3, 8)


def test_ddim_with_eta_one_over_one_step_is_the_ddpm_posterior():
    """Song, Meng & Ermon 2021, §4.1: η = 1 between neighbouring steps gives DDPM's posterior (eq. 7)."""
    rng = np.random.default_rng(0)
    t = np.arange(1, 8)
    x, eps, z = rng.standard_normal((3, 7, 3))
    c = {"betas": BETAS, "t": t, "t_prev": t - 1, "x": x, "model_output": eps, "z": z, "eta": 1.0,
         "prediction_type": "epsilon"}
    ab = np.cumprod(1 - BETAS)[t]
    x0 = (x - np.sqrt(1 - ab)[:, None] * eps) / np.sqrt(ab)[:, None]
    c0, ct, var = diffusion.posterior_coefficients(BETAS, t)
    want = c0[:, None] * x0 + ct[:, None] * x + np.sqrt(var)[:, None] * z
    assert np.allclose(sch.ddim_step(c), want, rtol=1e-12, atol=1e-12)
    assert np.allclose(rs.strided_posterior(c), np.stack([c0, ct, var], 1), rtol=1e-12, atol=1e-14)


def test_learned_range_ends_and_min_snr_weights_agree():
    c = {"betas": BETAS, "t": np.array([3, 7]), "t_prev": np.array([1, 4])}
    beta_p = 1 - np.cumprod(1 - BETAS)[[3, 7]] / np.cumprod(1 - BETAS)[[1, 4]]
    top = rs.learned_range_log_variance({**c, "model_var_values": np.ones(2)})
    assert np.allclose(top, np.log(beta_p), rtol=1e-12)
    bottom = rs.learned_range_log_variance({**c, "model_var_values": -np.ones(2)})
    assert np.all(bottom < top)  # β̃' < β'
    s = {"betas": np.linspace(1e-4, 0.02, 1000), "t": np.array([0, 100, 500, 999]), "gamma": 5.0}
    ab = np.cumprod(1 - s["betas"])[s["t"]]
    snr = ab / (1 - ab)
    x0 = sch.min_snr_weight({**s, "prediction_type": "sample"})
    assert np.allclose(sch.min_snr_weight({**s, "prediction_type": "epsilon"}) * snr, x0, rtol=1e-12)
    assert np.allclose(sch.min_snr_weight({**s, "prediction_type": "v_prediction"}) * (snr + 1), x0, rtol=1e-12)


def test_karras_list_ends_and_the_churn_bound():
    sig = es.sigma_list({"N": 8, "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "i": np.arange(9)})
    assert sig[0] == pytest.approx(80.0) and sig[7] == pytest.approx(0.002) and sig[8] == 0 and np.all(np.diff(sig) < 0)
    c = {"sigma": np.geomspace(0.01, 100, 9), "S_churn": 80.0, "N": 10, "S_tmin": 0.05, "S_tmax": 50.0}
    gamma, hat = es.edm_churn(c).T
    assert np.all(gamma <= np.sqrt(2) - 1) and np.all(hat >= c["sigma"]) and gamma[0] == 0 and gamma[-1] == 0


def test_heun_is_second_order_on_the_gaussian_flow():
    """For N(μ, I) data dx/dσ = σ(x − μ)/(1 + σ²), so x − μ ∝ √(1 + σ²) (Karras et al. 2022, eq. 4):
    halving one step divides Euler's local error by ~4 (O(h²)) and Heun's by ~8 (O(h³))."""
    mu = np.array([0.5, -1.0])
    model = {"kind": "gaussian_family", "mean": mu, "cov": np.eye(2), "parametrization": "ve"}
    x = np.array([[2.0, 1.0]])

    def error(h, heun):
        c = {"x": x, "z": 0 * x, "sigma": np.array([2.0]), "sigma_next": np.array([2.0 - h]),
             "gamma": np.zeros(1), "S_noise": 1.0, "model": model}
        exact = mu + (x - mu) * np.sqrt((1 + (2 - h) ** 2) / 5)
        return np.abs(es.edm_step(c, heun=heun) - exact).max()
    euler, heun = error(0.2, False) / error(0.1, False), error(0.2, True) / error(0.1, True)
    assert 3.5 < euler < 4.5 and 7 < heun < 9


PREDICTOR = """from test_conformance_diffusion import t_reverse_step


def pred(case):
    return t_reverse_step(case, "reverse-diffusion predictor (VE)")
"""


def test_cli_variant_passes_a_library_that_follows_the_convention(tmp_path, monkeypatch, capsys):
    (tmp_path / "sde.py").write_text(PREDICTOR)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).resolve().parent))
    argv = ["conformance", "verify", "reverse_sde_step", str(tmp_path / "sde.py") + ":pred", "--only", "*ve*"]
    assert cli_main(argv) == 1 and "convention: reverse-diffusion predictor (VE) (" in capsys.readouterr().out
    assert cli_main(argv + ["--variant", "reverse-diffusion predictor (VE)"]) == 0
    assert "variant 'reverse-diffusion predictor (VE)'" in capsys.readouterr().out
    assert cli_main(argv + ["--variant", "Euler"]) == 2
    assert "variant must be one of the conventions of 'reverse_sde_step'" in capsys.readouterr().err
