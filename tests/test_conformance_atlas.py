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
