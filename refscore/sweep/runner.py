r"""Run a sweep on Dask: an in-process ``LocalCluster`` by default, or a running scheduler.

Dask does the scheduling, the placement and the retries (a task on a worker that dies is run again
elsewhere, up to ``distributed.scheduler.allowed-failures`` times); this module only submits one
task per unfinished cell (or per ``batch`` of cells), writes each record as it arrives and
reduces them at the end.

.. math:: \text{throughput} = \frac{\#\text{cells run}}{\text{wall time}}\ \text{cells/s}
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import uuid

from .._progress import progress
from .core import execute_cell, execute_cells, plan_of
from .reduce import mean_se, reduce_records
from .store import Store

__all__ = ["run", "connect", "DASK_MISSING"]

DASK_MISSING = ('running a sweep needs Dask: pip install "refscore[sweep]" (or pip install "dask[distributed]"); '
                "--workers 0 runs the cells in this process without it")


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(DASK_MISSING) from None
    return distributed


@contextlib.contextmanager
def connect(workers=None, scheduler=None, timeout=20):
    r"""A ``distributed.Client``: on ``scheduler`` (an address such as ``tcp://10.0.0.1:8786``), or
    on a new in-process ``LocalCluster`` of ``workers`` single-threaded worker processes
    (default: one per core), on 127.0.0.1 with no dashboard. Closed on exit.

    .. math:: \text{slots} = \text{workers} \times 1\ \text{thread}
    """
    distributed = _distributed()
    if scheduler is not None and workers is not None:
        raise ValueError("give either workers (a local cluster) or scheduler (an address), not both")
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as e:
            raise OSError(f"could not reach the Dask scheduler at {scheduler!r} within {timeout} s ({e})") from None
        with client:
            yield client
        return
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be >= 1 for a Dask cluster, got {workers}")
    # no dashboard; the scheduler's small HTTP server (health, metrics) on a free port, not 8787
    no_dashboard = {"dashboard": False, "dashboard_address": ":0"}
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, scheduler_kwargs=no_dashboard,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _run_dask(sweep, todo, root, client, done, batch=1):
    distributed = _distributed()
    done.started = time.perf_counter()  # the cluster is up: throughput is counted from here
    tag = uuid.uuid4().hex[:8]
    chunks = [todo[k:k + batch] for k in range(0, len(todo), batch)]
    futures = {client.submit(execute_cells, sweep.cell, [(c.index, c.params) for c in chunk], root,
                             key=f"refscore-sweep-{sweep.name}-{tag}-{chunk[0].index}"): chunk for chunk in chunks}
    for future in distributed.as_completed(futures):
        try:
            records = future.result()
        except Exception as e:  # noqa: BLE001 -- e.g. KilledWorker after Dask's retries: report the cells
            records = [{"index": c.index, "params": c.params, "error": f"{type(e).__name__}: {e}", "seconds": None}
                       for c in futures[future]]
        for record in records:
            done(record)
        future.release()


def _run_loop(sweep, todo, root, done):
    done.started = time.perf_counter()
    for c in todo:
        done(execute_cell(sweep.cell, c.index, c.params, root))


def run(sweep, out, workers=None, scheduler=None, client=None, quick=False, seed=0, size=None, show_progress=True,
        batch=1):
    r"""Run every unfinished cell of ``sweep`` and write ``out/results.json``.

    .. math:: \text{cell } i:\ \text{values}_i = \text{cell}(\text{params}_i,\
              \texttt{SeedSequence}(\text{seed}, (i,)));\quad
              \text{table} = \text{reduce}(\{\text{values}_i\})

    Parameters
    ----------
    sweep : :class:`~refscore.sweep.core.Sweep`
    out : folder; cells already finished there (same plan) are not run again
    workers : size of the in-process ``LocalCluster`` (default: one per core); ``0`` runs the
        cells in a plain loop in this process, without Dask (for debugging, and to measure Dask's
        overhead)
    scheduler : address of a running Dask scheduler, instead of a local cluster
    client : an existing ``distributed.Client`` to use (tests, notebooks)
    quick, size : the ``quick`` size, or an explicit :class:`~refscore.sweep.core.Size`
    seed : root seed (an integer >= 0)
    show_progress : a bar over cells on stderr
    batch : cells per Dask task (default 1: each record is written the moment its cell ends); raise
        it when cells take less than ~10 ms, where Dask's per-task cost dominates

    Returns
    -------
    dict : what ``results.json`` holds — ``plan``, ``table`` (no timing inside), ``summary``,
    ``failed`` (each failed cell with its parameters and error), ``timing``, ``cells`` (records).
    """
    size, batch = sweep.size(quick) if size is None else size, _positive(batch)
    plan = plan_of(sweep, size, seed, quick)
    cells = sweep.cells(size)
    store = Store(out, plan)
    # a record counts only for the cell it names, with that cell's parameters (as JSON gives them back)
    records = {i: r for i, r in store.records().items()
               if i < len(cells) and r["params"] == json.loads(json.dumps(cells[i].params))}
    todo = [c for c in cells if "values" not in records.get(c.index, {})]
    bar = progress(len(todo), f"sweep {sweep.name}", enabled=show_progress and bool(todo))
    failures = []

    def done(record):
        store.append(record)
        records[record["index"]] = record
        if "error" in record:
            failures.append(record)
        bar.update()
        bar.set_postfix(failed=len(failures))

    t0 = done.started = time.perf_counter()
    try:
        if todo and workers == 0 and client is None and scheduler is None:
            _run_loop(sweep, todo, seed, done)
        elif todo and client is not None:
            _run_dask(sweep, todo, seed, client, done, batch)
        elif todo:  # nothing left to run: no cluster is started
            with connect(workers, scheduler) as c:
                _run_dask(sweep, todo, seed, c, done, batch)
    finally:
        bar.close()
        store.close()
    end = time.perf_counter()
    results = collect(sweep, plan, cells, records, seed)
    results["timing"] = _timing(sweep, cells, records, results["axes"], len(todo), (end - t0, end - done.started),
                                (workers, scheduler, client, batch))
    if store.ignored_lines:  # lines of cells.jsonl that were not cell records: their cells ran again
        results["ignored_record_lines"] = store.ignored_lines
    store.write_results(results)
    return results


def _positive(batch):
    if int(batch) != batch or batch < 1:
        raise ValueError(f"batch (cells per Dask task) must be an integer >= 1, got {batch!r}")
    return int(batch)


def collect(sweep, plan, cells, records, seed):
    r"""Reduce the records of a run: the table, the sweep's summary, the failed cells.

    .. math:: \text{table}_p = \{\bar y_m \pm \mathrm{SE}_m\}_m \text{ over the replicates of point } p
    """
    axes = list(plan["grid"])
    table = reduce_records(records, cells, axes, sweep.timing)
    ok = {i: r for i, r in records.items() if "values" in r}
    summary = sweep.summarize(table, ok, seed) if sweep.summarize and ok else {}
    failed = [{"index": r["index"], "params": r["params"], "error": r["error"]}
              for i, r in sorted(records.items()) if "error" in r]
    return {"sweep": sweep.name, "title": sweep.title, "plan": plan, "axes": axes, "n_cells": len(cells),
            "n_done": len(ok), "n_failed": len(failed), "table": table, "summary": summary, "failed": failed,
            "cells": [records[i] for i in sorted(records)]}


def _timing(sweep, cells, records, axes, n_run, seconds, where):
    (wall, compute), (workers, scheduler, client, batch) = seconds, where
    where = ("in-process loop" if workers == 0 and client is None and scheduler is None else
             f"scheduler {scheduler}" if scheduler else "given client" if client is not None else
             f"LocalCluster, {workers or 'default'} workers")
    timing = {"where": where, "batch": batch, "cells_run": n_run, "wall_s": wall, "startup_s": wall - compute,
              "cells_per_s": n_run / compute if n_run and compute > 0 else None,
              "cell_s_total": math.fsum(records[c.index].get("seconds") or 0.0 for c in cells if c.index in records)}
    if sweep.timing:
        per_point = {}
        for c in cells:
            r = records.get(c.index, {})
            if "values" in r:
                per_point.setdefault(c.point, []).append(r)
        timing["per_point"] = [
            {**{a: group[0]["params"][a] for a in axes},
             **{k: mean_se([r["values"][k] for r in group if k in r["values"]])[0] for k in sweep.timing}}
            for _, group in sorted(per_point.items())]
    return timing
