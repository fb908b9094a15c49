r"""A conformance objective is one record, :class:`Objective`: its cases, its reference, the fields
and equation that the docs and ``export``'s README print, and its known faults (:class:`Fault`).

The records live in the modules of their family, ``objectives_<family>.py`` (score matching,
denoising, Langevin; SDEs, DDPM, parametrisations, EDM, sampler steps, likelihoods), and
:mod:`.registry` collects them: the list of objectives, the cases, the verifier's faults, the
README and the docs tables are all read from the records. A fault lives in the record of the
objective it breaks. Adding an objective or a fault is one record in one family module, plus its
test (``docs/conformance.md``, "Adding an objective").

A case's numbers depend only on its name: its inputs are drawn from
``numpy.random.default_rng(crc32(name))``.

.. math:: \texttt{expected}_i = F(\text{inputs}_i),\qquad
          \text{inputs} \sim \texttt{default\_rng}(\mathrm{crc32}(\text{name}))
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as onp

__all__ = ["Objective", "Fault", "Case", "case", "N", "SHAPES"]

N = 6  # examples per case
SHAPES = {"flat": (3,), "img": (2, 2), "chw": (1, 3, 3)}  # the point shapes, by key


class Fault(NamedTuple):
    r"""A named faulty variant: ``value(case)`` is what that bug computes on the case, on the
    case's own inputs and randomness (per-example values, or the mapped points of a map
    objective). ``explanation`` says what the code does and where it was found.
    ``convention=True`` marks a legitimate variant (a library's documented choice, not a bug):
    the verifier reports it as "convention: <name> (<explanation>)".

    .. math:: \text{e.g. ``missing ½'':}\quad \|s - s^*\|^2 \ \text{instead of}\ \tfrac12\|s - s^*\|^2
    """

    name: str
    explanation: str
    value: Callable
    convention: bool = False


class Case(NamedTuple):
    r"""One built-in case of an objective: ``tag`` names it (``"<objective>-<tag>"``), ``shape`` is
    a key of :data:`SHAPES` for objectives on points (None for schedules), ``options`` are passed
    to the objective's ``inputs``.

    .. math:: \text{name} = \text{objective} + \texttt{"-"} + \text{tag}
    """

    tag: str
    shape: str | None
    options: dict


def case(tag, shape=None, **options):
    r"""A :class:`Case`: ``case("mlp-img", "img", model="mlp", sigma=0.3)``.

    .. math:: (\text{tag}, \text{shape}, \text{options})
    """
    return Case(tag, shape, options)


@dataclass(frozen=True)
class Objective:
    r"""One conformance objective, everything about it in one place.

    Attributes
    ----------
    name : the objective's name (``refscore conformance list``)
    fields : the case's own fields, markdown (``"`sigma`, `z` (n, *shape)"``)
    text : the per-example value in plain text, for ``export``'s README
    equation : the per-example value in LaTeX, for ``docs/conformance.md``
    source : the paper or seed file and equation the reference follows
    inputs : ``(options, n, shape, rng) -> dict`` the case's inputs; ``shape`` is a tuple, or
        None for an objective without points
    reference : ``case -> array``: ``expected`` ``(n,)`` or ``(n, k)``, or for a map objective the
        mapped points (``expected_x``; ``expected`` is then their squared norms)
    cases : the built-in :class:`Case` specs
    faults : the known :class:`Fault` s, in the order the verifier reports them
    is_map : the reference returns points
    columns : names of the k columns when ``expected`` is ``(n, k)``
    tolerances : ``{"float64": (rtol, atol), "float32": (rtol, atol)}`` when the objective's
        implementations are approximate by nature (an ODE solve); None: the verifier's defaults

    .. math:: \texttt{expected}_i = \text{reference}(\text{inputs}(\text{options}, n, \text{shape}, \text{rng}))_i
    """

    name: str
    fields: str
    text: str
    equation: str
    source: str
    inputs: Callable
    reference: Callable
    cases: tuple
    faults: tuple
    is_map: bool = False
    columns: tuple = ()
    tolerances: dict | None = None

    def case_name(self, spec):
        r"""The name of the case built from ``spec``: ``"<objective>-<tag>"``, or the objective's
        name for an empty tag.

        .. math:: \text{name} = \text{objective} + \texttt{"-"} + \text{tag}
        """
        return f"{self.name}-{spec.tag}" if spec.tag else self.name

    def expected(self, case):
        r"""``(expected, expected_x or None)`` of a case, by the reference.

        .. math:: \texttt{expected}_i = \lVert\texttt{expected\_x}_i\rVert^2 \ \text{(map objectives)}
        """
        out = onp.asarray(self.reference(case), dtype=float)
        if not self.is_map:
            return out, None
        out = out.reshape(out.shape[0], -1)
        return onp.sum(out * out, axis=1), out.reshape(onp.shape(case["x"]))

    def build(self, spec):
        r"""The case of ``spec``: its inputs drawn from ``default_rng(crc32(name))``, and its
        ``expected`` (and ``expected_x``).

        .. math:: \text{rng} = \texttt{default\_rng}(\mathrm{crc32}(\text{name}))
        """
        name = self.case_name(spec)
        rng = onp.random.default_rng(zlib.crc32(name.encode()))
        shape = None if spec.shape is None else SHAPES[spec.shape]
        built = {"name": name, "objective": self.name, **self.inputs(spec.options, N, shape, rng)}
        expected, expected_x = self.expected(built)
        built["expected"] = expected
        if expected_x is not None:
            built["expected_x"] = expected_x
        return built
