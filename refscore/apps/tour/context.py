r"""The shared context of the tour: backend, sizes, the report, and the artefacts that several
sections use (the ring's exact law, its data, the trained models), each computed once, on first
use, from its own random generator — so a section's numbers do not depend on which section asked
first, and a section's figures land under its own heading whatever was computed before it."""
from __future__ import annotations

import time
import zlib

import numpy as onp

from ..._deprecation import moved
from .. import digits_common


__all__ = ["TourContext", "SIZES"]

# (full, quick) sizes; quick keeps the whole tour under a minute. ncsn_steps: the ring's swish
# noise-conditional net, annealed-Langevin samples within 3 std of a mode (seed 0): 2000 steps
# 0.886, 3000 0.945, 5000 0.962 (relative score error at σ ≤ 0.23 from 0.24-0.37 at 2000 steps
# down to 0.14-0.20); SW2 to exact samples 0.099 at 5000, vs 0.123 for ULA with the exact score
SIZES = {
    "n_data": (4000, 2000), "steps": (1200, 150), "n_chains": (2000, 500), "n_check": (20000, 4000),
    "n_sample_steps": (1000, 300), "ncsn_steps": (5000, 300), "ncsn_levels": (10, 6), "ncsn_steps_each": (100, 40),
    "n_open": (20000, 5000), "n_bias": (50000, 10000), "n_reverse": (2000, 500), "reverse_steps": (1000, 200),
    "n_likelihood": (16, 8), "n_ais": (1000, 200), "ais_steps": (200, 50),
    "digits_steps": (6000, 150), "digits_levels": (40, 12), "digits_steps_each": (20, 3),
}


class TourContext:
    r"""What every section function receives: ``bk`` (the backend), ``seed``, ``quick``,
    ``report`` (a :class:`~refscore.apps.report.Report`), ``out`` (the output folder), ``size(name)``
    (full or quick size), ``rng(name)`` (a generator seeded by ``(seed, name)``), ``host``/``dev``
    (to NumPy / to the backend), ``log`` and ``once(name, compute)`` (memoised artefacts).
    """

    def __init__(self, bk, seed, quick, report, out):
        self.bk, self.seed, self.quick, self.report, self.out = bk, seed, quick, report, out
        self.t_start = time.perf_counter()
        self.cpu_start = time.process_time()
        self._cache = {}
        self.results = {}  # headline numbers, returned by run_tour

    def size(self, name):
        return SIZES[name][1 if self.quick else 0]

    def rng(self, name):
        """A generator of the backend seeded by ``(seed, name)``: draws independent of order."""
        return self.bk.rng(self.seed * 2**32 + zlib.crc32(name.encode()))

    def host(self, a):
        return onp.asarray(self.bk.to_numpy(a))

    def dev(self, a):
        return self.bk.asarray(a)

    def on_host(self, fn):
        """``fn`` on backend arrays -> the same function on host NumPy points."""
        return lambda pts: self.host(fn(self.dev(pts)))

    def log(self, msg):
        print(f"[{time.perf_counter() - self.t_start:6.1f}s wall, {time.process_time() - self.cpu_start:6.1f}s cpu] "
              f"{msg}", flush=True)

    def once(self, name, compute):
        """The artefact ``name``, computed by ``compute(self)`` the first time it is asked for."""
        if name not in self._cache:
            self._cache[name] = compute(self)
        return self._cache[name]


__getattr__ = moved(__name__, {"one_blas_thread": ("refscore.apps.digits_common.one_blas_thread",
                                                     digits_common.one_blas_thread)})
