r"""Sweeps: named grids of independent, seeded cells, run on Dask, reduced to tables with error bars.

A sweep is a grid of parameters, a pure cell function ``(params, seed) -> dict of numbers`` and a
reduction to one row per grid point (mean ± standard error over the replicates). Cell :math:`i`
is seeded with ``SeedSequence(root, spawn_key=(i,))``, so the table is the same with any number
of workers and in any completion order. :func:`run` runs it on an in-process
``distributed.LocalCluster`` (or a scheduler address), streams one record per finished cell to
``out/cells.jsonl``, skips cells already there, reports a cell that raises and goes on. Dask is
needed only to run (the ``sweep`` extra: ``pip install "refscore[sweep]"``).

.. math:: \text{row}_p = \Big(\bar y = \tfrac1k\textstyle\sum_r y_{p,r},\ \
          \mathrm{SE} = \sqrt{\textstyle\sum_r (y_{p,r}-\bar y)^2/(k(k-1))}\Big)
"""
from .core import Cell, Plot, Size, Sweep, cell_seed, execute_cell, execute_cells, plan_of
from .reduce import markdown, mean_se, reduce_records
from .registry import SWEEPS, get, names
from .runner import connect, run

__all__ = ["Sweep", "Size", "Plot", "Cell", "cell_seed", "execute_cell", "execute_cells", "plan_of", "reduce_records", "mean_se",
           "markdown", "run", "connect", "SWEEPS", "get", "names"]
