"""Shared fixtures: one suite over every backend, hypothesis profiles, seeds."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from refscore import backends

# `ci`: derandomised and bounded (chosen when CI=true); `dev`: the default, a little wider.
settings.register_profile("ci", derandomize=True, max_examples=15, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("dev", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev"))


def _backend_params():
    params = []
    for name in ("numpy", "strict", "cupy"):
        marks = []
        if name == "cupy":
            try:
                backends.get("cupy")
            except (ImportError, RuntimeError) as e:
                marks.append(pytest.mark.skip(reason=f"cupy backend unavailable: {e}"))
            marks.append(pytest.mark.gpu)
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_backend_params())
def bk(request):
    """Each backend in turn: numpy always, the strict CPU stand-in always, cupy when a GPU is there."""
    return backends.get(request.param)


@pytest.fixture
def npbk():
    return backends.get("numpy")


def to_np(a):
    return backends.of(a).to_numpy(a)
