r"""What a sweep is: a named grid of parameters, a pure cell function, a seed per cell.

A sweep runs the cell function once per (grid point, replicate) pair. Cell :math:`i` (its index in
the order grid point × replicate, replicates fastest) gets the seed

.. math:: \text{seed}_i = \texttt{SeedSequence}(\text{root},\ \texttt{spawn\_key}=(i,))

(NumPy's ``SeedSequence`` spawning, NEP 19: streams that are independent for different ``i``),
so a cell's numbers depend only on the root seed, its parameters and its index — never on which
worker ran it or when. That is what makes the reduced table the same with 1, 2 or 100 workers.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
import traceback
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as onp

__all__ = ["Size", "Plot", "Sweep", "Cell", "cell_seed", "execute_cell", "execute_cells", "plan_of"]


class Size(NamedTuple):
    r"""One size of a sweep: the grid axes, the replicates per grid point, constant parameters.

    .. math:: \#\text{cells} = \text{seeds}\times\prod_{a\in\text{grid}} |\text{grid}[a]|

    ``grid`` maps an axis name to its values (numbers or strings, JSON-able); ``fixed`` holds the
    parameters every cell also receives (sizes, matrices as nested lists).
    """

    grid: dict
    seeds: int
    fixed: dict = {}


class Plot(NamedTuple):
    r"""How the command line draws a sweep: ``y`` (± its SE) against ``x``, one line per ``group``.

    .. math:: \bar y(x) \pm \mathrm{SE},\qquad \mathrm{SE}=\mathrm{sd}/\sqrt{k}
    """

    x: str
    y: str
    group: str | None = None
    logx: bool = False
    logy: bool = False


class Cell(NamedTuple):
    r"""One unit of work: its index :math:`i`, its grid point's index, and its parameters."""

    index: int
    point: int
    params: dict


@dataclass(frozen=True)
class Sweep:
    r"""A named sweep: grid, cell function, and how to read its results.

    .. math:: \text{cell}: (\text{params}, \text{seed}) \mapsto \{\text{name}: x \in \mathbb R\}

    Parameters
    ----------
    name, title : the command-line name and a one-line description
    cell : ``cell(params, seed) -> dict`` of numbers; ``seed`` is a ``numpy.random.SeedSequence``
        (pass it to ``numpy.random.default_rng``). Must be pure: its numbers depend on
        ``params`` and ``seed`` only. A module-level function, so that workers can import it.
    full, quick : :class:`Size` — the real sweep and the ``--quick`` one
    timing : names in the cell's dict that are wall times: kept in the cell records and the
        ``timing`` section, never in the table (they differ from run to run)
    summarize : optional ``summarize(table, records, root) -> dict`` of derived results
        (e.g. the minimiser over a grid axis, with a bootstrap SE); deterministic given ``root``
    plot : optional :class:`Plot`
    """

    name: str
    title: str
    cell: Callable
    full: Size
    quick: Size
    timing: tuple = ()
    summarize: Callable | None = None
    plot: Plot | None = None

    def size(self, quick=False):
        r"""The :class:`Size` to run: ``quick`` or ``full``."""
        return self.quick if quick else self.full

    def cells(self, size):
        r"""Every cell of ``size`` in index order: grid points in row-major order, replicates fastest.

        .. math:: i = p\cdot\text{seeds} + r,\quad p = \text{grid point},\ r = \text{replicate}
        """
        axes = list(size.grid)
        out = []
        for p, values in enumerate(itertools.product(*(size.grid[a] for a in axes))):
            point = dict(zip(axes, values))
            for r in range(size.seeds):
                out.append(Cell(p * size.seeds + r, p, {**size.fixed, **point}))
        return out


def cell_seed(root, index):
    r"""The seed of cell ``index`` under root seed ``root``:

    .. math:: \texttt{SeedSequence}(\text{root},\ \texttt{spawn\_key}=(i,))

    the same sequence that ``SeedSequence(root).spawn(i + 1)[i]`` gives (NEP 19), without
    spawning the others.
    """
    if int(root) < 0 or int(index) < 0:
        raise ValueError(f"seeds and cell indices must be >= 0, got root={root}, index={index}")
    return onp.random.SeedSequence(int(root), spawn_key=(int(index),))


def plan_of(sweep, size, root, quick):
    r"""The JSON description of one run (``DIR/sweep.json``): two runs share an out folder only if
    their plans are equal, so that every finished cell on disk belongs to this run.

    .. math:: \text{plan} = (\text{name}, \text{quick}, \text{root}, \text{grid}, \text{seeds}, \text{fixed})
    """
    plan = {"sweep": sweep.name, "quick": bool(quick), "seed": int(root),
            "grid": {a: list(v) for a, v in size.grid.items()}, "seeds": int(size.seeds), "fixed": dict(size.fixed)}
    return json.loads(json.dumps(plan))  # tuples -> lists, as they come back from disk


def _numbers(values, index):
    if not isinstance(values, dict):
        raise TypeError(f"a cell must return a dict of numbers, cell {index} returned {type(values).__name__}")
    out = {}
    for k, v in values.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise TypeError(f"cell {index} returned {k}={v!r}: every value must be a number") from None
    return out


def execute_cell(cell, index, params, root):
    r"""Run one cell (on a worker): the record ``{"index", "params", "values", "seconds"}``, or
    ``{"index", "params", "error", "traceback", "seconds"}`` when the cell raises.

    .. math:: \text{values} = \text{cell}(\text{params},\ \texttt{SeedSequence}(\text{root}, (i,)))

    An exception inside the cell is caught and recorded here, so that Dask does not retry a cell
    that will fail again; a worker that dies is Dask's to retry.
    """
    t0 = time.perf_counter()
    record = {"index": int(index), "params": params}
    try:
        record["values"] = _numbers(cell(dict(params), cell_seed(root, index)), index)
    except Exception as e:  # noqa: BLE001 -- any failure of user code is reported, not raised
        record["error"] = f"{type(e).__name__}: {e}"
        record["traceback"] = "".join(traceback.format_exception(e)[-3:])
    record["seconds"] = time.perf_counter() - t0
    record["pid"] = os.getpid()
    return record


def execute_cells(cell, items, root):
    r"""Run several cells in one task (``items``: ``(index, params)`` pairs): their records, in order.

    .. math:: [\,\text{record}_i \text{ for } (i, \text{params}_i) \in \text{items}\,]

    One Dask task per cell costs the scheduler a few milliseconds; for cells shorter than that,
    a batch of cells per task spreads the cost (``run(..., batch=k)``).
    """
    return [execute_cell(cell, i, params, root) for i, params in items]


def finite_or_none(x):
    r"""``x`` as a float, or ``None`` when it is not finite (JSON has no NaN).

    .. math:: x \mapsto x \text{ if } |x| < \infty \text{ else None}
    """
    return float(x) if x is not None and math.isfinite(x) else None
