r"""A sweep's out folder: ``sweep.json`` (the plan) and ``cells.jsonl`` (one record per finished cell).

Each record is one JSON line, appended and flushed as soon as the cell finishes, so that a sweep
stopped at any moment keeps every cell it finished; a line cut short by a crash is ignored on
reading. Reading keeps, for each cell index, the *last* record: a cell that failed and later
succeeded counts as finished.

.. math:: \text{todo} = \{\,i : \text{no record of } i \text{ has values}\,\}
"""
from __future__ import annotations

import json
import os

__all__ = ["Store"]


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

    def _check_plan(self, plan):
        if os.path.exists(self.plan_path):
            with open(self.plan_path) as f:
                old = json.load(f)
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
        out = {}
        if not os.path.exists(self.cells_path):
            return out
        with open(self.cells_path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash; its cell will run again
                out[int(rec["index"])] = rec
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
