"""Input checks shared by every public entry point. Errors are for people: they name the
problem and the offending value.

Validation happens once, at the public boundary: a driver checks its start point and the first
output of each user callable, then runs its step loop unvalidated (no host synchronisation per
step). Shape checks of what a callable returns are metadata only and cost no synchronisation.
"""
from __future__ import annotations

import math
import numbers

from autograd.tracer import getval


def check_points(x, dim=None, name="x"):
    """Check a batch of points: shape ``(n, d)``, ``d == dim`` if given, every entry finite.

    Returns ``x``, with integer arrays cast to the default float dtype (float64); boolean and
    non-numeric arrays are refused.
    """
    v = getval(x)
    shape = getattr(v, "shape", None)
    if shape is None or isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be an array of shape (n, d), got {type(v).__name__}")
    x = as_float_array(x, name)
    v = getval(x)
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
    check_finite(v, name)
    return x


def check_finite(v, name="x"):
    """Raise ValueError if ``v`` has a NaN or inf, naming the first bad row; else return ``v``.

    Only host (NumPy) arrays are checked: on a device backend reading the answer is a
    device-to-host synchronisation, which would stall every step of a sampler or a training loop.
    There the drivers check instead, amortised (divergence flags read once, the NaN guard of
    ``fit`` at its logging points)."""
    v = getval(v)
    from refscore import backends

    bk = backends.of(v)
    if not bk.host_memory:
        return v
    xp = bk.xp
    ok = xp.isfinite(v)
    if not bool(xp.all(ok)):
        bad = ok.reshape(ok.shape[0], -1).all(axis=1) if ok.ndim > 1 else ok
        row = int(xp.argmax(~bad)) if bad.ndim else 0
        kind = "NaN" if bool(xp.any(xp.isnan(v))) else "inf"
        raise ValueError(f"{name} contains {kind} (first non-finite entry in row {row})")
    return v


def check_positive(value, name):
    """A positive, finite scalar (σ, step sizes, β...)."""
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not isinstance(value, numbers.Real):
        try:
            value = float(getval(value))
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        shown = value.item() if hasattr(value, "item") else value  # -0.25, not np.float32(-0.25)
        raise ValueError(f"{name} must be positive and finite, got {shown!r}")
    return float(value)


def check_positive_int(value, name, minimum=1):
    """An integer ``>= minimum`` (booleans refused), named in the error with its value."""
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
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def as_float_array(x, name):
    """Integer arrays -> the default float dtype (float64); floats pass; bool/other refused."""
    v = getval(x)
    kind = getattr(getattr(v, "dtype", None), "kind", None)
    if kind == "f":
        return x
    if kind in ("i", "u"):
        from refscore import backends

        return backends.of(v).asarray(v, dtype="float64")
    raise TypeError(f"{name} must hold real numbers (a float array), got dtype {getattr(v, 'dtype', None)}")


def check_output(out, shape, name):
    """What a user callable returned must have exactly ``shape``: no broadcasting of a (1, d)
    score, no (n,) score read as (d,), no scalar log-density. Metadata only: no device sync."""
    got = getattr(getval(out), "shape", None)
    if got is None or tuple(got) != tuple(shape):
        what = f"shape {tuple(got)}" if got is not None else f"a {type(getval(out)).__name__}"
        raise ValueError(f"{name} must return an array of shape {tuple(shape)}, got {what}")
    return out


def check_real(value, name):
    """A finite real scalar (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_time_interval(t_min, t_max):
    """``0 <= t_min < t_max <= 1``: the SDE's time horizon (Song et al. 2021 use [0, 1])."""
    t_min, t_max = check_real(t_min, "t_min"), check_real(t_max, "t_max")
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={t_min!r}, t_max={t_max!r}")
    return t_min, t_max


def check_sigmas(sigmas):
    r"""Noise levels: a non-empty, strictly decreasing 1-D sequence of positive finite numbers
    (NCSN's :math:`\sigma_1>\dots>\sigma_L`), returned as a host float64 array."""
    import numpy as onp  # host parameters, like every energy's parameters

    try:
        items = list(sigmas)
        if isinstance(sigmas, (str, bytes)) or any(isinstance(s, (bool, str, bytes)) for s in items):
            raise TypeError
        sig = onp.asarray([float(s) for s in items], dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"sigmas must be a 1-D sequence of positive numbers, got {sigmas!r}") from None
    if sig.ndim != 1 or sig.size == 0 or not onp.all(onp.isfinite(sig)) or onp.any(sig <= 0):
        raise ValueError(f"sigmas must be a non-empty 1-D sequence of positive numbers, got {sig.tolist()}")
    if sig.size > 1 and not onp.all(onp.diff(sig) < 0):
        raise ValueError(f"sigmas must be strictly decreasing, got {sig.tolist()}")
    return sig



def check_noise(z, shape, name):
    """Explicit randomness (``z``, ``eps``, ``v``) must have exactly ``shape``: a ``(1, d)`` noise
    would be broadcast, giving every example the same draw. Metadata only: no device sync."""
    got = getattr(getval(z), "shape", None)
    if got is None or tuple(got) != tuple(shape):
        what = f"shape {tuple(got)}" if got is not None else f"a {type(getval(z)).__name__}"
        raise ValueError(f"{name} must have shape {tuple(shape)} (one independent draw per entry of x, "
                         f"never broadcast), got {what}")
    return z


def check_values_in(v, name, low, high=None):
    """Every entry of the array ``v`` in the open interval ``(low, high)`` (``high=None``: no upper
    bound), else a ValueError showing the first bad value and its index. Like :func:`check_finite`,
    only host arrays are read: on a device it would be a host synchronisation per call."""
    v = getval(v)
    from refscore import backends

    bk = backends.of(v)
    if not bk.host_memory:
        return v
    xp = bk.xp
    ok = xp.isfinite(v) & (v > low) & (True if high is None else (v < high))
    if not bool(xp.all(ok)):
        i = int(xp.argmax(~ok.reshape(-1)))
        where = "be positive and finite" if high is None and low == 0 else f"lie in ({low}, {high})"
        raise ValueError(f"every {name} must {where}, got {float(v.reshape(-1)[i])!r} at index {i}")
    return v


# ----- files, ranges and command-line state (the surfaces around the core) -----
class BadFileError(ValueError):
    """A file that exists but cannot be used: the message names the file and what is wrong."""

    def __init__(self, path, problem):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}")


def bad_file(path, what, problem):
    """The :class:`BadFileError` for ``path``, which should be ``what`` (e.g. "an IDX file")."""
    return BadFileError(path, f"not a valid {what}: {problem}")


def file_read_errors():
    """The exceptions that mean "this file is truncated or corrupt" when reading it: gzip, zip,
    zlib, tar, JSON and NumPy raise their own types, none of them naming the file."""
    import tarfile
    import zipfile
    import zlib

    return (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, zipfile.BadZipFile,
            tarfile.TarError, zlib.error)


class reading:
    """``with reading(path, "a saved model"):`` turns any read error inside the block into a
    :class:`BadFileError` naming ``path``, what it should be and the reader's own complaint. A
    missing file stays a ``FileNotFoundError`` (it names the path); a :class:`BadFileError` from
    inside passes unchanged."""

    def __init__(self, path, what):
        self.path, self.what = path, what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, (BadFileError, FileNotFoundError)):
            return False
        if isinstance(exc, file_read_errors()):
            detail = " ".join(str(exc).split()) or "no detail"  # one line: tarfile's messages span several
            raise bad_file(self.path, self.what, f"{type(exc).__name__}: {detail} (truncated or corrupt?)") from None
        return False


def check_fraction(value, name, low_open=False, high_open=False):
    """A real number in [0, 1] (each end closed unless ``low_open`` / ``high_open``): EMA decays,
    shares. Booleans and strings are refused."""
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    number = None
    if not isinstance(value, (bool, str, bytes)):
        try:
            number = float(getval(value))
        except (TypeError, ValueError):
            number = None
    if number is None:
        raise TypeError(f"{name} must be a number in {lo}0, 1{hi}, got {value!r}")
    ok = math.isfinite(number) and (number > 0 if low_open else number >= 0) and (number < 1 if high_open else number <= 1)
    if not ok:
        raise ValueError(f"{name} must lie in {lo}0, 1{hi}, got {number!r}")
    return number


def check_nonnegative_int(value, name):
    """An integer >= 0 (0 is allowed: "none"/"skip" where the caller documents it)."""
    return check_positive_int(value, name, minimum=0)


def settings_difference(saved, current):
    """The keys where two settings dicts differ, as ``"key: saved -> current"`` strings (sorted);
    empty when they agree. Used to refuse mixing two runs in one output folder."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} there, {current.get(k)!r} now" for k in keys if saved.get(k) != current.get(k)]


# ----- the diffusion formulas: steps, coefficients and per-example shapes (refscore.diffusion, .sde) -----
def check_whole_number(value, name, minimum=None, maximum=None):
    """An integer-valued real (3, or 3.0; never 2.5 nor ``True``) in [minimum, maximum], as an int."""
    v = getval(value)
    if isinstance(v, (bool, str, bytes)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {v!r}")
    rule = ("an integer" if minimum is None else f"an integer >= {minimum}") if maximum is None else \
        f"an integer in [{'-inf' if minimum is None else minimum}, {maximum}]"
    shown = v.item() if hasattr(v, "item") else v
    if not (math.isfinite(v) and float(v).is_integer()):
        raise ValueError(f"{name} must be {rule}, got {shown!r} (not a whole number)")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {rule}, got {shown!r}")
    return int(v)


def check_steps(t, count, name="t", n=None):
    """Integer steps ``0 <= t <= count - 1`` (DDPM's 0-based steps, annealed Langevin's levels): a number
    (3.0 is 3; 2.7, -1 and ``count`` are refused) or an array of shape () or (n,), returned as host ints.
    A device array must have an integer dtype; its values are not read (a host synchronisation)."""
    rule = f"integer steps in [0, {count - 1}] (0-based, {count} steps)"
    v = getval(t)
    if isinstance(v, (bool, str, bytes)) or v is None or isinstance(v, numbers.Real) and not hasattr(v, "shape"):
        try:
            return check_whole_number(v, name, 0, count - 1)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{name} must be {rule}, got {v!r}") from None
    if not hasattr(v, "shape"):  # a list or tuple of steps
        import numpy as onp

        v = onp.asarray(v)
    kind = getattr(v.dtype, "kind", None)
    if kind not in ("i", "u", "f"):
        raise TypeError(f"{name} must be {rule}, got an array of dtype {v.dtype}")
    if v.ndim > 1 or (n is not None and v.ndim == 1 and v.shape[0] != n):
        want = "()" if n is None else f"() or ({n},), one per example"
        raise ValueError(f"{name} must have shape {want}, got shape {tuple(v.shape)}")
    if not _on_host(v):
        if kind == "f":
            raise TypeError(f"{name} on a device must have an integer dtype ({rule}), got {v.dtype}")
        return v
    import numpy as onp

    flat = v.reshape(-1)
    if flat.size and not (flat.min() >= 0 and flat.max() <= count - 1 and (kind != "f" or (flat == onp.round(flat)).all())):
        bad = ~((flat == onp.round(flat)) & (flat >= 0) & (flat <= count - 1))
        i = int(onp.argmax(bad))
        shown = flat[i].item()
        shown = int(shown) if float(shown).is_integer() else shown
        raise ValueError(f"{name} must be {rule}, got {shown!r}" + (f" at index {i}" if v.ndim else ""))
    return v.astype(int)


def _on_host(v):
    """Whether the array ``v`` lives in host memory (a NumPy array at once, else its backend says)."""
    import numpy as onp

    if isinstance(v, (onp.ndarray, onp.generic)):
        return True
    from refscore import backends

    return backends.of(v).host_memory


def _interval(low, high, closed):
    if high is None and low == 0:
        return "non-negative and finite" if closed else "positive and finite"
    return f"in {'[' if closed else '('}{low}, {'inf' if high is None else high})"


def check_coefficient(c, name, like=None, low=0.0, high=None, closed=False, read_arrays=True):
    """A coefficient of the diffusion formulas (σ, α, β, a step): a number, or one per example of the
    array ``like`` (shape (), (n,) or the column (n, 1, ..., 1)), each value in (low, high) (``closed``:
    [low, high)). Lists become host float arrays; autograd boxes pass; only host arrays are read (none
    with ``read_arrays=False``: a driver's own computed step, whose NaN it reports as divergence)."""
    v, rule = getval(c), _interval(low, high, closed)
    if isinstance(v, (bool, str, bytes)) or v is None:
        raise TypeError(f"{name} must be a number or one per example, {rule}; got {v!r}")
    if not hasattr(v, "shape") and not isinstance(v, numbers.Real):
        import numpy as onp

        try:
            v = c = onp.asarray(v, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number or an array of numbers, got {v!r}") from None
    where = ""
    if hasattr(v, "shape"):
        if getattr(v.dtype, "kind", None) not in ("i", "u", "f"):
            raise TypeError(f"{name} must hold real numbers, got dtype {v.dtype}")
        if like is not None and v.ndim:
            n, nd = getval(like).shape[0], getval(like).ndim
            if v.shape[0] != n or not (v.ndim == 1 or (v.ndim == nd and all(k == 1 for k in v.shape[1:]))):
                raise ValueError(f"{name} must be a number or one per example of shape ({n},), got shape "
                                 f"{tuple(v.shape)} for {nd}-D points of shape {tuple(getval(like).shape)}")
        if not (read_arrays and _on_host(v)) or v.size == 0:
            return c
        flat, top = v.reshape(-1), (math.inf if high is None else high)
        lo, hi = flat.min(), flat.max()  # two reductions, no temporaries; a NaN fails both comparisons
        if (lo >= low if closed else lo > low) and hi < top:
            return c
        import numpy as onp

        ok = onp.isfinite(flat) & ((flat >= low) if closed else (flat > low)) & (flat < top)
        i = int(onp.argmax(~ok))
        v, where = flat[i].item(), (f" at index {i}" if v.ndim else "")
    if not (math.isfinite(v) and (v >= low if closed else v > low) and (high is None or v < high)):
        raise ValueError(f"{name} must be {rule}, got {float(v)!r}{where}")
    return c


def check_examples(x, name, like=None, like_name="x"):
    """An array of examples (n, *shape) with n >= 1 (integer arrays cast to float64); with ``like``,
    exactly ``like``'s shape (a (1, d) score or noise is never broadcast). Metadata only: no sync."""
    v = getval(x)
    if not hasattr(v, "shape") or isinstance(v, (str, bytes)):
        raise TypeError(f"{name} must be an array of examples (n, *shape), got {type(v).__name__}")
    if like is not None and tuple(v.shape) != tuple(getval(like).shape):
        raise ValueError(f"{name} must have the shape of {like_name}, {tuple(getval(like).shape)} (never "
                         f"broadcast), got shape {tuple(v.shape)}")
    if v.ndim == 0 or v.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array of examples (n, *shape), got shape {tuple(v.shape)}")
    return as_float_array(x, name)
