r"""The sweeps that ship with refscore, by command-line name.

.. math:: \text{name} \mapsto (\text{grid}, \text{cell}, \text{reduction})
"""
from __future__ import annotations

from .open_questions import Q21, Q22
from .sampling import SAMPLER_CHECKS, ULA_BIAS

__all__ = ["SWEEPS", "names", "get"]

SWEEPS = {s.name: s for s in (Q21, Q22, ULA_BIAS, SAMPLER_CHECKS)}


def names():
    r"""The names of the shipped sweeps, in the order ``refscore sweep list`` prints them.

    .. math:: \{\texttt{q21-sigma}, \texttt{q22-projections}, \texttt{ula-bias}, \texttt{sampler-checks}\}
    """
    return list(SWEEPS)


def get(name):
    r"""The sweep called ``name``; an unknown name is a ``ValueError`` that lists the known ones.

    .. math:: \text{name} \mapsto \text{Sweep}
    """
    try:
        return SWEEPS[name]
    except KeyError:
        raise ValueError(f"unknown sweep {name!r}; known sweeps: {', '.join(SWEEPS)}") from None
