"""An example test file for your own project: refscore's DSM conformance cases as pytest tests.

Copy it beside your code, replace ``my_dsm`` by an import of yours, and run ``pytest``: each case
is one test, named after the case, and a failure prints the verifier's report with the known
fault it matches. (``conformance.pytest_params`` needs only refscore and pytest.)
"""
import numpy as np
import pytest

from refscore import conformance


def my_dsm(case):
    """Per-example DSM ½‖s(x̃) + z/σ‖² for the cases with a quadratic model (s(x) = b − Ax)."""
    x = case["x"].reshape(len(case["x"]), -1)
    z, sigma = case["z"].reshape(x.shape), case["sigma"]
    x_noisy = x + sigma * z
    score = case["model"]["b"] - x_noisy @ case["model"]["A"]
    return 0.5 * np.sum((score + (x_noisy - x) / sigma**2) ** 2, axis=1)


@pytest.mark.parametrize("case", conformance.pytest_params("dsm", only="*quadratic*"))
def test_my_dsm(case):
    conformance.assert_case(my_dsm, case)
