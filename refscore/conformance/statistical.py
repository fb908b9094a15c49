r"""Statistical conformance for sampler steps, where exact per-example values do not apply.

The target is :math:`\mathcal N(0, I_d)`: :math:`s(x) = -x`, :math:`\log\tilde p(x) = -\tfrac12\|x\|^2`.
Chains start from the sampler's own stationary law and run ``n_steps`` steps; each chain's end
point is then a draw from that law, independent across chains, so every check below is a mean
over ``n_chains`` i.i.d. numbers with standard error :math:`\mathrm{SE} = \text{sd}/\sqrt{n}`,
and passes when :math:`|\text{measured} - \text{expected}| \le k\,\mathrm{SE}` (``k = 5``).

* MALA leaves the target invariant (Roberts & Tweedie 1996): mean 0, :math:`\mathbb E\|x\|^2/d = 1`.
* ULA, :math:`x' = (1-h)x + \sqrt{2h}\,z` on :math:`\mathcal N(0,1)`, has the biased stationary
  variance :math:`v = (1-h)^2 v + 2h \Rightarrow v = 1/(1-h/2)` (Roberts & Tweedie 1996, §3;
  seed ``001_…``, Langevin sampling; :mod:`refscore.samplers.langevin`).
* MALA's stationary acceptance :math:`\mathbb E[\min(1, r)]` is computed exactly
  (:func:`mala_acceptance_gaussian`).
"""
from __future__ import annotations

import inspect
import math
from typing import NamedTuple

import numpy as onp
from scipy import integrate

from .._validation import check_positive, check_positive_int

__all__ = ["check_sampler", "check_sampler_exactness", "ExactnessReport", "takes_target", "DEFAULT_H",
           "mala_acceptance_gaussian", "ula_stationary_variance", "SamplerReport"]


def ula_stationary_variance(h):
    r"""Stationary variance of ULA with step ``h`` on :math:`\mathcal N(0,1)`:

    .. math:: v = (1-h)^2 v + 2h \;\Rightarrow\; v = \frac{2h}{2h-h^2} = \frac{1}{1-h/2}\quad(0<h<2)
    """
    if not 0 < h < 2:
        raise ValueError(f"ULA on N(0, 1) is stable only for 0 < h < 2, got h={h}")
    return 1.0 / (1.0 - h / 2.0)


def _log_ratio_coefficients(h):
    r"""With :math:`y=(1-h)x+\sqrt{2h}z`, MALA's log ratio on :math:`\mathcal N(0,1)` is
    :math:`a x^2 + b z^2 + c\,xz` (expand :math:`\tfrac12(x^2-y^2) + \tfrac12 z^2 - (x-(1-h)y)^2/(4h)`)."""
    return h * h * (2.0 - h) / 4.0, -h * h / 2.0, -(1.0 - h) * math.sqrt(2.0 * h) * h / 2.0


def mala_acceptance_gaussian(h, d=1, n_mc=2_000_000, seed=0):
    r"""MALA's stationary acceptance rate on :math:`\mathcal N(0, I_d)` with step ``h``.

    The log ratio is :math:`Q=\sum_{i\le d} a x_i^2 + b z_i^2 + c\,x_iz_i` with
    :math:`a=h^2(2-h)/4,\ b=-h^2/2,\ c=-(1-h)\sqrt{2h}\,h/2`. For :math:`d=1`, in polar
    coordinates :math:`(x,z)=\rho(\cos\theta,\sin\theta)` with :math:`\rho^2\sim\mathrm{Exp}(1/2)`
    independent of :math:`\theta\sim U(0,2\pi)`, :math:`Q=\rho^2 q(\theta)` and
    :math:`\mathbb E_\rho\min(1,e^{\rho^2 q}) = 1` if :math:`q\ge0`, else :math:`1/(1-2q)`, so

    .. math:: \mathbb E[\min(1,e^Q)] = \frac1{2\pi}\int_0^{2\pi}
              \begin{cases}1 & q(\theta)\ge 0\\ \frac1{1-2q(\theta)} & q(\theta)<0\end{cases}d\theta

    (one-dimensional quadrature, exact to ~1e-12). For :math:`d>1`: Monte Carlo over ``n_mc``
    draws of :math:`(x,z)`, with its standard error.

    Returns
    -------
    (value, stderr) : stderr is 0 for the quadrature
    """
    a, b, c = _log_ratio_coefficients(float(h))
    if d == 1:
        q = lambda t: a * math.cos(t) ** 2 + b * math.sin(t) ** 2 + c * math.cos(t) * math.sin(t)  # noqa: E731
        roots = onp.roots([b, c, a]) if b != 0 else onp.array([-a / c])  # q = 0 ⇔ b t² + c t + a = 0, t = tan θ
        kinks = sorted({(math.atan(float(t.real)) + k * math.pi) % (2 * math.pi)
                        for t in roots if abs(t.imag) < 1e-12 for k in (0, 1)})
        f = lambda t: 1.0 if q(t) >= 0 else 1.0 / (1.0 - 2.0 * q(t))  # noqa: E731
        val = integrate.quad(f, 0.0, 2 * math.pi, points=kinks or None, limit=200, epsabs=0,
                             epsrel=1e-12)[0]
        return val / (2 * math.pi), 0.0
    rng = onp.random.default_rng(seed)
    x, z = rng.standard_normal((2, n_mc, d))
    acc = onp.minimum(1.0, onp.exp(onp.sum(a * x * x + b * z * z + c * x * z, axis=1)))
    return float(acc.mean()), float(acc.std(ddof=1) / math.sqrt(n_mc))


class SamplerRow(NamedTuple):
    r"""One statistical check: passes when the measured mean is within ``k`` standard errors.

    .. math:: |\bar m - m| \le k\,\mathrm{SE},\qquad \mathrm{SE} = \mathrm{sd}/\sqrt{n_\text{chains}}
    """

    quantity: str
    measured: float
    expected: float
    stderr: float
    passed: bool


class SamplerReport:
    r"""The rows of :func:`check_sampler`; ``.passed``, ``.rows``, ``str(report)`` a table.

    .. math:: \texttt{passed} = \bigwedge_\text{rows} |\bar m - m| \le k\,\mathrm{SE}
    """

    def __init__(self, title, rows, k):
        self.title, self.rows, self.k = title, rows, k

    @property
    def passed(self):
        return all(r.passed for r in self.rows)

    def __str__(self):
        head = f"{'quantity':<22}  {'measured':>10}  {'expected':>10}  {'SE':>9}  {'|err|/SE':>8}  result"
        lines = [self.title, head, "-" * len(head)]
        for r in self.rows:
            z = abs(r.measured - r.expected) / r.stderr if r.stderr > 0 else math.inf
            lines.append(f"{r.quantity:<22}  {r.measured:>10.5f}  {r.expected:>10.5f}  {r.stderr:>9.2e}  "
                         f"{z:>8.2f}  {'pass' if r.passed else 'FAIL'}")
        lines.append(f"tolerance: {self.k:g} SE; " + ("all pass" if self.passed else "NOT conformant"))
        return "\n".join(lines)

    __repr__ = __str__


def _row(name, per_chain, expected, k, extra_se=0.0):
    v = onp.asarray(per_chain, dtype=float)
    se = math.sqrt(v.var(ddof=1) / v.size + extra_se**2)
    m = float(v.mean())
    return SamplerRow(name, m, float(expected), se, abs(m - expected) <= k * se)


def check_sampler(step, sampler="mala", h=0.5, d=1, n_chains=20_000, n_steps=20, seed=0, k=5.0):
    r"""Check a sampler step statistically on :math:`\mathcal N(0, I_d)`.

    .. math:: \text{MALA: } \mathbb E x = 0,\ \mathbb E\|x\|^2/d = 1,\
              \text{acceptance} = \mathbb E\min(1,r);\qquad
              \text{ULA: } \mathbb E x = 0,\ \mathbb E\|x\|^2/d = \frac1{1-h/2}

    Parameters
    ----------
    step : callable ``(x, h, rng) -> x_new`` for the target :math:`\mathcal N(0,I_d)`
        (score :math:`-x`, log-density :math:`-\tfrac12\|x\|^2`); ``x`` is a NumPy (n, d) array,
        ``rng`` a ``numpy.random.Generator``. A MALA step returns ``x`` unchanged in rejected rows.
    sampler : "mala" or "ula"
    h, d, n_chains, n_steps, seed : step size, dimension, independent chains, steps per chain
    k : tolerance in standard errors

    Returns
    -------
    SamplerReport
    """
    if sampler not in ("mala", "ula"):
        raise ValueError(f"sampler must be 'mala' or 'ula', got {sampler!r}")
    h, k = check_positive(h, "h"), check_positive(k, "k")
    d, n_steps = check_positive_int(d, "d"), check_positive_int(n_steps, "n_steps")
    n_chains = check_positive_int(n_chains, "n_chains", minimum=2)  # a standard error needs two chains
    rng = onp.random.default_rng(seed)
    var = 1.0 if sampler == "mala" else ula_stationary_variance(h)
    x = math.sqrt(var) * rng.standard_normal((n_chains, d))  # a stationary start
    moved = onp.zeros(n_chains)
    for t in range(n_steps):
        new = onp.asarray(step(x.copy(), h, rng), dtype=float)
        if new.shape != x.shape:
            raise ValueError(f"step returned shape {new.shape} for x of shape {x.shape} (step {t})")
        moved += onp.any(new != x, axis=1)
        x = new
    rows = [_row("mean of x", x.mean(axis=1), 0.0, k),
            _row("E|x|^2/d (variance)", (x * x).mean(axis=1), var, k)]
    if sampler == "mala":
        acc, acc_se = mala_acceptance_gaussian(h, d)
        rows.append(_row("acceptance rate", moved / n_steps, acc, k, acc_se))
    title = (f"statistical conformance: {sampler.upper()} on N(0, I_{d}), h={h:g}, "
             f"{n_chains} chains x {n_steps} steps, seed {seed}")
    return SamplerReport(title, rows, k)


# ---- exactness: several targets, tests with exact null distributions, named faults (issue 33) ----------
#: default step sizes: never h = 1/2, where 2h = sqrt(2h) and the noise-∝-h bug is invisible
DEFAULT_H = {"mala": 0.3, "ula": 0.15, "rwmh": 0.9, "mh": 0.9}


def takes_target(step):
    r"""Whether ``step`` takes the target as a fourth argument, ``step(state, h, rng, target)``;
    a three-argument ``step(x, h, rng)`` is the older interface, for :math:`\mathcal N(0, I_d)` only.

    .. math:: \mathrm{step}: (x_t, h, \text{rng}, \pi) \mapsto x_{t+1}
    """
    try:
        inspect.signature(step).bind(None, None, None, None)
        return True
    except TypeError:
        return False
    except ValueError:  # a builtin without a signature: assume the current interface
        return True


class ExactnessReport:
    r"""The rows of :func:`check_sampler_exactness`: per target and test, the p-value against the
    share of :math:`\alpha` it may spend, plus the exact replay (which names a known fault).

    .. math:: \texttt{passed} = \bigwedge_{\text{target, test}} p \ge \frac{\alpha}{\#\text{tests}\cdot\#\text{targets}}
              \ \wedge\ \text{the replay matches no known fault}
    """

    def __init__(self, title, rows, level, replay=None, notes=()):
        self.title, self.rows, self.level, self.replay, self.notes = title, rows, level, replay, list(notes)

    @property
    def named(self):
        return [] if self.replay is None else self.replay.named

    @property
    def passed(self):
        return all(r[-1] for r in self.rows) and not self.named

    def failing_tests(self):
        """The tests that failed, as ``"target: test"`` strings."""
        return [f"{r[0]}: {r[1]}" for r in self.rows if not r[-1]]

    def __str__(self):
        head = f"{'target':<9} {'test':<22} {'p-value':>9} {'level':>8}  {'worst function':<32} result"
        lines = [self.title, head, "-" * len(head)]
        for target, test, p, worst, ok in self.rows:
            lines.append(f"{target:<9} {test:<22} {p:>9.2e} {self.level:>8.1e}  {worst[:32]:<32} "
                         + ("pass" if ok else "FAIL"))
        if self.replay is not None and (self.replay.passed or not self.replay.named):
            lines.append("exact replay (fixed z, u): " + ("matches the reference step on every case" if
                                                         self.replay.passed else "differs from the reference step"))
            lines += [f"note: {n}" for n in self.replay.notes]
        elif self.replay is not None:
            lines += ["", str(self.replay)]
        lines += [f"note: {n}" for n in self.notes]
        verdict = "all pass" if self.passed else "NOT exact"
        if self.named:
            verdict += " — named fault: " + "; ".join(self.named)
        lines.append(verdict)
        return "\n".join(lines)

    __repr__ = __str__


def _replay(step, mode, legacy):
    from .sampler_replay import check_sampler_step

    if mode == "mh" and not (hasattr(step, "propose") and hasattr(step, "log_q")):
        return None, ["no replay: an 'mh' step names no faults unless it has step.propose and step.log_q"]
    try:
        report = check_sampler_step(step, mode, rtol=1e-4, atol=1e-6, min_share=0.9, gauss_only=legacy)
    except Exception as e:  # noqa: BLE001 — a step that cannot run on scripted numbers is not at fault
        return None, [f"no replay: the step failed on scripted random numbers ({type(e).__name__}: {e})"]
    notes = [] if report.passed or report.named else [
        "the replay differs from the reference step and matches no known fault (another proposal or another "
        "use of the random numbers is not an error: the statistical tests decide)"]
    return report, notes


def check_sampler_exactness(step, mode="mala", h=None, d=3, targets=None, n_chains=8000, n_steps=10, groups=40,
                            seed=0, alpha=0.005, replay=True):
    r"""Test a sampler step for exactness on several targets with known answers (issue 33).

    .. math:: x_0\sim\pi_{\text{mode}},\ x_T = \mathrm{step}^T(x_0) \Rightarrow x_T\sim\pi_{\text{mode}};\qquad
              (x_t, x_{t+1}) \overset d= (x_{t+1}, x_t)

    (module :mod:`~refscore.conformance.sampler_stats` for the five tests; :math:`\pi_{\text{ula}}` is
    ULA's own Gaussian law, :meth:`~refscore.conformance.sampler_targets.SamplerTarget.law`).

    Parameters
    ----------
    step : ``step(state, h, rng, target) -> state``: ``state`` the (n, d) positions, or what
        ``step.init(x, target)`` returns (positions in ``.position``, ``["position"]`` or first item);
        ``target.log_prob(x)`` (n,), ``target.score(x)`` (n, d); ``rng`` a ``numpy.random.Generator``
        (draw z with ``standard_normal``/``normal`` and u with ``uniform``/``random`` and the exact
        replay names known faults). A three-argument ``step(x, h, rng)`` is checked on N(0, I) only.
    mode : "mala", "ula", "rwmh" (``h`` is the proposal's std) or "mh" (any MH step)
    h : step size (default :data:`DEFAULT_H`); d : dimension >= 3 recommended
    targets : names among ``gauss, aniso, banana, mixture`` (ULA: the Gaussian ones)
    n_chains, n_steps, groups : chains (split into ``groups`` independent calls), steps per run
    alpha : family-wise false-alarm rate, shared by Bonferroni over tests and targets (default 0.005:
        the tests are calibrated, so the rate is close to its bound; docs/conformance.md measures it)

    Returns
    -------
    ExactnessReport
    """
    from .sampler_faults import MODES
    from .sampler_stats import TESTS, exactness_tests, run_paths
    from .sampler_targets import TARGET_NAMES, sampler_targets

    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    h = check_positive(DEFAULT_H[mode] if h is None else h, "h")
    d, n_steps = check_positive_int(d, "d"), check_positive_int(n_steps, "n_steps")
    groups = check_positive_int(groups, "groups", minimum=2)
    n_chains = check_positive_int(n_chains, "n_chains", minimum=2 * groups)
    legacy = not takes_target(step)
    names = targets or (("gauss",) if legacy else ("gauss", "aniso") if mode == "ula" else TARGET_NAMES)
    if legacy:
        step_3 = step
        step = lambda x, h, rng, target: step_3(x, h, rng)  # noqa: E731
        if tuple(names) != ("gauss",):
            raise ValueError("a three-argument step(x, h, rng) knows only N(0, I): targets must be ('gauss',)")
    rng = onp.random.default_rng(seed)
    level = alpha / (len(TESTS) * len(names))
    rows = []
    for target in sampler_targets(d, names):
        law = target.law(mode, h)
        paths = run_paths(step, target, law, h, n_chains - n_chains % groups, groups, n_steps, rng,
                          getattr(step, "init", None))
        for test, (p, worst, _) in exactness_tests(paths, law, groups, rng).items():
            rows.append((target.name, test, p, worst, p >= level))
    report, notes = _replay(step, mode, legacy) if replay else (None, [])
    if legacy:
        notes.append("a three-argument step(x, h, rng) is checked on N(0, I) only; "
                     "step(state, h, rng, target) is checked on every target")
    title = (f"sampler exactness: {mode.upper()}, h={h:g}, d={d}, {n_chains} chains in {groups} groups x "
             f"{n_steps} steps (twice), seed {seed}, family-wise alpha {alpha:g}")
    return ExactnessReport(title, rows, level, report, notes)
