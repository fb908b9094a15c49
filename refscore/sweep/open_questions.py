r"""The notes' two open questions (seed ``004_…``, Q2) as sweeps with error bars.

**Q2.1, ``q21-sigma``** — *how do I choose the noise σ?* Data :math:`\mathcal N(0,S)`; model the
Gaussian energy :math:`E_P(x)=\tfrac12x^\top Px`, score :math:`s_P(x)=-Px`, :math:`P` symmetric;
trained by DSM (Vincent 2011, eq. 11) on :math:`n` pairs :math:`(x_i, z_i)`,
:math:`\tilde x_i=x_i+\sigma z_i`, to its exact minimiser (:func:`dsm_gaussian_fit`). Its error is
the Fisher divergence to the *data* (:func:`fisher_linear`), split about the population DSM
optimum :math:`P^*_\sigma=(S+\sigma^2I)^{-1}`:

.. math:: \mathrm{err} = \underbrace{F(P^*_\sigma - S^{-1})}_{\text{bias}^2\ \sim\ \sigma^4}
          + \underbrace{F(\hat P - P^*_\sigma)}_{\text{variance}\ \sim\ 1/(n\sigma^2)}
          + \text{cross},\qquad F(\Delta)=\tfrac12\operatorname{tr}(\Delta S\Delta)

Minimising :math:`a\sigma^4+b/(n\sigma^2)` gives :math:`\sigma^*\propto n^{-1/6}`; the sweep
measures :math:`\sigma^*(n)` and its bootstrap standard error (:func:`sigma_star`).

**Q2.2, ``q22-projections``** — *projections vs accuracy.* An MLP energy trained by SSM-VR (Song
et al. 2019, eqs. 7–8) with :math:`M` Gaussian projections per example for a fixed number of
steps; the final Fisher divergence :math:`\tfrac12\mathbb E_p\|s_\theta-s^*\|^2` on fresh data,
and the wall time of training (a timing field: in the records, not in the table).
"""
from __future__ import annotations

import math
import time

import numpy as onp
from scipy import linalg

from .. import backends, losses
from ..energies import Gaussian, MLPEnergy
from ..training import adam, fit
from .core import Plot, Size, Sweep

__all__ = ["dsm_gaussian_fit", "fisher_linear", "q21_cell", "sigma_star", "q22_cell", "Q21", "Q22"]

S_DATA = [[1.0, 0.6], [0.6, 0.8]]  # the covariance of experiments.dsm_bias_vs_sigma


def dsm_gaussian_fit(x_tilde, z, sigma):
    r"""The exact minimiser, over symmetric :math:`P`, of the empirical DSM loss of :math:`s_P(x)=-Px`:

    .. math:: \hat P = \arg\min_{P=P^\top} \tfrac12\sum_i\big\|-P\tilde x_i + z_i/\sigma\big\|^2
              \iff G\hat P + \hat PG = C + C^\top,\quad G=\tilde X^\top\tilde X,\ C=\tilde X^\top Z/\sigma

    (the symmetric part of the gradient :math:`G P - C` vanishes; a Sylvester equation). The
    target :math:`z/\sigma` is :math:`-\nabla\log q_\sigma(\tilde x\mid x)` (Vincent 2011, eq. 11).
    """
    G = x_tilde.T @ x_tilde
    C = x_tilde.T @ z / sigma
    P = linalg.solve_sylvester(G, G, C + C.T)
    return (P + P.T) / 2


def fisher_linear(delta, S):
    r"""Fisher divergence between the scores :math:`-Px` and :math:`-P'x` under :math:`\mathcal N(0,S)`:

    .. math:: \tfrac12\mathbb E\|(P-P')x\|^2 = \tfrac12\operatorname{tr}(\Delta S\Delta^\top),\quad \Delta=P-P'

    (the ESM of seed ``004_…``, ½ convention, for linear scores; :func:`refscore.losses.esm`).
    """
    return 0.5 * float(onp.trace(delta @ S @ delta.T))


def q21_cell(params, seed):
    r"""One Q2.1 cell: DSM fit on ``n`` samples at noise ``sigma``; its error, bias² and variance.

    .. math:: \mathrm{err}=F(\hat P-S^{-1}),\quad \mathrm{bias}^2=F(P^*_\sigma-S^{-1}),\quad
              \mathrm{var}=F(\hat P-P^*_\sigma),\quad P^*_\sigma=(S+\sigma^2I)^{-1},\quad
              \text{cross} = \mathrm{err}-\mathrm{bias}^2-\mathrm{var}
              = \operatorname{tr}\big((P^*_\sigma-S^{-1})S(\hat P-P^*_\sigma)\big)

    The cross term has mean :math:`O(1/n)`: bias² and variance add up to the error on average.
    """
    S = onp.asarray(params["S"], dtype=float)
    d, n, sigma = S.shape[0], int(params["n"]), float(params["sigma"])
    if n <= d:
        raise ValueError(f"n must exceed the dimension d={d} for the DSM fit to be determined, got n={n}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    rng = onp.random.default_rng(seed)
    x = rng.standard_normal((n, d)) @ onp.linalg.cholesky(S).T  # (n, d) ~ N(0, S)
    z = rng.standard_normal((n, d))
    P = dsm_gaussian_fit(x + sigma * z, z, sigma)
    S_inv = onp.linalg.inv(S)
    P_star = onp.linalg.inv(S + sigma * sigma * onp.eye(d))
    error, bias2, variance = fisher_linear(P - S_inv, S), fisher_linear(P_star - S_inv, S), fisher_linear(P - P_star, S)
    return {"error": error, "bias2": bias2, "variance": variance, "cross": error - bias2 - variance}


def _vertex(log_s, y):
    """argmin over a grid, refined by a parabola through the minimum and its neighbours (log-log)."""
    j = int(onp.argmin(y))
    if j == 0 or j == len(y) - 1:
        return log_s[j]
    a, b, _ = onp.polyfit(log_s[j - 1:j + 2], onp.log(y[j - 1:j + 2]), 2)
    return -b / (2 * a) if a > 0 else log_s[j]


def sigma_star(table, records, root, n_boot=400):
    r"""σ*(n): the noise that minimises the mean error, for each n, with a bootstrap SE; and the
    slope of :math:`\log\sigma^*` against :math:`\log n` (theory: :math:`-1/6`).

    .. math:: \hat\sigma^*(n) = \arg\min_\sigma \overline{\mathrm{err}}(n,\sigma)
              \ \text{(parabola in }\log\sigma,\log\overline{\mathrm{err}}\text{ through the grid minimum)},
              \qquad \mathrm{SE} = \operatorname{sd}_b \hat\sigma^*_b

    Each bootstrap replicate :math:`b` resamples the seeds of every (n, σ) point with
    replacement (Efron & Tibshirani 1993, ch. 6); its stream is ``SeedSequence(root,
    spawn_key=(2**32,))``, past every cell index, so the summary is as reproducible as the table.
    """
    rng = onp.random.default_rng(onp.random.SeedSequence(int(root), spawn_key=(2**32,)))
    errors = {}
    for r in sorted(records.values(), key=lambda r: r["index"]):
        errors.setdefault(r["params"]["n"], {}).setdefault(r["params"]["sigma"], []).append(r["values"]["error"])
    rows, boot = [], []
    for n, by_sigma in errors.items():
        sig = sorted(by_sigma)
        log_s = onp.log(sig)
        means = onp.array([onp.mean(by_sigma[s]) for s in sig])
        resampled = onp.stack([onp.asarray(by_sigma[s])[rng.integers(0, len(by_sigma[s]), (n_boot, len(by_sigma[s])))]
                               .mean(axis=1) for s in sig], axis=1)  # (B, n_sigma)
        b = onp.array([_vertex(log_s, row) for row in resampled])
        at_edge = int(onp.argmin(means)) in (0, len(sig) - 1)
        rows.append({"n": n, "sigma_star": math.exp(_vertex(log_s, means)), "se": float(onp.std(onp.exp(b), ddof=1)),
                     "grid_argmin": sig[int(onp.argmin(means))], "min_error": float(means.min()), "at_grid_edge": at_edge})
        boot.append(b)
    out = {"sigma_star": rows, "slope_theory": -1 / 6}
    if len(rows) >= 2:
        log_n = onp.log([r["n"] for r in rows])
        out["slope"] = float(onp.polyfit(log_n, [math.log(r["sigma_star"]) for r in rows], 1)[0])
        out["slope_se"] = float(onp.std([onp.polyfit(log_n, col, 1)[0] for col in onp.stack(boot, 1)], ddof=1))
    return out


def q22_cell(params, seed):
    r"""One Q2.2 cell: an MLP energy trained by SSM-VR with ``M`` projections for ``steps`` steps on
    :math:`\mathcal N(0,S)`, :math:`S=\operatorname{diag}(\text{linspace}(0.5, 2, d))`; its final
    Fisher divergence on ``n_eval`` fresh points, the score passes spent, and the training time.

    .. math:: F(\theta) = \tfrac12\,\mathbb E_{x\sim p}\|s_\theta(x) - s^*(x)\|^2,\qquad
              \text{cost} \approx \text{steps}\times M \text{ reverse passes}
    """
    bk = backends.get(params.get("backend"))
    d, M, steps = int(params["d"]), int(params["M"]), int(params["steps"])
    rng = bk.rng(int(seed.generate_state(1)[0]))
    law = Gaussian(onp.zeros(d), onp.diag(onp.linspace(0.5, 2.0, d)), backend=bk.name)
    data = law.sample(int(params["n_data"]), rng)
    net = MLPEnergy(d, tuple(params["hidden"]), rng=rng)

    def loss(p, xb, r):
        return losses.ssm(net.score_fn(p), xb, r, n_projections=M, variance_reduced=True)

    t0 = time.perf_counter()
    p, _ = fit(loss, net.params, data, rng, optimizer=adam(lr=float(params["lr"])), n_steps=steps,
               batch_size=int(params["batch"]), progress_bar=False, log_every=steps)
    wall = time.perf_counter() - t0
    fisher = losses.esm(net.score_fn(p), law.sample(int(params["n_eval"]), rng), law.score)
    return {"fisher": float(bk.to_numpy(fisher)), "score_passes": steps * M, "wall_s": wall}


Q21 = Sweep(
    name="q21-sigma", cell=q21_cell, summarize=sigma_star,
    title="Q2.1: error of a DSM-trained Gaussian energy vs sigma and n (bias^2 + variance); sigma*(n)",
    full=Size({"n": (1000, 10_000, 100_000), "sigma": tuple(float(s) for s in onp.geomspace(0.02, 1.0, 15))},
              seeds=100, fixed={"S": S_DATA}),
    quick=Size({"n": (1000, 10_000, 100_000), "sigma": tuple(float(s) for s in onp.geomspace(0.05, 0.8, 7))},
               seeds=6, fixed={"S": S_DATA}),
    plot=Plot("sigma", "error", group="n", logx=True, logy=True))

Q22 = Sweep(
    name="q22-projections", cell=q22_cell, timing=("wall_s",),
    title="Q2.2: final Fisher divergence of SSM-VR training vs number of projections M (and wall time)",
    full=Size({"M": (1, 2, 4, 16), "steps": (250, 1000)}, seeds=8,
              fixed={"d": 8, "hidden": [32, 32], "n_data": 100_000, "n_eval": 4000, "batch": 128, "lr": 3e-3}),
    quick=Size({"M": (1, 2, 4, 16), "steps": (60,)}, seeds=2,
               fixed={"d": 4, "hidden": [16, 16], "n_data": 1000, "n_eval": 1000, "batch": 64, "lr": 3e-3}),
    plot=Plot("wall_s", "fisher", group="M", logx=True, logy=True))
