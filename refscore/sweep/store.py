r"""A sweep's out folder: ``sweep.json`` (the plan) and ``cells.jsonl`` (one record per finished cell).

Each record is one JSON line, appended and flushed as soon as the cell finishes, so that a sweep
stopped at any moment keeps every cell it finished; a line cut short by a crash, and a line that
is valid JSON but not a cell record (see :func:`is_record`), are ignored on reading (their cells
run again) and counted in :attr:`Store.ignored_lines`. Reading keeps, for each cell index, the *last* record: a cell that failed and later
succeeded counts as finished.

.. math:: \text{todo} = \{\,i : \text{no record of } i \text{ has values}\,\}
"""
from __future__ import annotations

import json
import numbers
import os

from .._validation import reading

__all__ = ["Store", "is_record"]


def is_record(rec):
    r"""Whether ``rec`` (a parsed line of ``cells.jsonl``) has the shape :func:`~refscore.sweep.execute_cell`
    writes: an integer ``index`` >= 0, a ``params`` object, and either ``values`` (an object of
    numbers) or ``error`` (a string).

    .. math:: \text{record} = (i \in \mathbb N,\ \text{params},\ \text{values} \mid \text{error})
    """
    if not isinstance(rec, dict):
        return False
    index, params = rec.get("index"), rec.get("params")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0 or not isinstance(params, dict):
        return False
    if "values" in rec:
        values = rec["values"]
        return isinstance(values, dict) and all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                                for v in values.values())
    return isinstance(rec.get("error"), str)


class Store:
    r"""The out folder of one sweep run (created if needed).

    .. math:: \text{records}: i \mapsto \text{last record of cell } i \text{ in } \texttt{cells.jsonl}
    """

    def __init__(self, out, plan):
        self.out = os.fspath(out)
        os.makedirs(self.out, exist_ok=True)
        self.plan_path = os.path.join(self.out, "sweep.json")
        self.cells_path = os.path.join(self.out, "cells.jsonl")
        self.results_path = os.path.join(self.out, "results.json")
        self._check_plan(plan)
        self._file = None
        self.ignored_lines = 0

    def _check_plan(self, plan):
        if os.path.exists(self.plan_path):
            with reading(self.plan_path, "sweep plan (sweep.json; delete the folder to start afresh)"), \
                    open(self.plan_path) as f:
                old = json.load(f)
                if not isinstance(old, dict):
                    raise ValueError(f"it holds a {type(old).__name__}, not an object")
            if old != plan:
                diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
                raise ValueError(f"{self.out!r} holds cells of another sweep (they differ in {', '.join(diff)}: "
                                 f"{ {k: old.get(k) for k in diff} } there, { {k: plan.get(k) for k in diff} } now); "
                                 "choose another --out, or delete that folder to start afresh")
            return
        with open(self.plan_path, "w") as f:
            json.dump(plan, f, indent=1)

    def records(self):
        r"""The last record of every cell on disk, keyed by cell index (a cut-off last line is skipped).

        .. math:: i \mapsto r_i
        """
        out, self.ignored_lines = {}, 0
        if not os.path.exists(self.cells_path):
            return out
        with reading(self.cells_path, "cell record file (cells.jsonl)"), open(self.cells_path, errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    rec = None  # a line cut short by a crash; its cell will run again
                if not is_record(rec):
                    self.ignored_lines += bool(line.strip())
                    continue
                out[rec["index"]] = rec
        return out

    def append(self, record):
        r"""Write one record as a JSON line and flush it to the operating system.

        .. math:: \texttt{cells.jsonl} \leftarrow \texttt{cells.jsonl} \,\|\, r_i
        """
        if self._file is None:
            torn = False
            if os.path.exists(self.cells_path) and os.path.getsize(self.cells_path) > 0:
                with open(self.cells_path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    torn = f.read(1) != b"\n"
            self._file = open(self.cells_path, "a")
            if torn:  # a line cut short by a crash: end it, so that the next record starts a line
                self._file.write("\n")
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()

    def close(self):
        r"""Close the records file (records written so far stay on disk).

        .. math:: \varnothing
        """
        if self._file is not None:
            self._file.close()
            self._file = None

    def write_results(self, results):
        r"""Write ``results.json`` atomically (a temporary file, then a rename).

        .. math:: \texttt{results.json} \leftarrow \text{results}
        """
        tmp = self.results_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, self.results_path)
        return self.results_path
