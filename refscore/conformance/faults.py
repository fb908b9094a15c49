r"""Known faulty variants of every objective, evaluated on a case, for the verifier's diagnosis.

Each :class:`Fault` is a bug that published or student code has shipped (the sources are in the
explanations and in ``docs/conformance.md``). ``value(case)`` returns what the faulty code
computes on that case, **on the case's own inputs and randomness**: per-example values for the
losses, the mapped points for the map objectives. :func:`refscore.conformance.verify` evaluates
all of them on a failing case and names those that match the implementation under test. A fault
lives in the record of the objective it breaks (:mod:`.registry`, ``objectives_<family>.py``);
:data:`FAULTS` (objective -> list) is read from the records once, and the verifier reads it.

.. math:: \text{fault } f \text{ matches } g \iff g_i \approx f(\text{case})_i\ \forall i
          \ \text{and}\ f(\text{case}) \not\approx \texttt{expected}
"""
from __future__ import annotations

from .objective import Fault
from .registry import FAULTS, get

__all__ = ["Fault", "FAULTS", "faults_for"]


def faults_for(objective):
    r"""The known faults of ``objective`` (a list of :class:`Fault`).

    .. math:: \text{e.g. DSM with } \sigma \text{ for } \sigma^2:\quad
              \tfrac12\|s(\tilde x) + (\tilde x - x)/\sigma\|^2 \quad(\text{score\_sde \#26})
    """
    get(objective)  # a ValueError naming the objectives
    return list(FAULTS[objective])
