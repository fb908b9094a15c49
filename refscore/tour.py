"""`refscore tour`: placeholder demo until the full tour lands (issue 5)."""
from __future__ import annotations

import os


def run_tour(backend=None, seed=0, out="tour-output", quick=False):
    from . import backends
    from .energies import GaussianMixture
    from .partition import log_partition_quadrature

    bk = backends.get(backend)
    os.makedirs(out, exist_ok=True)
    g = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [0.5, 1.0], backend=bk.name)
    x = g.sample(5, bk.rng(seed))
    print("samples:\n", bk.to_numpy(x))
    print("score:\n", bk.to_numpy(g.score(x)))
    print("log Z by quadrature (should be 0):", log_partition_quadrature(g, [(-10, 10), (-10, 10)]))
    return 0
