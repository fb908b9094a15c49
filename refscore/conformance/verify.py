r"""Verify an implementation against the built-in cases, and diagnose a failure by its known fault.

Tolerances (per example :math:`i`, reference :math:`r_i` in float64, implementation :math:`g_i`):

.. math:: |g_i - r_i| \le \text{rtol}\,|r_i| + \text{atol}\cdot\max(1, \max_j |r_j|)

with ``rtol = 1e-10, atol = 1e-12`` for ``dtype="float64"`` (``1e-5, 1e-6`` for
``pf_ode_log_likelihood``, whose implementations solve an ODE: :data:`OBJECTIVE_TOLERANCES`, from the
objectives' records) (the reference is float64; the
cases need a few hundred floating-point operations per value, each rounding at
:math:`2^{-53}\approx 1.1\times10^{-16}`) and ``rtol = 1e-4, atol = 1e-5`` for
``dtype="float32"`` (inputs rounded to float32, :math:`2^{-24}\approx 6\times10^{-8}`, then a few
hundred operations, with the cancellation in ISM/SSM absorbed by the absolute floor scaled by
the case's largest value). ``rtol``/``atol`` given to :func:`verify` replace them (an
approximate implementation: finite differences, an ODE solver).

A known fault :math:`f` "matches" when it is distinguishable from the reference on the case and,
on every example, the implementation agrees with it within ``max(100·rtol, 1e-8)`` (relative,
with the same absolute floor) **or** lies a thousand times closer to it than the fault lies to
the reference, :math:`|g_i-f_i|\le 10^{-3}|f_i-r_i|`. The second rule names the faults of
approximate implementations (a finite-difference trace divided by d carries its O(ε²) error) and
cannot fire for an implementation that is merely inaccurate: then :math:`|g_i-f_i|\approx|f_i-r_i|`.
"""
from __future__ import annotations

import copy
import fnmatch
from typing import NamedTuple

import numpy as onp

from .cases import cases as builtin_cases
from .faults import faults_for
from .variants import with_variant
from .registry import COLUMNS, MAP_OBJECTIVES, OBJECTIVE_TOLERANCES, OBJECTIVES

FLOAT32 = "float32 precision"  # the convention named when the output agrees to float32 precision only
CLOSER = 1e-3  # a fault matches an approximate implementation this much closer than the reference

__all__ = ["verify", "Report", "Row", "TOLERANCES", "OBJECTIVE_TOLERANCES"]

TOLERANCES = {"float64": (1e-10, 1e-12), "float32": (1e-4, 1e-5)}  # (rtol, atol floor)
# OBJECTIVE_TOLERANCES (from the records): objectives whose implementations are approximate by
# nature, an ODE solve, while the reference is exact
_EXPECTED_FIELDS = ("expected", "expected_x")


class Row(NamedTuple):
    r"""One case's verdict: errors are maxima over the examples (and entries, for ``expected_x``).

    .. math:: \texttt{max\_abs\_err} = \max_i |g_i - r_i|,\qquad
              \texttt{max\_rel\_err} = \max_i |g_i - r_i| / |r_i|
    """

    case: str
    quantity: str
    max_abs_err: float
    max_rel_err: float
    passed: bool
    message: str
    diagnosis: str
    faults: tuple = ()  # names of the known faults that match this (failing) case
    conventions: tuple = ()  # names of the known conventions (legitimate variants) that match it
    skipped: bool = False  # the implementation declined the case (NotImplementedError)


class Report:
    r"""The verdicts of :func:`verify`: ``.passed``, ``.rows``, ``.faults``, and ``str(report)`` a table.

    .. math:: \texttt{passed} = \bigwedge_{\text{cases}}\ \forall i:\
              |g_i - r_i| \le \text{rtol}|r_i| + \text{atol}\max(1, \max_j|r_j|)
    """

    def __init__(self, objective, rows, dtype, rtol=None, atol=None):
        self.objective, self.rows, self.dtype = objective, rows, dtype
        default = TOLERANCES[dtype]
        self.rtol = default[0] if rtol is None else rtol
        self.atol = default[1] if atol is None else atol

    @property
    def passed(self):
        """True when every case the implementation ran passed, and it ran at least one (cases it
        declines with ``NotImplementedError`` are skipped)."""
        ran = [r for r in self.rows if not r.skipped]
        return bool(ran) and all(r.passed for r in ran)

    @property
    def skipped(self):
        """The cases the implementation declined (``NotImplementedError``)."""
        return [r for r in self.rows if r.skipped]

    @property
    def failures(self):
        return [r for r in self.rows if not r.passed]

    @property
    def faults(self):
        """Names of the known faults that match every failing case (empty when none do)."""
        return self._common("faults")

    @property
    def conventions(self):
        """Names of the known conventions (legitimate variants) that match every failing case."""
        return self._common("conventions")

    def _common(self, field):
        if not self.failures:
            return []
        first = getattr(self.failures[0], field)
        common = set(first).intersection(*(getattr(r, field) for r in self.failures))
        return [name for name in first if name in common]

    def __str__(self):
        rtol, atol = self.rtol, self.atol
        width = max([len(r.case) for r in self.rows] + [4])
        head = f"{'case':<{width}}  {'quantity':<10}  {'max abs err':>11}  {'max rel err':>11}  result"
        lines = [f"conformance: {self.objective} ({self.dtype}: rtol {rtol:g}, atol {atol:g})", head,
                 "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.case:<{width}}  {r.quantity:<10}  {r.max_abs_err:>11.3e}  "
                         f"{r.max_rel_err:>11.3e}  {'skipped' if r.skipped else 'pass' if r.passed else 'FAIL'}")
        for r in self.failures:
            lines += ["", r.message, "  " + r.diagnosis]
        lines += [r.message for r in self.skipped]
        ran = len(self.rows) - len(self.skipped)
        n_ok = ran - len(self.failures)
        skipped = f" ({len(self.skipped)} skipped)" if self.skipped else ""
        verdict = "" if self.passed else (" — no case ran" if not ran else " — NOT conformant")
        lines += ["", f"{n_ok}/{ran} cases pass{skipped}{verdict}"]
        if self.faults:
            lines.append(f"every failing case matches known fault: {' / '.join(self.faults)}")
        if self.conventions:
            lines.append(f"every failing case follows convention: {' / '.join(self.conventions)} "
                         "(a legitimate variant, not a bug; see docs/conformance.md, conventions)")
        return "\n".join(lines)

    __repr__ = __str__


def _to_numpy(a):
    if hasattr(a, "detach"):  # a torch tensor, possibly on a device or requiring grad
        a = a.detach().cpu().numpy()
    return onp.asarray(a, dtype=float)


def _errors(got, ref, rtol, atol_floor):
    atol = atol_floor * max(1.0, float(onp.max(onp.abs(ref))))
    err = onp.abs(got - ref)
    with onp.errstate(divide="ignore", invalid="ignore"):
        rel = onp.where(ref != 0, err / onp.abs(ref), onp.where(err > 0, onp.inf, 0.0))
    return err, rel, err <= atol + rtol * onp.abs(ref)


def _quantity(case, got):
    """Which reference the output is compared with: ``expected`` (n,) or (n, k), or ``expected_x``."""
    exp, name, obj = case["expected"], case["name"], case["objective"]
    n = exp.shape[0]
    if got.shape == exp.shape or (exp.ndim == 1 and got.shape == (n, 1)):
        return "expected", exp
    if obj not in MAP_OBJECTIVES:
        raise ValueError(f"case '{name}': the implementation returned shape {got.shape}; the quantity "
                         f"'expected' has shape {exp.shape} (one value, or one row of values, per "
                         f"example). Return per-example values (reduction='none'), not the batch mean.")
    d = int(onp.prod(case["x"].shape[1:]))
    if obj in MAP_OBJECTIVES and got.shape in ((n, *case["x"].shape[1:]), (n, d)):
        return "expected_x", case["expected_x"].reshape(n, -1)
    want = f"({n},)" + (f" or {case['x'].shape} (the mapped points)" if obj in MAP_OBJECTIVES else "")
    raise ValueError(f"case '{name}': the implementation returned shape {got.shape}; the quantity "
                     f"'expected' is one value per example, shape {want}. Return per-example values "
                     f"(reduction='none'), not the batch mean.")


def _fault_values(fault, case, quantity):
    v = onp.asarray(fault.value(case), dtype=float)
    if case["objective"] in MAP_OBJECTIVES:
        v = v.reshape(v.shape[0], -1)
        return v if quantity == "expected_x" else onp.sum(v * v, axis=1)
    return v


def _matches(got, fv, ref, tol):
    """Agreement with a fault's values: within tol, or CLOSER times nearer than the fault is to ref;
    where the fault's value is NaN or ±inf, the implementation's must be the same."""
    finite = onp.isfinite(fv)
    same = (onp.isnan(fv) & onp.isnan(got)) | (onp.isinf(fv) & (fv == got))
    if not onp.all(finite | same) or not finite.any():
        return bool(onp.all(same)) and bool(same.any())
    g, f, r = got[finite], fv[finite], ref[finite]
    with onp.errstate(invalid="ignore", over="ignore"):
        near = _errors(g, f, tol, tol)[2]
        return bool(onp.all(near | (onp.abs(g - f) <= CLOSER * onp.abs(f - r))))


def _invisible(fv, ref, tol):
    """A fault whose values equal the reference's on this case cannot be named here."""
    if fv.shape != ref.shape:
        return True
    if not onp.all(onp.isfinite(fv)):
        return False
    return bool(_errors(fv, ref, tol, tol)[2].all())


def _hits(case, got, quantity, ref, tol):
    """The faults and conventions of the case's objective that ``got`` matches at tolerance ``tol``."""
    with onp.errstate(all="ignore"):  # a fault may divide by zero where the bug does (NaN, inf)
        values = [(f, _fault_values(f, case, quantity)) for f in faults_for(case["objective"])]
    return [f for f, fv in values if not _invisible(fv, ref, tol) and _matches(got, fv, ref, tol)]


def diagnose(case, got, quantity, ref, rtol, dtype="float64"):
    r"""Name the known faults whose values match ``got`` on ``case`` (see :mod:`.faults`).
    Returns ``(text, names)``: a line per matching fault or convention ("convention: NAME
    (...)"), and the names of the matching faults (:func:`diagnose_all` also returns the
    conventions'). When none matches, say whether ``got`` agrees with the reference to float32
    precision (the "float32 precision" convention) or is a constant multiple of it.

    .. math:: \text{match}(f) \iff \forall i:\ |g_i - f_i| \le \text{rtol}_m|f_i| + \text{rtol}_m\max(1,\max_j|f_j|)
              \ \text{or}\ |g_i - f_i| \le 10^{-3}|f_i - r_i|
    """
    return diagnose_all(case, got, quantity, ref, rtol, dtype)[:2]


def diagnose_all(case, got, quantity, ref, rtol, dtype="float64"):
    r"""``(text, fault names, convention names)`` of :func:`diagnose`.

    .. math:: \text{match}(f) \iff \forall i:\ |g_i - f_i| \le \text{rtol}_m|f_i| + \text{rtol}_m\max(1,\max_j|f_j|)
              \ \text{or}\ |g_i - f_i| \le 10^{-3}|f_i - r_i|,\qquad
              \text{rtol}_m = \max(100\,\text{rtol}, 10^{-8}); if none matches at float64, again at
    :math:`\text{rtol}_m = 10^{-4}`, named "… (to float32 precision)" (a bug in a float32 schedule).
    """
    hits, where = _hits(case, got, quantity, ref, max(100 * rtol, 1e-8)), ""
    if not hits and dtype == "float64":  # computed in float32 (a stored schedule): match at float32's tolerance
        hits, where = _hits(case, got, quantity, ref, TOLERANCES["float32"][0]), " (to float32 precision)"
    names = tuple(f.name for f in hits if not f.convention)
    conventions = tuple(f.name for f in hits if f.convention)
    if hits:
        return "; also ".join(f"convention{where}: {f.name} ({f.explanation})" if f.convention else
                              f"matches known fault{where}: {f.name} — {f.explanation}" for f in hits), names, conventions
    if not onp.all(onp.isfinite(got)):
        return "no known fault matches", names, conventions
    if dtype == "float64" and _errors(got, ref, *TOLERANCES["float32"])[2].all():
        return ("convention: float32 precision (agrees to float32 precision; something in the implementation "
                "computes in float32: a schedule stored in float32 as diffusers stores ᾱ, a parameter, a constant "
                "such as σ, or a default dtype); no known fault matches"), names, (FLOAT32,)
    with onp.errstate(divide="ignore", invalid="ignore"):
        ratio = (got / ref).ravel()
    if onp.all(onp.isfinite(ratio)) and onp.ptp(ratio) <= 1e-8 * abs(ratio[0]):
        return f"no known fault matches; got = {ratio[0]:.6g} × reference on every example", names, ()
    return "no known fault matches; compare term by term with docs/conformance.md", names, ()


def _separating_cases(a, b, chosen, tol):
    """Names of the cases (of ``chosen``) on which faults ``a`` and ``b`` give different values."""
    out = []
    for c in chosen:
        q = "expected_x" if c["objective"] in MAP_OBJECTIVES else "expected"
        va, vb = _fault_values(a, c, q), _fault_values(b, c, q)
        if va.shape != vb.shape or not _errors(va, vb, tol, tol)[2].all():
            out.append(c["name"])
    return out


def _explain_coincidences(row, chosen, rtol):
    """A row naming several faults: say they coincide here, and which cases tell them apart."""
    if len(row.faults) < 2:
        return row
    tol = max(100 * rtol, 1e-8)
    known = {f.name: f for f in faults_for(chosen[0]["objective"])}
    notes = []
    for i, a in enumerate(row.faults):
        for b in row.faults[i + 1:]:
            sep = _separating_cases(known[a], known[b], chosen, tol)
            where = ", ".join(sep) if sep else "none of these cases; see docs/conformance.md"
            notes.append(f"'{a}' and '{b}' give the same values on this case and cannot be told apart "
                         f"here; the cases that separate them: {where}")
    return row._replace(diagnosis=row.diagnosis + "\n  " + "\n  ".join(notes))


def _check_case(case, impl, dtype, rtol, atol):
    given = {k: v for k, v in copy.deepcopy(case).items() if k not in _EXPECTED_FIELDS}
    if dtype == "float32":
        given = _cast(given)
    try:
        got = _to_numpy(impl(given))
    except NotImplementedError as e:
        return Row(case["name"], "-", 0.0, 0.0, True, f"case '{case['name']}': skipped, the implementation "
                   f"declines it (NotImplementedError: {e})", "", skipped=True)
    except Exception as e:
        e.add_note(f"(raised by the implementation on conformance case '{case['name']}')")
        raise
    quantity, ref = _quantity(case, got)
    got = got.reshape(ref.shape)
    if not onp.all(onp.isfinite(got)):
        bad = int(onp.flatnonzero(~onp.isfinite(got).reshape(len(got), -1).all(1))[0])
        kind = "NaN" if onp.isnan(got.reshape(len(got), -1)[bad]).any() else "inf"
        text, names, conventions = diagnose_all(case, got, quantity, ref, rtol, dtype)
        return Row(case["name"], quantity, onp.inf, onp.inf, False,
                   f"case '{case['name']}': the implementation returned {kind} at example {bad}"
                   f"{_column(case, got, bad)} (its value for '{quantity}'; the reference is finite)",
                   text, names, conventions)
    err, rel, ok = _errors(got, ref, rtol, atol)
    row = Row(case["name"], quantity, float(err.max()), float(rel.max()), bool(ok.all()), "", "")
    if row.passed:
        return row
    i = onp.unravel_index(int(onp.argmax(err)), err.shape)
    where = f" column {i[1]} ({COLUMNS[case['objective']][i[1]]})" if _has_columns(case, quantity) else ""
    msg = (f"case '{case['name']}': {quantity} differs at example {i[0]}{where}: got {got[i]:.12g}, "
           f"reference {ref[i]:.12g} (abs err {err[i]:.3e}, rel err {rel[i]:.3e})")
    text, names, conventions = diagnose_all(case, got, quantity, ref, rtol, dtype)
    return row._replace(message=msg, diagnosis=text, faults=names, conventions=conventions)


def _has_columns(case, quantity):
    return quantity == "expected" and case["objective"] in COLUMNS and case["expected"].ndim == 2


def _column(case, got, example):
    """' column j (name)' for the first non-finite entry of a multi-output example, else ''."""
    if got.ndim != 2 or case["objective"] not in COLUMNS:
        return ""
    j = int(onp.flatnonzero(~onp.isfinite(got[example]))[0])
    return f" column {j} ({COLUMNS[case['objective']][j]})"


def _cast(obj):
    if isinstance(obj, onp.ndarray) and onp.issubdtype(obj.dtype, onp.floating):
        return obj.astype(onp.float32)
    if isinstance(obj, dict):
        return {k: _cast(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cast(v) for v in obj]
    return obj


def verify(objective, impl, cases=None, dtype="float64", rtol=None, atol=None, only=None, variant=None):
    r"""Check ``impl(case) -> (n,)`` per-example values on every case of ``objective``.

    .. math:: \text{pass} \iff |g_i - r_i| \le \text{rtol}|r_i| + \text{atol}\max(1,\max_j|r_j|)\ \forall i

    (tolerances in :data:`TOLERANCES`; the reference values :math:`r_i` and their equations are
    are the objectives' records, :mod:`refscore.conformance.registry`, and ``docs/conformance.md``).

    Parameters
    ----------
    objective : one of :data:`refscore.conformance.OBJECTIVES` (``refscore conformance list``)
    impl : callable ``case -> (n,)`` array (NumPy, or anything with ``.detach()``/``__array__``);
        ``(n, k)`` for the objectives with k numbers per example (:data:`refscore.conformance.COLUMNS`).
        Map objectives may instead return the mapped points ``(n, *shape)``, then compared
        entry by entry with ``expected_x``. ``impl`` never sees ``expected``/``expected_x``.
    cases : list of cases (default: the built-in ones of ``objective``)
    dtype : "float64" (default) or "float32": the case arrays are cast to it before ``impl``
        sees them, and the looser float32 tolerance applies
    rtol, atol : replace the dtype's tolerances (an approximate implementation, e.g. a
        finite-difference trace or an ODE solver); the diagnosis then matches faults within
        ``max(100·rtol, 1e-8)``
    only : a glob (``fnmatch``) on case names, e.g. ``"*-img*"``: check only those cases
    variant : the name of one of the objective's conventions (``docs/conformance.md``, conventions):
        check against that legitimate variant instead of refscore's reference (a library that
        follows it can pass); the report's title names it

    Returns
    -------
    Report
        ``.passed``, ``.rows`` (:class:`Row` per case), ``str(report)`` the table with, for each
        failing case, the message (case, quantity, example, values) and the diagnosis.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    if dtype not in TOLERANCES:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if not callable(impl):
        raise TypeError(f"impl must be a callable case -> (n,) values, got {type(impl).__name__}")
    chosen = builtin_cases(objective) if cases is None else list(cases)
    wrong = sorted({c.get("objective") for c in chosen} - {objective})
    if wrong:
        raise ValueError(f"cases for objective {objective!r} include cases of {wrong}")
    if only is not None:
        names = [c["name"] for c in chosen]
        chosen = [c for c in chosen if fnmatch.fnmatchcase(c["name"], only)]
        if not chosen:
            raise ValueError(f"--only {only!r} selects none of the {objective} cases: {', '.join(names)}")
    if variant is not None:
        chosen = [with_variant(c, variant) for c in chosen]
    default = OBJECTIVE_TOLERANCES.get(objective, TOLERANCES)[dtype]
    rtol = default[0] if rtol is None else _tolerance(rtol, "rtol")
    atol = default[1] if atol is None else _tolerance(atol, "atol")
    rows = [_check_case(c, impl, dtype, rtol, atol) for c in chosen]
    everything = builtin_cases(objective) if cases is None else list(cases)
    rows = [_explain_coincidences(r, everything, rtol) for r in rows]
    return Report(objective if variant is None else f"{objective}, variant '{variant}'", rows, dtype, rtol, atol)


def _tolerance(value, name):
    value = float(value)
    if not (value >= 0 and onp.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value
