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

import numpy as onp

from .cases import cases
from .verify import verify

__all__ = ["pytest_params", "assert_case", "one_at_a_time"]


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
    __tracebackhide__ = True  # pytest shows the user's line, not refscore's frames
    report = verify(case["objective"], impl, cases=[case], dtype=dtype, rtol=rtol, atol=atol)
    if report.skipped and len(report.rows) == 1:
        import pytest

        pytest.skip(report.skipped[0].message)
    if not report.passed:
        raise AssertionError("\n" + str(report))
    return report


def _n_examples(case):
    for key in ("x", "t", "sigma"):
        if key in case and onp.ndim(case[key]) >= 1:
            return len(case[key])
    raise ValueError(f"case '{case.get('name')}': one_at_a_time needs a per-example field x, t or sigma; "
                     f"got fields {sorted(case)}")


def one_at_a_time(impl, fields=None):
    r"""Wrap ``impl(case_i)``, written for an API that takes one timestep (one σ, one t) at a time,
    into a case-level implementation: for each example i, ``case_i`` holds that example's entries
    (a 1-D per-example field becomes a scalar, points keep a batch axis of 1: ``x[i:i+1]``), and
    the outputs are stacked.

    ``fields``: the per-example fields; default every array whose first axis has the case's n
    examples (n from ``x``, ``t`` or ``sigma``).

    .. math:: g(\text{case})_i = \text{impl}(\text{case}_i)
    """
    def run(case):
        n = _n_examples(case)
        chosen = fields if fields is not None else [k for k, v in case.items()
                                                    if isinstance(v, onp.ndarray) and v.ndim >= 1 and len(v) == n]
        outs = []
        for i in range(n):
            row = dict(case)
            for k in chosen:
                v = onp.asarray(case[k])
                row[k] = v[i] if v.ndim == 1 else v[i:i + 1]
            out = impl(row)
            out = out.detach().cpu().numpy() if hasattr(out, "detach") else onp.asarray(out)
            outs.append(onp.reshape(out, (1, *onp.shape(out)[1:])) if onp.ndim(out) >= 2 else onp.reshape(out, (1, -1)))
        stacked = onp.concatenate(outs, axis=0)
        return stacked[:, 0] if stacked.ndim == 2 and stacked.shape[1] == 1 else stacked
    return run
