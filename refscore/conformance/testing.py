r"""The conformance cases inside a user's own test suite (pytest), so that they run in its CI.

::

    import pytest
    from refscore import conformance

    @pytest.mark.parametrize("case", conformance.pytest_params("dsm"))
    def test_my_dsm(case):
        conformance.assert_case(my_dsm, case)

A failing case fails its test with the verifier's report (the values, the diagnosis naming the
known fault). ``docs/examples/test_conformance_example.py`` is a complete file.
"""
from __future__ import annotations

from .cases import cases
from .verify import verify

__all__ = ["pytest_params", "assert_case"]


def pytest_params(objective, only=None):
    r"""The cases of ``objective`` as ``pytest.param(case, id=case["name"])``, for
    ``pytest.mark.parametrize("case", ...)``; ``only`` a glob on the case names.

    .. math:: \{(c, \text{name}(c)) : c \in \texttt{cases}(\text{objective})\}
    """
    import fnmatch

    import pytest

    return [pytest.param(c, id=c["name"]) for c in cases(objective)
            if only is None or fnmatch.fnmatchcase(c["name"], only)]


def assert_case(impl, case, dtype="float64", rtol=None, atol=None):
    r"""Run ``impl`` on one case and raise ``AssertionError`` with the report when it fails.

    .. math:: |g_i - r_i| \le \text{rtol}|r_i| + \text{atol}\max(1,\max_j|r_j|)\ \ \forall i
              \quad(\text{see } :func:`refscore.conformance.verify`)
    """
    report = verify(case["objective"], impl, cases=[case], dtype=dtype, rtol=rtol, atol=atol)
    if not report.passed:
        raise AssertionError("\n" + str(report))
    return report
