r"""Every conformance objective, collected from the records of its family module: the one list
that ``refscore conformance list``, :func:`refscore.conformance.cases`, the verifier's faults,
``export``'s README and the docs tables are read from.

The rule: an objective, with its cases, its reference and its faults, is one :class:`.Objective`
record in the module of its family (``objectives_<family>.py``); a fault is a :class:`.Fault` in
the record of the objective it breaks. The families, in the order ``list`` prints them:

* score side: :mod:`.objectives_score` (ESM, ISM, SSM), :mod:`.objectives_denoising` (DSM, NCSN,
  VP denoising, Tweedie), :mod:`.objectives_langevin` (Langevin step, MALA ratio),
  :mod:`.objectives_mcmc` (whole MALA and random-walk Metropolis steps on fixed numbers);
* diffusion side: :mod:`.objectives_sde` (marginals, weighting, reverse step, ODE drift),
  :mod:`.objectives_ddpm`, :mod:`.objectives_schedules` (β schedules, spacings, DDIM, Min-SNR),
  :mod:`.objectives_respaced` (strided posterior, learned range),
  :mod:`.objectives_parametrisation`, :mod:`.objectives_edm` (and k-diffusion),
  :mod:`.objectives_edm_sampling` (σ list, churn, Euler/Heun steps), :mod:`.objectives_samplers`
  (corrector, annealed Langevin, final denoise),
  :mod:`.objectives_likelihood` (bits/dim, PF-ODE log-likelihood).

.. math:: \texttt{OBJECTIVES} = (o.\text{name} : o \in \text{RECORDS of each family, in order})
"""
from __future__ import annotations

from . import (objectives_ddpm, objectives_denoising, objectives_edm, objectives_edm_sampling, objectives_langevin,
               objectives_likelihood, objectives_mcmc, objectives_parametrisation, objectives_respaced,
               objectives_samplers, objectives_schedules, objectives_score, objectives_sde)

__all__ = ["REGISTRY", "OBJECTIVES", "SCORE_OBJECTIVES", "DIFFUSION_OBJECTIVES", "FAULTS", "COLUMNS",
           "MAP_OBJECTIVES", "OBJECTIVE_TOLERANCES", "get", "reference_values", "collect"]

SCORE_FAMILIES = (objectives_score, objectives_denoising, objectives_langevin, objectives_mcmc)
DIFFUSION_FAMILIES = (objectives_sde, objectives_ddpm, objectives_schedules, objectives_respaced,
                      objectives_parametrisation, objectives_edm, objectives_edm_sampling, objectives_samplers,
                      objectives_likelihood)


def collect(families):
    r"""The records of ``families`` (modules with a ``RECORDS`` tuple of :class:`.Objective`), in
    order; a ``ValueError`` when two objectives share a name, an objective has two faults of one
    name, or it has no case.

    .. math:: \text{RECORDS}_1 \,\Vert\, \text{RECORDS}_2 \,\Vert \cdots
    """
    records = [o for module in families for o in module.RECORDS]
    seen = set()
    for o in records:
        faults = [f.name for f in o.faults]
        twice = sorted({f for f in faults if faults.count(f) > 1})
        if o.name in seen:
            raise ValueError(f"objective names must be unique, got {o.name!r} twice")
        if twice:
            raise ValueError(f"objective {o.name!r}: fault names must be unique, got {twice} twice")
        if not o.cases:
            raise ValueError(f"objective {o.name!r} needs at least one case, got none")
        seen.add(o.name)
    return records


REGISTRY = {o.name: o for o in collect(SCORE_FAMILIES + DIFFUSION_FAMILIES)}
SCORE_OBJECTIVES = tuple(o.name for m in SCORE_FAMILIES for o in m.RECORDS)
DIFFUSION_OBJECTIVES = tuple(o.name for m in DIFFUSION_FAMILIES for o in m.RECORDS)
OBJECTIVES = SCORE_OBJECTIVES + DIFFUSION_OBJECTIVES

FAULTS = {name: list(o.faults) for name, o in REGISTRY.items()}  # objective -> [Fault]
COLUMNS = {name: o.columns for name, o in REGISTRY.items() if o.columns}  # the (n, k) objectives' columns
MAP_OBJECTIVES = tuple(name for name, o in REGISTRY.items() if o.is_map)
OBJECTIVE_TOLERANCES = {name: o.tolerances for name, o in REGISTRY.items() if o.tolerances}


def get(objective):
    r"""The :class:`.Objective` record named ``objective``; a ``ValueError`` listing them otherwise.

    .. math:: \text{name} \mapsto \text{record}
    """
    if objective not in REGISTRY:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    return REGISTRY[objective]


def reference_values(case):
    r"""``(expected, expected_x or None)`` for a case, by its objective's reference.

    .. math:: \texttt{expected}_i = \lVert\texttt{expected\_x}_i\rVert^2 \ \text{(map objectives)}
    """
    return get(case["objective"]).expected(case)
