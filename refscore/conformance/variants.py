r"""Reference variants: a convention of an objective (a :class:`.Fault` with ``convention=True``)
used as the reference, so that a library that follows it can pass (``verify(..., variant=NAME)``,
``refscore conformance verify --variant NAME``).

.. math:: \texttt{expected}_i \leftarrow f_\text{variant}(\text{case})_i
"""
from __future__ import annotations

import numpy as onp

from .faults import faults_for
from .registry import MAP_OBJECTIVES

__all__ = ["with_variant", "conventions_of"]


def conventions_of(objective):
    r"""The conventions (legitimate variants) of ``objective``, by name.

    .. math:: \{f \in \text{faults}(\text{objective}) : f.\text{convention}\}
    """
    return {f.name: f for f in faults_for(objective) if f.convention}


def with_variant(case, variant):
    r"""``case`` with its ``expected`` (and ``expected_x``) replaced by the values of the objective's
    convention named ``variant``: the reference of a library that follows that convention.

    .. math:: \texttt{expected}_i \leftarrow f_\text{variant}(\text{case})_i
    """
    conventions = conventions_of(case["objective"])
    if variant not in conventions:
        raise ValueError(f"variant must be one of the conventions of {case['objective']!r}: "
                         f"{sorted(conventions) or 'it has none'}, got {variant!r}")
    out = dict(case)
    value = onp.asarray(conventions[variant].value(case), dtype=float)
    if case["objective"] in MAP_OBJECTIVES:
        out["expected_x"] = value.reshape(onp.shape(case["x"]))
        flat = value.reshape(len(value), -1)
        out["expected"] = onp.sum(flat * flat, axis=1)
    else:
        out["expected"] = value.reshape(onp.shape(case["expected"]))
    return out

