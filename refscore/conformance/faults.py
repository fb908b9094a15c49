r"""Known faulty variants of every objective, evaluated on a case, for the verifier's diagnosis.

Each :class:`Fault` is a bug that published or student code has shipped (the sources are in the
explanations and in ``docs/conformance.md``). ``value(case)`` returns what the faulty code
computes on that case, **on the case's own inputs and randomness**: per-example values for the
losses, the mapped points ``(n, d)`` (flattened) for the map objectives.
:func:`refscore.conformance.verify` evaluates all of them on a failing case and names those
that match the implementation under test. The faults live beside the ideas they break:
:mod:`.faults_score` (score matching, samplers), :mod:`.faults_diffusion` (the diffusion half).

.. math:: \text{fault } f \text{ matches } g \iff g_i \approx f(\text{case})_i\ \forall i
          \ \text{and}\ f(\text{case}) \not\approx \texttt{expected}
"""
from __future__ import annotations

from . import faults_diffusion, faults_score, faults_steps  # noqa: F401  (each registers its faults)
from .cases import OBJECTIVES
from .fault_registry import FAULTS, Fault, register

__all__ = ["Fault", "FAULTS", "faults_for", "register"]


def faults_for(objective):
    r"""The known faults of ``objective`` (a list of :class:`Fault`).

    .. math:: \text{e.g. DSM with } \sigma \text{ for } \sigma^2:\quad
              \tfrac12\|s(\tilde x) + (\tilde x - x)/\sigma\|^2 \quad(\text{score\_sde \#26})
    """
    if objective not in FAULTS:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    return list(FAULTS[objective])

