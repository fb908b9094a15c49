r"""The built-in conformance cases: deterministic inputs, explicit randomness, refscore's values.

Every case is a plain ``dict`` (API.md, "Conformance"): ``name``, ``objective``, its inputs (points
``x`` of shape ``(n, *shape)`` — flat ``(n, d)`` or image-shaped ``(n, 2, 2)`` / ``(n, 1, 3, 3)``,
d the product — a ``model``, the randomness the objective consumes (``v``, ``z``, ``eps``, ``y``),
its hyper-parameters; or, for a schedule, its times or levels), and ``expected``, ``(n,)`` or
``(n, k)``, computed by refscore. Map objectives also carry ``expected_x``. What each objective
holds is its record's (:mod:`.registry`; the fields are listed in ``export``'s README).

The inputs are drawn from ``numpy.random.default_rng(crc32(name))``, so a case's numbers depend
only on its name; :func:`refscore.conformance.export` freezes them to files.
"""
from __future__ import annotations

import copy

from .registry import DIFFUSION_OBJECTIVES, OBJECTIVES, REGISTRY, SCORE_OBJECTIVES, get

__all__ = ["cases", "OBJECTIVES", "SCORE_OBJECTIVES", "DIFFUSION_OBJECTIVES"]

_CACHE = []


def cases(objective=None):
    r"""The built-in cases (deep copies), all of them or those of one ``objective``.

    .. math:: \texttt{expected}_i = F(x_i;\ \text{model},\ \text{randomness},\ \text{hyper-parameters})

    with :math:`F` the objective's reference (API.md, "Conformance"; the equations and their
    sources are in ``docs/conformance.md``).

    Parameters
    ----------
    objective : one of :data:`OBJECTIVES`, or None for every case

    Returns
    -------
    list of dict
    """
    if objective is not None:
        get(objective)  # a ValueError naming the objectives
    if not _CACHE:
        _CACHE.extend(o.build(spec) for o in REGISTRY.values() for spec in o.cases)
    return [copy.deepcopy(c) for c in _CACHE if objective in (None, c["objective"])]
