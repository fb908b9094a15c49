"""Input checks shared by every public entry point. Errors are for people: they name the
problem and the offending value."""
from __future__ import annotations

import contextlib
import contextvars
import math
import numbers

from autograd.tracer import getval

_finite_checks = contextvars.ContextVar("refscore_finite_checks", default=True)


@contextlib.contextmanager
def hot_loop():
    """Inside sampler and training loops, skip the per-call NaN/inf scan of inputs.

    The loop's driver checked its start point once and watches for non-finite values itself
    (reporting them in ``info`` or raising); scanning again at every step would force a
    device synchronisation per step on GPU backends.
    """
    token = _finite_checks.set(False)
    try:
        yield
    finally:
        _finite_checks.reset(token)


def check_points(x, dim=None, name="x"):
    """Check a batch of points: shape ``(n, d)``, ``d == dim`` if given, every entry finite."""
    v = getval(x)
    shape = getattr(v, "shape", None)
    if shape is None:
        raise TypeError(f"{name} must be an array of shape (n, d), got {type(v).__name__}")
    if len(shape) != 2:
        hint = " For a single point use x.reshape(1, -1)." if len(shape) == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D array of shape (n, d) with points as rows, got shape "
            f"{tuple(shape)} ({len(shape)}-D); refscore never reshapes silently.{hint}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(shape)}); need at least one point")
    if dim is not None and shape[1] != dim:
        raise ValueError(f"{name} has d={shape[1]} columns but the model has dim={dim}")
    if _finite_checks.get():
        check_finite(v, name)
    return x


def check_finite(v, name="x"):
    """Raise ValueError if ``v`` has a NaN or inf, naming the first bad row."""
    v = getval(v)
    from refscore import backends

    xp = backends.of(v).xp
    ok = xp.isfinite(v)
    if not bool(xp.all(ok)):
        bad = ok.reshape(ok.shape[0], -1).all(axis=1) if ok.ndim > 1 else ok
        row = int(xp.argmax(~bad)) if bad.ndim else 0
        kind = "NaN" if bool(xp.any(xp.isnan(v))) else "inf"
        raise ValueError(f"{name} contains {kind} (first non-finite entry in row {row})")


def check_positive(value, name):
    """A positive, finite scalar (σ, step sizes, β...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        try:
            value = float(getval(value))
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_unit_interval(value, name):
    """A number strictly inside (0, 1) (β of the VP perturbation)."""
    value = check_positive(value, name)
    if not value < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")
    return value


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
