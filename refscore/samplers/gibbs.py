r"""Block Gibbs sampling for the Gaussian–Bernoulli RBM (seed 003_…, §11.1: "Gibbs, Langevin,
and Metropolis–Hastings"; Hinton 2010, §13.2):

.. math:: h\mid x \sim \mathrm{Bernoulli}\big(\sigma(c + W^\top x)\big),\qquad
          x\mid h \sim \mathcal N(b + W h,\ I)
"""
from __future__ import annotations

import autograd.numpy as anp

from .. import backends
from .._validation import check_points, check_positive_int
from ._common import run_chain


def rbm_gibbs_step(rbm, x, rng):
    """One sweep h | x, then x | h. Returns ``(x, h)``."""
    bk = backends.of(x)
    p_h = 0.5 * (anp.tanh(0.5 * (x @ rbm.W + rbm.c)) + 1.0)  # (n, m)
    h = (bk.uniform(rng, p_h.shape, x.dtype) < p_h).astype(x.dtype)
    x = rbm.b + h @ rbm.W.T + bk.normal(rng, x.shape, x.dtype)
    return x, h


def rbm_gibbs(rbm, x0, n_steps, rng, keep_every=None, progress=False):
    """Run block Gibbs chains on an :class:`~refscore.energies.GaussianBernoulliRBM`.

    Returns ``(x, info)``; ``info`` has ``n_steps``, ``hidden`` (the last h), ``trajectory``."""
    check_points(x0, rbm.dim, "x0")
    n_steps = check_positive_int(n_steps, "n_steps")
    bk = backends.of(x0, rbm.W)
    bk.check_rng(rng)
    (x, h), traj = run_chain(lambda st: rbm_gibbs_step(rbm, st[0], rng), (x0, None), n_steps, keep_every,
                             "Gibbs", progress, extract=lambda s: s[0])
    info = {"n_steps": n_steps, "hidden": h}
    if traj:
        info["trajectory"] = bk.xp.stack(traj)
    return x, info
