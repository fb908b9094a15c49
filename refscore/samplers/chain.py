r"""Driving chains: the driver loop, divergence tracking and the one ``info`` record every
sampler (and the reverse-SDE solver) returns.

A chain is run for :math:`T` steps, :math:`x_{t+1} = K(x_t)`, every chain a row, no Python
loop over chains; divergence is tracked on the device and read once at the end.

The sampler record (``info``, returned by every driver beside the final positions)
-----------------------------------------------------------------------------------
``n_steps`` : int
    Steps taken (annealed Langevin: L·T).
``diverged`` : (n,) bool array, ``n_diverged`` : int
    Chains that diverged at some step: a non-finite coordinate, or a runaway coordinate
    :math:`|x_{ij}| > R` far beyond the scale of the problem (each driver states its ``R``).
    Some chains diverged: a ``RuntimeWarning``; every chain: a ``FloatingPointError``.
``acceptance_rate`` : (n,) per chain — only where there is an accept step (MALA, RWMH), with
    ``n_nonfinite`` (n,), the rejected non-finite proposals. A chain that never accepts warns.
``is_accepted`` : (n_steps, n) bool — where there is an accept step and ``record_accepted=True``.
``trajectory`` : (n_steps // keep_every, n, d) — when ``keep_every`` is given.

Divergence is tracked on the device (a running ``(n,)`` flag, no host synchronisation per
step) and read once at the end of the run.

The record is typed, like :class:`~refscore.samplers.steps.StepResult`: a frozen dataclass per
sampler family — :class:`ChainInfo` (ULA, reverse diffusion, the reverse-SDE solver),
:class:`MetropolisInfo` (MALA, RWMH: adds the accept-step fields and the last ``state``),
:class:`AnnealedInfo` (adds ``step_sizes``), :class:`GibbsInfo` (adds ``hidden``). Each is also a
read-only mapping, so ``info["n_diverged"]``, ``"acceptance_rate" in info`` and ``sorted(info)``
work as the keys above promise; an optional field that was not asked for (``trajectory``,
``is_accepted``) is ``None`` as an attribute and absent as a key.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

from .. import backends
from .._progress import progress
from .._validation import check_points, check_positive, check_positive_int

__all__ = ["SAMPLER_INFO", "ChainInfo", "MetropolisInfo", "AnnealedInfo", "GibbsInfo", "RUNAWAY_FACTOR", "DIVERGENCE_CHECK_EVERY", "Divergence", "still_good", "runaway_radius",
           "check_sampler_args", "sampler_info", "report_divergence", "run_chain", "metropolis_chain"]

#: a chain has run away when a coordinate exceeds this multiple of the problem's scale
RUNAWAY_FACTOR = 1e6

#: the keys of the record every driver returns, with their meaning (see the module docstring)
SAMPLER_INFO = {
    "n_steps": "int, steps taken",
    "diverged": "(n,) bool, chains that became non-finite or ran away",
    "n_diverged": "int, diverged.sum()",
    "acceptance_rate": "(n,) accepted fraction per chain (accept-step samplers only)",
    "n_nonfinite": "(n,) rejected non-finite proposals (accept-step samplers only)",
    "is_accepted": "(n_steps, n) bool per step (accept-step samplers, record_accepted=True)",
    "trajectory": "(n_steps // keep_every, n, d) kept positions (keep_every given)",
}


# ----- arguments, divergence, the record ----------------------------------------------------
def check_sampler_args(x0, step_size, n_steps, rng):
    """Validate a driver's common arguments once; returns ``(backend, x0, h, n_steps)``."""
    x0 = check_points(x0, name="x0")
    h = check_positive(step_size, "step_size")
    n_steps = check_positive_int(n_steps, "n_steps", minimum=0)
    bk = backends.of(x0)
    bk.check_rng(rng)
    return bk, x0, h, n_steps


def runaway_radius(x0, scale=1.0, factor=RUNAWAY_FACTOR):
    r""":math:`R = \mathrm{factor}\cdot\max(\mathrm{scale}, \max_{ij}|x^{(0)}_{ij}|)`, one host
    read at the start (default factor :math:`10^6`)."""
    xp = backends.of(x0).xp
    return factor * max(float(scale), float(xp.max(xp.abs(x0))))


#: steps between two divergence checks: non-finite values persist and runaways keep growing, so a
#: check every few steps (and at the last) finds them at a fraction of a per-step pass's cost
DIVERGENCE_CHECK_EVERY = 10


class Divergence:
    r"""Per-chain divergence flags on the device, updated every :data:`DIVERGENCE_CHECK_EVERY`
    steps and at the last step by :func:`still_good` (no host sync; read once by :func:`sampler_info`)."""

    def __init__(self, x0, radius, n_steps):
        self.bad = backends.of(x0).xp.zeros(x0.shape[0], dtype=bool)
        self.radius, self.n_steps, self.t = radius, n_steps, 0

    def update(self, x):
        """Count a step; on check steps mark the rows of ``x`` that diverged. Returns ``x``."""
        self.t += 1
        if self.t % DIVERGENCE_CHECK_EVERY == 0 or self.t >= self.n_steps:
            self.bad = self.bad | ~still_good(x, self.radius)
        return x


def still_good(x, radius):
    r"""(n,) True where every coordinate is finite and within ``radius`` (NaN compares False).

    The row maximum folds the columns in halves (``log₂ d`` elementwise passes; odd widths
    overlap by one column, harmless for a maximum): NumPy's ``max(axis=1)`` over short rows costs
    about 25 ns a row, 60× the elementwise passes at d = 2."""
    xp = backends.of(x).xp
    a = xp.abs(x)
    while a.shape[1] > 1:
        h = (a.shape[1] + 1) // 2
        a = xp.maximum(a[:, :h], a[:, a.shape[1] - h:])  # NaN propagates through maximum
    return a[:, 0] <= radius


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class ChainInfo(Mapping):
    r"""The record of a chain without an accept step (ULA, reverse diffusion, the reverse SDE):
    the fields of :data:`SAMPLER_INFO` every driver fills. A read-only mapping of its fields
    that are not ``None`` (module docstring).

    .. math:: \mathrm{n\_diverged} = 	extstyle\sum_c \mathrm{diverged}_c
    """

    n_steps: int
    diverged: Any
    n_diverged: int
    trajectory: Any = None

    def __getitem__(self, key):
        value = getattr(self, key, None) if key in self._names() else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self):
        return (f for f in self._names() if getattr(self, f) is not None)

    def __len__(self):
        return sum(1 for _ in self)

    @classmethod
    def _names(cls):
        return [f.name for f in dataclasses.fields(cls)]


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class MetropolisInfo(ChainInfo):
    r"""The record of a Metropolis–Hastings driver (MALA, RWMH): :class:`ChainInfo` plus the
    per-chain ``acceptance_rate`` and ``n_nonfinite``, ``is_accepted`` (``record_accepted=True``)
    and the last :class:`~refscore.samplers.steps.State`.

    .. math:: \mathrm{acceptance\_rate}_c = 	frac1T	extstyle\sum_t \mathbb 1[	ext{step } t 	ext{ of chain } c
              	ext{ accepted}]
    """

    acceptance_rate: Any
    n_nonfinite: Any
    is_accepted: Any = None
    state: Any = None


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class AnnealedInfo(ChainInfo):
    r"""The record of annealed Langevin: :class:`ChainInfo` plus ``step_sizes`` (L,), the step
    :math:`h_i = h\,\sigma_i^2/\sigma_L^2` at each level (Song & Ermon 2019, Alg. 1)."""

    step_sizes: Any


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class GibbsInfo(ChainInfo):
    r"""The record of block Gibbs on an RBM: :class:`ChainInfo` plus ``hidden``, the last
    :math:`h \sim p(h\mid x)` (Hinton 2010, §13.2)."""

    hidden: Any


_FAMILY = {"step_sizes": AnnealedInfo, "hidden": GibbsInfo, "state": MetropolisInfo}


def sampler_info(n_steps, diverged, trajectory=None, n_accepted=None, n_nonfinite=None, is_accepted=None,
                 **family):
    """The one record every driver returns (see the module docstring), typed by its family: with
    ``n_accepted`` a :class:`MetropolisInfo`, with ``step_sizes=`` an :class:`AnnealedInfo`, with
    ``hidden=`` a :class:`GibbsInfo`, else a :class:`ChainInfo`. Reads ``diverged`` once."""
    common = {"n_steps": n_steps, "diverged": diverged, "n_diverged": int(diverged.sum()), "trajectory": trajectory}
    if n_accepted is not None:
        return MetropolisInfo(**common, acceptance_rate=n_accepted / max(n_steps, 1), n_nonfinite=n_nonfinite,
                              is_accepted=is_accepted, **family)
    unknown = sorted(set(family) - set(_FAMILY))
    if unknown or len(family) > 1:
        raise TypeError(f"sampler_info takes one family field ({', '.join(_FAMILY)}), got {sorted(family)}")
    record = _FAMILY[next(iter(family))] if family else ChainInfo
    return record(**common, **family)


def report_divergence(info, what, hint):
    """Raise when every chain diverged, warn when some did; MH chains that never accepted warn."""
    n_bad, n = info["n_diverged"], info["diverged"].shape[0]
    if n_bad == n:
        raise FloatingPointError(f"every one of the {n} {what} chains diverged (non-finite or runaway); {hint}")
    if n_bad:
        warnings.warn(f"{n_bad} of {n} {what} chains diverged (non-finite or runaway); see info['diverged']",
                      RuntimeWarning, stacklevel=3)
    if "acceptance_rate" in info and info["n_steps"] > 0:
        stuck = int((info["acceptance_rate"] == 0).sum())
        if stuck:
            warnings.warn(f"{stuck} of {n} {what} chains never accepted a proposal in {info['n_steps']} "
                          f"steps; reduce step_size", RuntimeWarning, stacklevel=3)
    return info


def run_chain(step, carry, n_steps, keep_every=None, desc="", show_progress=False, position=lambda c: c,
              record=None, postfix=None):
    """Drive ``carry = step(carry)`` for ``n_steps``; the one place trajectories are stacked.

    Returns ``(carry, trajectory, records)``: ``trajectory`` stacks ``position(carry)`` every
    ``keep_every`` steps, ``(n_steps // keep_every, n, d)`` (``None`` unless asked), ``records``
    stacks ``record(carry)`` every step (``None`` without ``record``). ``postfix(t)`` may return a
    dict shown on the progress bar before step ``t`` (host values only).
    """
    if keep_every is not None:
        keep_every = check_positive_int(keep_every, "keep_every")
    traj, recs = [], []
    bar = progress(n_steps, desc, enabled=show_progress)
    for t in range(n_steps):
        shown = postfix(t) if postfix is not None else None
        if shown:
            bar.set_postfix(**shown)
        carry = step(carry)
        if keep_every is not None and (t + 1) % keep_every == 0:
            traj.append(position(carry))
        if record is not None:
            recs.append(record(carry))
        bar.update()
    bar.close()
    return carry, _stack(traj, keep_every is not None, position(carry)), _stack(recs, record is not None,
                                                                             record and record(carry))


def _stack(items, asked, like):
    """Stack kept arrays along a new first axis; an empty ``(0, ...)`` array when asked for none."""
    if not asked:
        return None
    xp = backends.of(like).xp
    return xp.stack(items) if items else xp.zeros((0,) + like.shape, dtype=like.dtype)


def metropolis_chain(kernel, state, n_steps, keep_every, desc, show_progress, record_accepted):
    r"""Drive a Metropolis–Hastings kernel ``kernel(state) -> StepResult`` and
    build the record. Runaway radius: :math:`R = 10^6\max(1, \max_{ij}|x^{(0)}_{ij}|)`."""
    x0 = state.position
    xp, n = backends.of(x0).xp, x0.shape[0]
    watch = Divergence(x0, runaway_radius(x0), n_steps)
    zero, no = xp.zeros(n, dtype=x0.dtype), xp.zeros(n, dtype=bool)

    def step(carry):
        st, n_acc, n_bad, _ = carry
        st, acc, finite = kernel(st)
        watch.update(st.position)
        return st, n_acc + acc, n_bad + ~finite, acc

    (st, n_acc, n_bad, _), traj, acc = run_chain(
        step, (state, zero, zero, no), n_steps, keep_every, desc, show_progress,
        position=lambda c: c[0].position, record=(lambda c: c[3]) if record_accepted else None)
    return st.position, sampler_info(n_steps, watch.bad, traj, n_acc, n_bad, acc, state=st)
