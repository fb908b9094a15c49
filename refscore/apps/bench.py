r"""``refscore bench``: throughput of the main losses and samplers, each as a ratio against a
reference measured in the same process (never an absolute timing test).

The workloads are a registry (:data:`WORKLOADS`): each has a ``name``, a ``setup(ctx)`` building
its inputs, a ``run(state)`` timed as refscore's, and ``references(ctx, state)`` giving
``(label, callable)`` pairs timed the same way (PyTorch eager on the same device with
``--torch``; refscore-internal baselines otherwise). Timings are the best of ``k`` repeats
(a shared machine adds noise, never speed). The table is printed and written to
``bench.json`` in ``--out``.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Callable

from . import bench_unet as U
from . import bench_workloads as W


@dataclass(frozen=True)
class Workload:
    r"""One benchmark: ``setup(ctx) -> state``; ``run(state)`` is timed; ``references(ctx, state)``
    yields ``(label, fn)`` baselines; ``size(ctx)`` is the work per run (for throughput)."""

    name: str
    setup: Callable
    run: Callable
    references: Callable
    size: Callable


WORKLOADS = [
    Workload("SSM-VR loss + grad, MLP d=2 H=128", W.ssm_setup, W.ssm_run, W.ssm_references,
             lambda ctx: ctx.n_ssm),
    Workload("ULA, GMM K=8 d=64, 50 steps", W.gmm_ula_setup, W.gmm_ula_run, W.gmm_ula_references,
             lambda ctx: ctx.n_gmm * 50),
    Workload("ULA, 2-D N(0, I), 100 000 chains x 100 steps", W.gauss_ula_setup, W.gauss_ula_run,
             W.gauss_ula_references, lambda ctx: ctx.n_chains * ctx.ula_steps),
    Workload("U-Net train step, MNIST 28x28, batch 64, one call", U.unet_setup, U.step_run, U.step_references,
             lambda ctx: ctx.n_unet),
    Workload("U-Net forward b256, MNIST 28x28", U.forward_setup, U.forward_run, U.forward_references,
             lambda ctx: ctx.n_unet_fwd),
    Workload("U-Net train step, MNIST 28x28, 2 shards on 2 threads", W.unet_step_setup, W.unet_step_run,
             W.unet_step_references, lambda ctx: ctx.n_unet),
]


def best_times(runs, repeats=3):
    r"""Best wall-clock time of each ``(f, sync)`` in ``runs``, timed *in turn* within every repeat
    (after one warm-up each), so that a change of load on a shared machine hits refscore and its
    references alike instead of whichever happened to run during it."""
    for f, sync in runs:
        f()
        sync()
    best = [math.inf] * len(runs)
    for _ in range(repeats):
        for i, (f, sync) in enumerate(runs):
            t0 = time.perf_counter()
            f()
            sync()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


class Context:
    r"""What every workload's setup sees: backend, dtype, sizes, seed, the torch module (or None)."""

    def __init__(self, bk, dtype, quick, seed, torch_mod, workload_filter=None, sizes=None):
        self.bk, self.dtype, self.seed, self.torch = bk, dtype, seed, torch_mod
        gpu = bk.name == "cupy"
        self.gpu = gpu
        self.n_ssm = 2**20 if gpu else (2**12 if quick else 2**14)
        self.n_gmm = 2**18 if gpu else (2**10 if quick else 2**12)
        self.n_chains = 10**7 if gpu else (10**4 if quick else 10**5)
        self.ula_steps = 20 if quick else 100
        self.n_unet = 256 if gpu else (16 if quick else 64)
        self.n_unet_fwd = 32 if quick and not gpu else 256
        for name, value in (sizes or {}).items():  # e.g. the dry run's tiny sizes
            if not hasattr(self, name):
                raise ValueError(f"unknown bench size {name!r}; known: n_ssm, n_gmm, n_chains, ula_steps, n_unet, n_unet_fwd")
            setattr(self, name, value)
        self.sync = bk.synchronize
        self.torch_sync = (torch_mod.cuda.synchronize if gpu else (lambda: None)) if torch_mod else None
        self.torch_device = (torch_mod.device("cuda" if gpu else "cpu")) if torch_mod else None


def _torch_or_none(want):
    if not want:
        return None
    try:
        import torch
    except ImportError:
        print('PyTorch is not installed: torch references skipped (pip install "refscore[bench]")')
        return None
    return torch


def _check_bench_args(dtypes, repeats, only, sizes):
    """Refuse what would give an empty or meaningless table, naming the argument and its value."""
    from .._validation import check_choice, check_positive_int

    dtypes = (dtypes,) if isinstance(dtypes, str) else tuple(dtypes)
    if not dtypes:
        raise ValueError("dtypes must name at least one of 'float64', 'float32', got an empty sequence")
    for dt in dtypes:
        check_choice(dt, "dtypes entry", ("float64", "float32"))
    repeats = check_positive_int(repeats, "repeats")
    if only is not None and not any(str(only) in w.name for w in WORKLOADS):
        raise ValueError(f"only={only!r} matches no workload; the workloads are: "
                         f"{'; '.join(w.name for w in WORKLOADS)}")
    for name, value in (sizes or {}).items():
        check_positive_int(value, f"sizes[{name!r}]")
    return dtypes, repeats


def run_bench(backend=None, seed=0, out="bench-output", quick=False, torch=False, dtypes=("float64", "float32"),
              repeats=3, only=None, sizes=None):
    r"""Time every workload in :data:`WORKLOADS` (or those whose name contains ``only``) for each
    dtype, print the table and write ``bench.json``. ``sizes`` overrides :class:`Context`'s sizes
    (``n_ssm``, ``n_gmm``, ``n_chains``, ``ula_steps``, ``n_unet``, ``n_unet_fwd``). Returns 0 (the CLI's exit status)."""
    from .. import backends
    from ..host_memory import keep_freed_memory
    from .report import Table

    dtypes, repeats = _check_bench_args(dtypes, repeats, only, sizes)
    bk = backends.get(backend)
    # freed memory kept, for refscore and the references alike: otherwise each one's page faults
    # depend on what the other allocated before it in this process (refscore.host_memory)
    keep_freed_memory()
    tmod = _torch_or_none(torch)
    rows = []
    for dt in dtypes:
        ctx = Context(bk, dt, quick, seed, tmod, sizes=sizes)
        for w in WORKLOADS:
            if only and only not in w.name:
                continue
            state = w.setup(ctx)
            refs = list(w.references(ctx, state))
            t, *t_refs = best_times([(lambda: w.run(state), ctx.sync)] + [(f, sync) for _, f, sync in refs], repeats)
            for (label, _, _), t_ref in zip(refs, t_refs):
                rows.append((w.name, dt, w.size(ctx), t * 1e3, w.size(ctx) / t, label, t_ref * 1e3, t_ref / t))
    device = f"{bk.name} on {bk.device_name() if bk.name == 'cupy' else platform.machine()}, {os.cpu_count()} CPUs"
    table = Table(f"refscore bench ({device}, best of {repeats})",
                  ["workload", "dtype", "work units", "ms", "throughput /s", "reference", "reference ms",
                   "speed ratio (ref time / ours)"], rows,
                  note="A ratio > 1 means refscore is faster than the reference measured in the same process.")
    print(table.markdown())
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "bench.json"), "w") as f:
        json.dump({"device": device, **table.as_dict()}, f, indent=1)
    return 0
