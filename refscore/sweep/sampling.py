r"""Sampler sweeps: ULA's stationary bias against its step, and the conformance checks over many chains.

**``ula-bias``** — ULA on :math:`\mathcal N(0,1)` is :math:`x'=(1-h)x+\sqrt{2h}\,z`, whose stationary
variance solves :math:`v=(1-h)^2v+2h`:

.. math:: v(h) = \frac{1}{1-h/2}\qquad (0<h<2)

(Roberts & Tweedie 1996, §3; seed ``001_…``, Langevin sampling). Each cell runs ``chains`` chains
of :func:`refscore.samplers.langevin` from :math:`\mathcal N(0,1)` for :math:`T` steps, with
:math:`(1-h)^{2T}\le10^{-8}` so that the start is forgotten, and returns :math:`\overline{x^2}`.

**``sampler-checks``** — :func:`refscore.conformance.check_sampler` on refscore's own MALA and ULA
steps, per cell; over cells, the measured-minus-expected of each checked moment is pooled into
a mean with its standard error (many more chains than one check holds), beside the fraction of
cells whose check passed (5 SE each).
"""
from __future__ import annotations

import math

from .. import backends, samplers
from ..conformance.statistical import check_sampler, ula_stationary_variance
from ..energies import Gaussian
from .core import Plot, Size, Sweep

__all__ = ["ula_steps", "ula_cell", "ula_summary", "mala_step_gaussian", "ula_step_gaussian", "checks_cell",
           "ULA_BIAS", "SAMPLER_CHECKS"]


def ula_steps(h, forget=1e-8):
    r"""Steps for ULA on :math:`\mathcal N(0,1)` to forget its start: the smallest :math:`T\ge1` with

    .. math:: (1-h)^{2T} \le \text{forget}

    (the variance of :math:`x_T` is :math:`v + (1-h)^{2T}(v_0 - v)`, from the AR(1) recursion).
    """
    rho = abs(1.0 - h)
    if rho == 0.0:
        return 1
    return max(1, math.ceil(math.log(forget) / (2.0 * math.log(rho))))


def ula_cell(params, seed):
    r"""One ``ula-bias`` cell: :math:`\overline{x_T^2}` over ``chains`` ULA chains on :math:`\mathcal N(0,1)`.

    .. math:: \hat v = \frac1N\sum_{c=1}^N x_{T,c}^2,\qquad \mathbb E\hat v \approx \frac1{1-h/2}
    """
    h = float(params["h"])
    ula_stationary_variance(h)  # refuses an unstable h with a readable error
    bk = backends.get(params.get("backend"))
    rng = bk.rng(int(seed.generate_state(1)[0]))
    law = Gaussian([0.0], [[1.0]], backend=bk.name)
    T = ula_steps(h)
    x, _ = samplers.langevin(law.score, bk.normal(rng, (int(params["chains"]), 1)), h, T, rng)
    v = float(bk.to_numpy((x * x).mean()))
    return {"variance": v, "bias": v - 1.0, "steps": T}


def ula_summary(table, records, root):
    r"""Each h: the measured variance ± SE beside :math:`1/(1-h/2)`, and their distance in SEs.

    .. math:: z = \big(\bar v - (1-h/2)^{-1}\big)/\mathrm{SE}(\bar v)
    """
    rows = []
    for row in table:
        if row.get("variance") is None:
            continue
        closed = ula_stationary_variance(float(row["h"]))
        se = row.get("variance_se")
        rows.append({"h": row["h"], "variance": row["variance"], "se": se, "closed_form": closed,
                     "bias_closed_form": closed - 1.0, "z": (row["variance"] - closed) / se if se else None})
    return {"ula": rows}


def _log_p(x):
    return -0.5 * (x * x).sum(axis=1)


def _score(x):
    return -x


def mala_step_gaussian(x, h, rng):
    r"""refscore's MALA step on :math:`\mathcal N(0,I)` in the conformance signature ``(x, h, rng)``.

    .. math:: y = x - h x + \sqrt{2h}\,z,\ \text{accepted with}\ \min\big(1,\ \tilde p(y)q(x\mid y)/(\tilde p(x)q(y\mid x))\big)
    """
    return samplers.mala_step(samplers.mala_init(_log_p, x, _score), _log_p, _score, h, rng)[0].position


def ula_step_gaussian(x, h, rng):
    r"""refscore's ULA step on :math:`\mathcal N(0,I)` in the conformance signature ``(x, h, rng)``.

    .. math:: x' = x - h x + \sqrt{2h}\,z
    """
    return samplers.langevin_step(x, _score, h, rng)


_NAMES = ("mean", "second_moment", "acceptance")  # the rows of check_sampler, in its order


def checks_cell(params, seed):
    r"""One ``sampler-checks`` cell: the conformance check of refscore's step, row by row.

    .. math:: \text{err}_q = \bar m_q - m_q,\qquad z_q = \text{err}_q/\mathrm{SE}_q,\qquad
              \text{passed} = \textstyle\bigwedge_q |z_q|\le 5
    """
    sampler = params["sampler"]
    step = {"mala": mala_step_gaussian, "ula": ula_step_gaussian}.get(sampler)
    if step is None:
        raise ValueError(f"sampler must be 'mala' or 'ula', got {sampler!r}")
    report = check_sampler(step, sampler, h=float(params["h"]), d=int(params["d"]), n_chains=int(params["chains"]),
                           n_steps=int(params["steps"]), seed=seed)
    out = {"passed": float(report.passed)}
    for name, row in zip(_NAMES, report.rows):
        out[f"{name}_error"] = row.measured - row.expected
        out[f"{name}_z"] = (row.measured - row.expected) / row.stderr
    return out


ULA_BIAS = Sweep(
    name="ula-bias", cell=ula_cell, summarize=ula_summary,
    title="ULA's stationary variance on N(0, 1) against h, beside 1/(1 - h/2)",
    full=Size({"h": (0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.3, 1.6)}, seeds=32, fixed={"chains": 20_000}),
    quick=Size({"h": (0.05, 0.2, 0.5, 1.0, 1.5)}, seeds=4, fixed={"chains": 4000}),
    plot=Plot("h", "variance", logy=True))

SAMPLER_CHECKS = Sweep(
    name="sampler-checks", cell=checks_cell,
    title="The conformance sampler checks (refscore's MALA and ULA) pooled over many chains",
    full=Size({"sampler": ("mala", "ula"), "h": (0.1, 0.3, 0.6, 1.0, 1.5), "d": (1, 4)}, seeds=50,
              fixed={"chains": 20_000, "steps": 20}),
    quick=Size({"sampler": ("mala", "ula"), "h": (0.3, 1.0), "d": (1,)}, seeds=4,
               fixed={"chains": 2000, "steps": 10}),
    plot=Plot("h", "second_moment_error", group="sampler"))
