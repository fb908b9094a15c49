"""Issue 21 A: what real clients hit, written here in NumPy as the clients compute it. TorchEBM's
last-axis sliced SM, ebmkit's float32 σ, a finite-difference ISM with its trace divided by d, two
faults that coincide on a case, and the command line (exit status 0/1/2, --only, --rtol, list)."""
import pathlib
import sys

import numpy as np
import pytest
from test_conformance import t_ism, t_ncsn, t_score, t_ssm

from refscore import conformance
from refscore.apps.cli import main as cli_main
from refscore.conformance import verify
from refscore.conformance.models import flat, score_jacobian

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---- A.1 TorchEBM: SSM with dot products over the last axis, on (n, R, C) input ------------------
def test_last_axis_ssm_is_torchebms_formula_and_is_named():
    c = next(c for c in conformance.cases("ssm") if c["name"] == "ssm-mlp-img-gauss-M3")
    X, n = flat(c["x"]), len(c["x"])
    R, C = c["x"].shape[1:]
    s, J = t_score(c["model"])(X), score_jacobian(c["model"], X)
    by_hand = np.mean([(np.einsum("ni,nij,nj->n", v.reshape(n, -1), J, v.reshape(n, -1))
                        + 0.5 * np.sum(np.sum(v * s.reshape(n, R, C), -1) ** 2, -1)) / R for v in c["v"]], 0)
    got = t_ssm(c, "last-axis-only sum")
    assert np.allclose(got, by_hand, rtol=1e-12, atol=0)
    # the old model expected·C/d is not what last-axis code computes on fixed probes
    assert not np.allclose(got, c["expected"] * C / (R * C), rtol=1e-6)
    report = verify("ssm", lambda c: t_ssm(c, "last-axis-only sum"))
    assert report.faults == ["last-axis-only sum"], str(report)


# ---- A.2 ebmkit: σ stored as float32, everything else float64 ----------------------------------
def test_float32_sigma_is_diagnosed_as_float32_precision():
    def ncsn_f32_sigmas(c):
        return t_ncsn({**c, "sigmas": np.asarray(c["sigmas"], np.float32).astype(float)}, None)
    report = verify("ncsn", ncsn_f32_sigmas)
    assert not report.passed
    assert "agrees to float32 precision; something in the implementation computes in float32" in str(report)
    assert report.conventions == ["float32 precision"] and "convention: float32 precision (" in str(report)
    assert "× reference on every example" not in str(report)


# ---- A.3 finite-difference ISM (TorchEBM): O(ε²) error, and the trace divided by d -------------
def fd_ism(c, trace_over_d=False, eps=1e-4):
    X = flat(c["x"])
    s = t_score(c["model"])
    d = X.shape[1]
    tr = sum((s(X + eps * e)[:, i] - s(X - eps * e)[:, i]) / (2 * eps) for i, e in enumerate(np.eye(d)))
    return 0.5 * np.sum(s(X) ** 2, 1) + (tr / d if trace_over_d else tr)


def test_finite_difference_trace_over_d_is_named_on_every_case_mlp_included():
    report = verify("ism", lambda c: fd_ism(c, trace_over_d=True))
    assert {r.case for r in report.failures} >= {"ism-mlp-flat", "ism-mlp-img", "ism-mlp-chw"}
    assert all("trace divided by d" in r.faults for r in report.failures), str(report)
    assert report.faults == ["trace divided by d"]


def test_approximate_implementation_passes_with_its_own_tolerance():
    assert not verify("ism", fd_ism).passed  # O(ε²) error ≫ the float64 tolerance
    report = verify("ism", fd_ism, rtol=1e-6, atol=1e-8)
    assert report.passed, str(report)
    assert "rtol 1e-06, atol 1e-08" in str(report)


def test_a_merely_inaccurate_implementation_is_not_given_a_fault():
    report = verify("ism", lambda c: t_ism(c, None) * (1 + 1e-6))
    assert report.faults == [] and "no known fault matches" in str(report)


# ---- A.4 two faults that coincide on a case --------------------------------------------------
def test_coinciding_faults_are_both_named_with_the_cases_that_separate_them():
    report = verify("ssm", lambda c: t_ssm(c, "unit-sphere probes"))
    row = next(r for r in report.rows if r.case == "ssm-mlp-chw-radem-vr-M3")  # ‖v‖² = d, VR
    assert set(row.faults) == {"unit-sphere probes", "trace term divided by d"}
    assert "cannot be told apart here; the cases that separate them: ssm-quadratic-flat-gauss-M1" in row.diagnosis
    assert report.faults == ["unit-sphere probes"]  # the other cases decide


# ---- A.6 a random noise level per example ----------------------------------------------------
def test_random_level_cases_carry_each_examples_level_index():
    for c in conformance.cases("ncsn_sampled"):
        k = c["level_index"]
        assert k.shape == (len(c["x"]),) and k.dtype.kind == "i" and set(k) == set(range(len(c["sigmas"])))
        assert c["z"].shape == c["x"].shape


# ---- A.5 the command line ---------------------------------------------------------------------
ADAPTER = """
import numpy as np
from helper_dsm import dsm_terms          # a sibling module of this file

def good(c):
    return dsm_terms(c).sum(1)

def bad(c):
    return dsm_terms(c).sum(1) * 2.0

def broken(c):
    raise RuntimeError("CUDA out of memory")
"""
HELPER = """
import numpy as np

def dsm_terms(c):
    x = c["x"].reshape(len(c["x"]), -1)
    z, sig = c["z"].reshape(x.shape), c["sigma"]
    xt = x + sig * z
    return 0.5 * (c["model"]["b"] - xt @ c["model"]["A"] + z / sig) ** 2
"""


@pytest.fixture
def adapter(tmp_path):
    (tmp_path / "helper_dsm.py").write_text(HELPER)
    (tmp_path / "my_adapter.py").write_text(ADAPTER)
    yield tmp_path / "my_adapter.py"
    sys.modules.pop("helper_dsm", None)


def test_cli_exit_status_only_and_sibling_imports(adapter, capsys):
    only = ["--only", "*quadratic*"]
    assert cli_main(["conformance", "verify", "dsm", f"{adapter}:good", *only]) == 0
    assert cli_main(["conformance", "verify", "dsm", f"{adapter}:bad", *only]) == 1
    out = capsys.readouterr().out
    assert "1/1 cases pass" in out and "missing ½" in out
    assert cli_main(["conformance", "verify", "dsm", f"{adapter}:broken", *only]) == 2
    assert "CUDA out of memory" in capsys.readouterr().err
    assert cli_main(["conformance", "verify", "dsm", f"{adapter}:good", "--only", "nothing*"]) == 2
    assert cli_main(["conformance", "verify", "dsm", f"{adapter}:missing"]) == 2


def test_cli_rtol_atol(adapter, tmp_path):
    slightly_off = tmp_path / "off.py"
    slightly_off.write_text("from my_adapter import good\ndef f(c):\n    return good(c) * (1 + 1e-7)\n")
    argv = ["conformance", "verify", "dsm", f"{slightly_off}:f", "--only", "*quadratic*"]
    assert cli_main(argv) == 1
    assert cli_main(argv + ["--rtol", "1e-6"]) == 0


def test_cli_list_and_help(capsys):
    assert cli_main(["conformance", "list"]) == 0
    assert capsys.readouterr().out.split() == list(conformance.OBJECTIVES)
    assert cli_main(["conformance", "list", "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    known = [f for o in conformance.OBJECTIVES for f in conformance.faults_for(o)]
    n_conv = sum(f.convention for f in known)
    assert [line.split()[0] for line in lines[:-1]] == list(conformance.OBJECTIVES)
    assert lines[-1] == (f"{len(conformance.OBJECTIVES)} objectives, {len(conformance.cases())} cases, "
                         f"{len(known) - n_conv} known faults, {n_conv} conventions")
    with pytest.raises(SystemExit):
        cli_main(["conformance", "verify", "--help"])
    out = capsys.readouterr().out
    assert [o for o in conformance.OBJECTIVES if o not in out] == [], out


# ---- A.7 the helper for users' own test suites --------------------------------------------------
def test_pytest_params_and_the_example_test_file():
    params = conformance.pytest_params("dsm")
    assert [p.id for p in params] == [c["name"] for c in conformance.cases("dsm")]
    sys.path.insert(0, str(ROOT / "docs" / "examples"))
    try:
        import test_conformance_example as example
    finally:
        sys.path.pop(0)
    chosen = conformance.pytest_params("dsm", only="*quadratic*")
    assert chosen
    for p in chosen:
        example.test_my_dsm(*p.values)
    with pytest.raises(AssertionError, match="σ for σ²"):
        conformance.assert_case(lambda c: example.my_dsm({**c, "sigma": c["sigma"] ** 0.5}) * 0 + _sigma_fault(c),
                                chosen[0].values[0])


def _sigma_fault(c):
    x = c["x"].reshape(len(c["x"]), -1)
    z, sig = c["z"].reshape(x.shape), c["sigma"]
    xt = x + sig * z
    return 0.5 * np.sum((c["model"]["b"] - xt @ c["model"]["A"] + z) ** 2, 1)


# ---- A.7 the adapter recipe for a loss that draws its own noise (the NumPy analogue of torch.randn_like) --
def _library_dsm(x, A, b, sigma):
    """A 'library' loss that draws its own noise, as TorchEBM's does with torch.randn_like."""
    z = np.random.standard_normal(x.shape)
    xt = x + sigma * z
    return 0.5 * np.sum((b - xt @ A + (xt - x) / sigma**2) ** 2, axis=1)


def test_patching_the_noise_draw_feeds_the_case_randomness():
    from unittest import mock

    def adapter(c):
        x = c["x"].reshape(len(c["x"]), -1)
        queue = [c["z"].reshape(x.shape)]
        with mock.patch("numpy.random.standard_normal", lambda shape: queue.pop(0)):
            out = _library_dsm(x, c["model"]["A"], c["model"]["b"], c["sigma"])
        assert not queue, "the library drew fewer arrays than the case holds"
        return out
    assert verify("dsm", adapter, only="*quadratic*").passed
    assert not verify("dsm", lambda c: _library_dsm(flat(c["x"]), c["model"]["A"], c["model"]["b"], c["sigma"]),
                      only="*quadratic*").passed  # its own noise: not the case's


# ----- the CLI's bad inputs (issue 20): one line naming what is wrong, exit 2 --------------
def _adapter(tmp_path):
    (tmp_path / "adapt.py").write_text("import numpy as np\n\ndef nan_impl(case):\n"
                                       "    return np.full(len(case['x']), np.nan)\n")
    return tmp_path / "adapt.py"


@pytest.mark.parametrize("target, words", [
    ("{path}:nosuch", "has no function 'nosuch'; it defines ['nan_impl']"),
    ("{folder}/missing.py:f", "no file"),
])
def test_a_missing_adapter_is_one_line_and_exit_2(tmp_path, capsys, target, words):
    path = _adapter(tmp_path)
    assert cli_main(["conformance", "verify", "dsm", target.format(path=path, folder=tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_a_module_that_does_not_import_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["conformance", "verify", "dsm", "no_such_module_here:f"]) == 2
    assert "no module 'no_such_module_here' importable from" in capsys.readouterr().err


def test_nan_from_the_implementation_is_blamed_on_the_implementation(tmp_path, capsys):
    assert cli_main(["conformance", "verify", "dsm", f"{_adapter(tmp_path)}:nan_impl"]) == 1
    out = capsys.readouterr().out
    assert "the implementation returned NaN at example 0" in out and "the reference is finite" in out


@pytest.mark.parametrize("option, words", [
    (["--h", "0"], "argument --h: must be a finite number > 0, got 0"),
    (["--h", "-1"], "argument --h: must be a finite number > 0, got -1"),
    (["--d", "0"], "argument --d: must be an integer >= 1, got 0"),
    (["--chains", "1"], "argument --chains: must be an integer >= 2, got 1"),
])
def test_sampler_options_out_of_range_are_refused_before_running(tmp_path, capsys, option, words):
    with pytest.raises(SystemExit) as e:
        cli_main(["conformance", "sampler", "mala", f"{_adapter(tmp_path)}:nan_impl", *option])
    assert e.value.code == 2 and words in capsys.readouterr().err


def test_check_sampler_validates_its_arguments_for_api_users():
    with pytest.raises(ValueError, match="n_chains must be an integer >= 2, got 1"):
        conformance.check_sampler(lambda x, h, rng: x, "mala", n_chains=1)
    with pytest.raises(ValueError, match="h must be positive"):
        conformance.check_sampler(lambda x, h, rng: x, "mala", h=0.0)
