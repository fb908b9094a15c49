r"""Exact step objectives for samplers: a whole MALA, RWMH, MH or ULA step fed fixed noise
:math:`z` and uniforms :math:`u`, several steps in a row, compared with the reference step and
with every known fault variant fed the same numbers (issue 33, item 1).

The user's step keeps its interface ``step(state, h, rng, target) -> state``; ``rng`` is a
:class:`ScriptedRng` that serves the case's :math:`z_t` to ``standard_normal``/``normal`` and
:math:`u_t` to ``uniform``/``random``, in order, one block per step. State the step carries
(a log-density, a score) goes from step to step, so a step that keeps the proposal's gradient
after a rejection is caught at the next step.

.. math:: x_{t+1} = \mathrm{step}(x_t;\, z_t, u_t),\quad t = 0..K-1,\qquad
          \text{pass} \iff |x^{\text{user}}_t - x^{\text{ref}}_t| \le \text{atol} + \text{rtol}\,|x^{\text{ref}}_t|\ \forall t

Cases: ``d >= 3`` and step sizes :math:`h \ne \tfrac12` (at :math:`h=\tfrac12`, :math:`2h=\sqrt{2h}`),
chosen so that every fault variant differs from the reference and from each other on the case set
(``tests/test_conformance_sampler.py`` checks this).
"""
from __future__ import annotations

import numpy as onp

from .sampler_faults import faults_of_mode, reference_sampler
from .sampler_targets import sampler_targets

__all__ = ["ScriptedRng", "position_of", "step_cases", "step_reference", "run_step_on_case", "check_sampler_step",
           "StepReport", "STEP_CASES"]

#: (target, d, h) per mode; n = 12 chains, K = 6 steps
STEP_CASES = {
    "mala": (("gauss", 3, 0.3), ("aniso", 3, 0.7), ("banana", 4, 0.35), ("mixture", 5, 0.9)),
    "rwmh": (("gauss", 3, 1.3), ("aniso", 3, 2.1), ("banana", 4, 1.7), ("mixture", 5, 2.6)),
    "mh": (("gauss", 3, 0.9), ("aniso", 3, 0.9), ("banana", 4, 0.6)),
    "ula": (("gauss", 3, 0.3), ("aniso", 3, 0.45), ("banana", 4, 0.15)),
}
N_CHAINS, N_STEPS = 12, 6


class ScriptedRng(onp.random.Generator):
    r"""A ``numpy.random.Generator`` that serves fixed numbers: per step ``t`` (after
    :meth:`next_step`), ``standard_normal``/``normal`` read :math:`z_t` and ``uniform``/``random``
    read :math:`u_t`, from a cursor, in the shapes asked for. Other draws (``integers``,
    ``exponential``, …) come from its own bit generator and are recorded in ``unscripted`` (the
    replay is then inconclusive).

    .. math:: \texttt{normal}(\mu, \sigma, \text{size}) = \mu + \sigma\,z_t[\text{cursor} : \text{cursor}+|\text{size}|]
    """

    def __init__(self, z, u, seed=0):
        super().__init__(onp.random.PCG64(seed))
        self._z, self._u = onp.asarray(z, dtype=float), onp.asarray(u, dtype=float)
        self._backing = onp.random.default_rng(seed + 1)
        self.t, self.unscripted, self.overdrawn = -1, set(), False
        self.draws = []  # per step: [normal values used, uniform values used]

    def next_step(self):
        """Move to the next step's block of noise and uniforms."""
        self.t += 1
        self._cursor = {"normal": 0, "uniform": 0}
        self.draws.append([0, 0])

    def _serve(self, kind, size):
        shape = () if size is None else tuple(onp.atleast_1d(size).tolist()) if not isinstance(size, int) else (size,)
        block = (self._z if kind == "normal" else self._u)[self.t].ravel()
        count, start = int(onp.prod(shape)), self._cursor[kind]
        if start + count > block.size:
            self.overdrawn = True
            values = self._backing.standard_normal(count) if kind == "normal" else self._backing.uniform(size=count)
        else:
            values = block[start:start + count].copy()
            self._cursor[kind] += count
            self.draws[-1][kind == "uniform"] += count
        return values.reshape(shape) if shape else float(values[0])

    def standard_normal(self, size=None, dtype=None, out=None):
        """:math:`z_t` values in the shape ``size``."""
        v = self._serve("normal", size)
        return v if dtype is None or onp.isscalar(v) else v.astype(dtype)

    def normal(self, loc=0.0, scale=1.0, size=None):
        """:math:`\\text{loc} + \\text{scale}\\cdot z_t`."""
        return loc + scale * self._serve("normal", size if size is not None else onp.broadcast(loc, scale).shape or None)

    def uniform(self, low=0.0, high=1.0, size=None):
        """:math:`\\text{low} + (\\text{high}-\\text{low})\\,u_t`."""
        return low + (high - low) * self._serve("uniform", size)

    def random(self, size=None, dtype=None, out=None):
        """:math:`u_t` values in the shape ``size``."""
        v = self._serve("uniform", size)
        return v if dtype is None or onp.isscalar(v) else v.astype(dtype)



def _recorded(name):
    def draw(self, *args, **kwargs):
        self.unscripted.add(name)
        return getattr(self._backing, name)(*args, **kwargs)
    draw.__doc__ = f"``{name}`` from a real generator, recorded as unscripted."
    return draw


for _name in ("integers", "exponential", "standard_exponential", "choice", "permutation", "shuffle", "bytes",
              "spawn", "gamma", "standard_gamma", "binomial", "multivariate_normal", "laplace", "logistic",
              "standard_t", "standard_cauchy"):
    setattr(ScriptedRng, _name, _recorded(_name))


def position_of(state):
    r"""The positions (n, d) of a step's state, as a float64 NumPy copy: the state itself (an array,
    a torch tensor, a JAX array), its ``.position``, ``["position"]``/``["x"]``, or its first item.

    .. math:: \text{state} \mapsto x \in \mathbb R^{n\times d}
    """
    if isinstance(state, dict):
        state = state["position"] if "position" in state else state["x"]
    elif hasattr(state, "position"):
        state = state.position
    elif isinstance(state, (tuple, list)):
        state = state[0]
    if hasattr(state, "detach"):
        state = state.detach().cpu().numpy()
    return onp.array(state, dtype=float)


def step_cases(mode, gauss_only=False):
    r"""The exact step cases of ``mode``: dicts with ``name``, ``mode``, ``target`` (name), ``d``,
    ``h``, ``x0`` (n, d) exact draws from the target, ``z`` (K, n, d), ``u`` (K, n).

    .. math:: x_0 \sim \pi,\quad z_t \sim \mathcal N(0, I),\quad u_t \sim U(0,1)\quad(\text{fixed seeds})
    """
    if mode not in STEP_CASES:
        raise ValueError(f"mode must be one of {list(STEP_CASES)}, got {mode!r}")
    out = []
    for i, (name, d, h) in enumerate(STEP_CASES[mode]):
        if gauss_only and name != "gauss":
            continue
        rng = onp.random.default_rng(3300 + 17 * i + len(mode))
        target = sampler_targets(d, (name,))[0]
        out.append({"name": f"{mode}-step-{name}-d{d}-h{h:g}", "mode": mode, "target": name, "d": d, "h": h,
                    "x0": target.draw(rng, N_CHAINS), "z": rng.standard_normal((N_STEPS, N_CHAINS, d)),
                    "u": rng.uniform(size=(N_STEPS, N_CHAINS))})
    return out


def run_step_on_case(step, case, init=None):
    r"""Run ``step`` for ``K`` steps from ``case["x0"]`` with the case's scripted :math:`z, u`;
    returns (positions (K, n, d), the :class:`ScriptedRng` with what the step drew).

    .. math:: x_{t+1} = \mathrm{step}(x_t, h, \text{rng}_t, \pi)
    """
    target = sampler_targets(case["d"], (case["target"],))[0]
    rng = ScriptedRng(case["z"], case["u"])
    init = getattr(step, "init", None) if init is None else init
    state = init(case["x0"].copy(), target) if init is not None else case["x0"].copy()
    out = []
    with onp.errstate(all="ignore"):  # a faulty step may overflow: its positions say so
        for _ in range(len(case["z"])):
            rng.next_step()
            state = step(state, case["h"], rng, target)
            out.append(position_of(state))
    return onp.stack(out), rng


def step_reference(case, fault=None, propose=None, log_q=None):
    r"""The reference (or ``fault``'s) positions (K, n, d) on ``case``.

    .. math:: x^{\text{ref}}_{t+1} = \text{reference step}(x^{\text{ref}}_t;\, z_t, u_t)
    """
    init, step = reference_sampler(case["mode"], fault, propose, log_q)
    return run_step_on_case(step, case, init=init or (lambda x, target: x))[0]


def _chains_matching(got, ref, rtol, atol):
    if got.shape != ref.shape:
        return onp.zeros(ref.shape[1], bool)
    with onp.errstate(invalid="ignore"):
        close = (onp.abs(got - ref) <= atol + rtol * onp.abs(ref)) | ((got == ref) & ~onp.isnan(ref))
    return onp.all(close, axis=(0, 2))


class StepReport:
    r"""Per case: pass (every chain at every step matches the reference), or the faults whose
    outputs the step reproduced. ``.passed``, ``.rows``, ``.named`` (the faults matching every failing case).

    .. math:: \texttt{passed} = \bigwedge_{\text{cases}} \bigwedge_{t, i} |x^{\text{user}}_{t,i} - x^{\text{ref}}_{t,i}| \le \text{tol}
    """

    def __init__(self, title, rows, notes=()):
        self.title, self.rows, self.notes = title, rows, list(notes)

    @property
    def passed(self):
        return all(r[1] for r in self.rows)

    @property
    def named(self):
        failing = [set(r[2]) for r in self.rows if not r[1]]
        return sorted(set.intersection(*failing)) if failing else []

    def __str__(self):
        lines = [self.title]
        for name, ok, faults, detail in self.rows:
            lines.append(f"case {name!r}: " + ("pass" if ok else "FAIL: " + detail))
            lines += [f"  matches known fault: {f}" for f in faults]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"{sum(r[1] for r in self.rows)}/{len(self.rows)} cases pass" +
                     ("" if self.passed else " — NOT conformant"))
        if self.named:
            lines.append("every failing case matches known fault: " + "; ".join(self.named))
        return "\n".join(lines)

    __repr__ = __str__


def _first_difference(got, ref, rtol, atol):
    if got.shape != ref.shape:
        return f"the step returned positions of shape {got.shape[1:]}, expected {ref.shape[1:]}"
    with onp.errstate(invalid="ignore"):
        bad = onp.argwhere(~(onp.abs(got - ref) <= atol + rtol * onp.abs(ref)) & ~(got == ref))
    t, i, j = bad[0]
    return (f"step {t + 1}, chain {i}, coordinate {j}: got {got[t, i, j]:.12g}, reference {ref[t, i, j]:.12g}"
            f" ({len(onp.unique(bad[:, 1]))}/{ref.shape[1]} chains differ)")


def _moved_without_noise(case, got, rng):
    r"""A step that moved chains without drawing any noise from ``rng`` that step (its noise was kept
    from an earlier step or an earlier call: the "reused noise" fault)."""
    before = onp.concatenate([case["x0"][None], got[:-1]])
    moved = onp.any(got != before, axis=(1, 2))
    return any(m and draws[0] == 0 for m, draws in zip(moved, rng.draws))


def check_sampler_step(step, mode, rtol=1e-7, atol=1e-10, min_share=1.0, gauss_only=False):
    r"""Run ``step`` on every exact step case of ``mode`` and compare it with the reference step and
    with each known fault fed the same :math:`z, u`. ``min_share``: the share of chains that must
    match for a fault to be named (1 for the exact objective; less for float32 naming).
    ``mode="mh"`` needs ``step.propose(x, h, rng, target)`` and ``step.log_q(to, given, h, target)``.

    .. math:: \text{pass} \iff \forall t, i:\ |x^{\text{user}}_{t,i} - x^{\text{ref}}_{t,i}| \le \text{atol} + \text{rtol}|x^{\text{ref}}_{t,i}|

    Returns
    -------
    StepReport
    """
    propose, log_q = getattr(step, "propose", None), getattr(step, "log_q", None)
    if mode == "mh" and (propose is None or log_q is None):
        raise ValueError("mode 'mh' replays the user's own proposal: give the step function the attributes "
                         "step.propose(x, h, rng, target) and step.log_q(to, given, h, target)")
    rows, notes, runs = [], set(), []
    for case in step_cases(mode, gauss_only):
        got, rng = run_step_on_case(step, case)
        runs.append((case, got, rng))
        if rng.unscripted:
            notes.add(f"the step called rng.{', rng.'.join(sorted(rng.unscripted))}: only standard_normal, normal, "
                      "uniform and random are scripted, so its draws could not be replayed")
        if rng.overdrawn:
            notes.add("the step drew more numbers than one step's z and u: the extra came from a generator")
    drew = any(t[0] > 0 for _, _, rng in runs for t in rng.draws)  # it draws its noise from rng, at least once
    for case, got, rng in runs:
        ref = step_reference(case, None, propose, log_q)
        ok = bool(_chains_matching(got, ref, rtol, atol).all())
        faults = [] if ok else [f for f in faults_of_mode(mode) if
                                _chains_matching(got, step_reference(case, f, propose, log_q), rtol, atol).mean()
                                >= min_share]
        if not ok and drew and "reused noise" in faults_of_mode(mode) and "reused noise" not in faults and \
                _moved_without_noise(case, got, rng):
            faults.append("reused noise")
        rows.append((case["name"], ok, faults, "" if ok else _first_difference(got, ref, rtol, atol)))
    title = f"exact {mode.upper()} step: {len(rows)} cases x {N_STEPS} steps x {N_CHAINS} chains (fixed z, u)"
    return StepReport(title, rows, sorted(notes))

