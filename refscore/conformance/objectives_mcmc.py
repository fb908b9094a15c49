r"""Whole Metropolis steps as exact objectives (issue 33, item 1): a MALA step and a random-walk
Metropolis step, run for ``K`` steps in a row on fixed normals :math:`z_t` and uniforms :math:`u_t`,
so that state carried across a rejection (a stale log-density or score) shows in the next step.

.. math:: y = x + h\,s(x) + \sqrt{2h}\,z_t \ (\text{MALA}),\quad y = x + h\,z_t \ (\text{RWMH});\qquad
          x_{t+1} = \begin{cases} y & \log u_t < \log\pi(y) - \log\pi(x) + \log q(x\mid y) - \log q(y\mid x)\\
          x_t & \text{otherwise}\end{cases}

(Roberts & Tweedie 1996, §1.4; Metropolis et al. 1953; Hastings 1970.) The cases avoid the points
where classic formulas coincide: :math:`d \ge 3` (a mean over coordinates is not a sum) and
:math:`h \ne \tfrac12` (where :math:`2h = \sqrt{2h}`). The value of a case is each chain's position
after the ``K`` steps. An implementation ``step(state, h, rng, target)`` (the interface of
``refscore conformance sampler``) is run on a case's numbers by
:func:`refscore.conformance.sampler_replay.run_step_on_case`::

    from refscore.conformance import verify
    from refscore.conformance.sampler_replay import run_step_on_case

    verify("mala_step", lambda case: run_step_on_case(my_mala_step, case)[0][-1])

``target`` (a name: gauss, aniso, banana, mixture) and ``d`` pick the target
(:func:`refscore.conformance.sampler_targets.sampler_targets`); the faults are the classic bugs of
:mod:`refscore.conformance.sampler_faults`, each run on the same numbers.
"""
from __future__ import annotations

from .objective import Fault, Objective, case
from .sampler_faults import SAMPLER_FAULTS, faults_of_mode
from .sampler_replay import N_STEPS, STEP_CASES, step_reference
from .sampler_targets import sampler_targets

__all__ = ["RECORDS"]


def _inputs(mode):
    def inputs(o, n, shape, rng):
        target = sampler_targets(o["d"], (o["target"],))[0]
        x = target.draw(rng, n)
        return {"mode": mode, "target": o["target"], "d": o["d"], "h": o["h"], "x": x, "x0": x,
                "z": rng.standard_normal((N_STEPS, n, o["d"])), "u": rng.uniform(size=(N_STEPS, n))}

    return inputs


def _end(c, fault=None):
    r"""Each chain's position after the case's ``K`` steps of the reference (or ``fault``'s) step."""
    return step_reference({**c, "x0": c["x"]}, fault)[-1]


def _fault(name):
    f = SAMPLER_FAULTS[name]
    return Fault(name, f.text + (f" ({f.source})" if f.source else ""), lambda c: _end(c, name))


def _record(mode, name, text, equation, source):
    return Objective(
        name=name, fields=f"`target` (gauss, aniso, banana, mixture), `d`, `h`, `x` = `x0` (n, d) exact draws, "
                          f"`z` ({N_STEPS}, n, d), `u` ({N_STEPS}, n)",
        text=text, equation=equation, source=source, is_map=True, inputs=_inputs(mode), reference=_end,
        cases=tuple(case(f"{t}-d{d}-h{h:g}", None, target=t, d=d, h=h) for t, d, h in STEP_CASES[mode]),
        faults=tuple(_fault(f) for f in faults_of_mode(mode)))


MALA_STEP = _record(
    "mala", "mala_step",
    f"{N_STEPS} MALA steps on fixed z, u: y = x + h s(x) + √(2h) z, accepted when log u < log α "
    "(with the Langevin proposal's Hastings term); each chain's position after the last step",
    r"$y=x+h s(x)+\sqrt{2h}z$, $x'=y$ if $\log u<\log\frac{\pi(y)q(x\mid y)}{\pi(x)q(y\mid x)}$, "
    r"$q(y\mid x)=\mathcal N(y;x+hs(x),2hI)$",
    "Roberts & Tweedie 1996, §1.4; seed 001 (Metropolis-adjusted Langevin)")
RWMH_STEP = _record(
    "rwmh", "rwmh_step",
    f"{N_STEPS} random-walk Metropolis steps on fixed z, u: y = x + h z, accepted when log u < log π(y) − "
    "log π(x); each chain's position after the last step",
    r"$y=x+hz$, $x'=y$ if $\log u<\log\pi(y)-\log\pi(x)$",
    "Metropolis et al. 1953")

RECORDS = (MALA_STEP, RWMH_STEP)
