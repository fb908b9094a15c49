r"""The registry of known faults: :class:`Fault` and :func:`register`, which the modules that
model the faults (:mod:`.faults_score`, :mod:`.faults_diffusion`, :mod:`.faults_steps`) fill and
:mod:`.faults` reads.

.. math:: \texttt{FAULTS}[o] = \{(\text{name}, \text{explanation}, f)\}\ \text{for each objective } o
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from .cases import OBJECTIVES

__all__ = ["Fault", "FAULTS", "register"]


class Fault(NamedTuple):
    r"""A named faulty variant: ``value(case)`` is what that bug computes on the case.

    .. math:: \text{e.g. ``missing ½'':}\quad \|s - s^*\|^2 \ \text{instead of}\ \tfrac12\|s - s^*\|^2
    """

    name: str
    explanation: str
    value: Callable


FAULTS = {o: [] for o in OBJECTIVES}


def register(objectives, name, explanation):
    r"""Decorator: register ``fn(case)`` as the fault ``name`` of each of the space-separated
    ``objectives``.

    .. math:: \texttt{FAULTS}[o] \leftarrow \texttt{FAULTS}[o] \cup \{(\text{name}, \text{explanation}, fn)\}
    """
    def add(fn):
        for o in objectives.split():
            FAULTS[o].append(Fault(name, explanation, fn))
        return fn
    return add
