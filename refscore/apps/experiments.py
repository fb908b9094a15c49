r"""Experiments that answer the open questions of seed ``004_…`` (Q2.1, Q2.2).

Each returns a :class:`Table` (rows of numbers, with ``.markdown()``), never prints; the tour,
the docs and ``python -m refscore.apps.experiments`` show them.

Q2.1 *How do I choose an appropriate noise?* — :func:`dsm_variance_vs_sigma` (the DSM
estimator's variance explodes as σ → 0) and :func:`dsm_bias_vs_sigma` (the DSM optimum is the
score of :math:`p_\sigma`, not of :math:`p`: for Gaussian data its precision is
:math:`(S+\sigma^2I)^{-1}`).

Q2.2 *Is there any relation between the number of projections and accuracy?* —
:func:`ssm_variance_vs_projections` (variance :math:`\propto 1/M`, closed forms) and
:func:`ism_vs_ssm_cost` (exact trace: d reverse passes; SSM: M).
"""
from __future__ import annotations

import math
import time

import numpy as onp

from .. import backends, losses
from .report import Table
from ..energies import Gaussian

__all__ = ["Table", "variance_stderr", "dsm_variance_vs_sigma", "dsm_bias_vs_sigma", "ssm_variance_vs_projections",
           "ism_vs_ssm_cost"]


def _linear_score(P):
    return lambda x: -x @ P


def variance_stderr(samples):
    r"""Standard error of the sample variance of i.i.d. ``samples`` (1-D), from the fourth moment.

    .. math:: \operatorname{SE}(\hat\sigma^2) \approx \sqrt{(\hat\mu_4 - \hat\sigma^4)/n}

    (the delta method for the variance estimator; e.g. Casella & Berger, *Statistical Inference*,
    ex. 5.8). Used so that every "measured vs closed form" variance is judged in standard errors.
    """
    c = onp.asarray(samples, dtype=float) - onp.mean(samples)
    m2, m4 = onp.mean(c**2), onp.mean(c**4)
    return float(math.sqrt(max(m4 - m2 * m2, 0.0) / c.size))


def dsm_variance_vs_sigma(sigmas=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0), d=2, n=20000, seed=0, backend=None):
    r"""Variance of the single-sample DSM loss and of its gradient, at the σ-optimal model, vs σ.

    Data :math:`\mathcal N(0,I_d)`, model :math:`s_a(x)=-a\,x` at its DSM optimum
    :math:`a^*=1/(1+\sigma^2)`. Per example :math:`\ell=\tfrac12\|{-a\tilde x}+z/\sigma\|^2`; its
    variance grows like :math:`d/(2\sigma^4)` as σ → 0 (the :math:`z/\sigma` target), and so does
    the variance of :math:`\partial\ell/\partial a` relative to its signal — why σ cannot be
    taken tiny (seed 004_…, Q2.1; Vincent 2011 §4; Song & Ermon 2019 §3.2).

    Columns: σ, mean loss, var(loss), closed-form var(loss), var(dℓ/da), C(σ) (the constant).
    """
    bk = backends.get(backend)
    rng = bk.rng(seed)
    rows = []
    for s in sigmas:
        x = bk.normal(rng, (n, d))
        z = bk.normal(rng, (n, d))
        a = 1.0 / (1.0 + s * s)
        per = bk.to_numpy(losses.dsm(_linear_score(a * bk.xp.eye(d)), x, s, z=z, reduction="none"))
        xt = bk.to_numpy(x + s * z)
        zn = bk.to_numpy(z)
        r = -a * xt + zn / s  # residual
        dl_da = onp.sum(r * -xt, axis=1)
        # ℓ = ½||r||², r ~ N(0, c I) with c = 1/σ² - a  (Gaussian data: r independent per coordinate)
        c = 1.0 / (s * s) - a
        rows.append((float(s), float(per.mean()), float(per.var(ddof=1)), variance_stderr(per), 0.5 * d * c * c,
                     float(dl_da.var(ddof=1)), losses.dsm_esm_gap(Gaussian(onp.zeros(d), onp.eye(d)), s)))
    return Table("DSM estimator variance vs sigma (data N(0, I), model at its optimum)",
                 ["sigma", "mean loss", "var loss", "SE of var loss", "var loss (closed form)", "var dloss/da",
                  "C(sigma)"],
                 rows, note="The variance of the loss grows like d/(2 sigma^4) as sigma -> 0.")


def dsm_bias_vs_sigma(S=None, sigmas=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0), n=50000, seed=0, n_batches=20):
    r"""Bias of the DSM optimum vs σ for Gaussian data :math:`\mathcal N(0,S)`.

    For a linear model :math:`s(x)=-Px` the DSM minimiser is :math:`P^*_\sigma=(S+\sigma^2I)^{-1}`
    (it matches the perturbed law, not the data). We report its relative error against
    :math:`S^{-1}`, the KL divergence :math:`\mathrm{KL}(\mathcal N(0,S)\,\|\,\mathcal N(0,S+\sigma^2I))`,
    and the least-squares DSM fit on ``n`` samples (which agrees with :math:`P^*_\sigma`), with the
    standard error of that fit from ``n_batches`` independent batches (batch spread / √B).
    """
    S = onp.array([[1.0, 0.6], [0.6, 0.8]]) if S is None else onp.asarray(S, float)
    d = S.shape[0]
    rng = onp.random.default_rng(seed)
    L = onp.linalg.cholesky(S)
    Sinv = onp.linalg.inv(S)
    rows = []
    for s in sigmas:
        Pstar = onp.linalg.inv(S + s * s * onp.eye(d))
        x = rng.standard_normal((n, d)) @ L.T
        z = rng.standard_normal((n, d))
        xt = x + s * z
        Phat = _dsm_least_squares(xt, z, s)
        batches = onp.stack([_dsm_least_squares(xb, zb, s) for xb, zb in
                             zip(onp.array_split(xt, n_batches), onp.array_split(z, n_batches))])
        se = onp.linalg.norm(batches.std(0, ddof=1) / math.sqrt(n_batches)) / onp.linalg.norm(Pstar)
        T = S + s * s * onp.eye(d)
        kl = 0.5 * (onp.trace(onp.linalg.solve(T, S)) - d + math.log(onp.linalg.det(T) / onp.linalg.det(S)))
        rows.append((float(s), float(onp.linalg.norm(Pstar - Sinv) / onp.linalg.norm(Sinv)), float(kl),
                     float(onp.linalg.norm(Phat - Pstar) / onp.linalg.norm(Pstar)), float(se)))
    return Table("Bias of the DSM optimum vs sigma (Gaussian data)",
                 ["sigma", "rel. error of (S+s^2 I)^-1 vs S^-1", "KL(p || p_sigma)",
                  "rel. error of fitted P vs (S+s^2 I)^-1", "SE of that error"],
                 rows, note="Small sigma: little bias but high variance (previous table); large sigma: the reverse.")


def _dsm_least_squares(xt, z, s):
    # minimise ½ mean ||-xt P + z/σ||²  =>  (xtᵀ xt) P = xtᵀ z / σ   (P symmetric at the optimum)
    P = onp.linalg.solve(xt.T @ xt, xt.T @ z / s)
    return (P + P.T) / 2


def ssm_variance_vs_projections(Ms=(1, 2, 4, 8, 16), d=4, n=20000, seed=0, backend=None):
    r"""Variance of the SSM estimator (minus ISM) vs the number of projections M.

    Linear score :math:`s(x)=-Ax`, :math:`A` symmetric positive definite, data :math:`\mathcal N(0,I)`.
    Per example, over :math:`v`, :math:`\operatorname{Var}[v^\top Bv]=2\|B\|_F^2` (Gaussian) or
    :math:`2(\|B\|_F^2-\sum_iB_{ii}^2)` (Rademacher) for symmetric :math:`B`, with :math:`B=J=-A`
    (variance-reduced) or :math:`B=J+\tfrac12ss^\top` (plain), each divided by M
    (Hutchinson 1990; Song et al. 2019, §3). Columns: M, projection, VR, measured, closed form.
    """
    bk = backends.get(backend)
    rng = bk.rng(seed)
    hr = onp.random.default_rng(seed)
    q, _ = onp.linalg.qr(hr.standard_normal((d, d)))
    A = (q * onp.linspace(0.5, 2.0, d)) @ q.T
    Ab = bk.asarray(A)
    score = _linear_score(Ab)
    x = bk.normal(rng, (n, d))
    ism = bk.to_numpy(losses.ism(score, x, reduction="none"))
    s = bk.to_numpy(score(x))
    rows = []
    for M in Ms:
        for kind in ("gaussian", "rademacher"):
            for vr in (False, True):
                D = bk.to_numpy(losses.ssm(score, x, rng, M, kind, vr, reduction="none")) - ism
                B = -A if vr else -A + 0.5 * s[:, :, None] * s[:, None, :]
                fro = onp.sum(B * B, axis=(-2, -1))
                diag = onp.sum(onp.diagonal(B, axis1=-2, axis2=-1) ** 2, axis=-1)
                closed = float(onp.mean(2 * (fro if kind == "gaussian" else fro - diag)) / M)
                rows.append((M, kind, "yes" if vr else "no", float(D.var(ddof=1)), variance_stderr(D), closed))
    return Table("SSM variance (per example, over projections) vs M",
                 ["M", "projection", "variance reduced", "measured var", "SE of measured var", "closed form"], rows,
                 note="Variance falls as 1/M; Rademacher < Gaussian; VR removes the (v's)^2 term.")


def ism_vs_ssm_cost(dims=(2, 8, 32, 128), n=512, M=1, hidden=64, seed=0, backend=None, repeats=3):
    r"""Wall time of exact ISM (d reverse passes) against SSM (M reverse passes) as d grows,
    for an MLP energy's score; reported as the ratio ISM/SSM (grows roughly like d/M)."""
    from ..energies import MLPEnergy

    bk = backends.get(backend)
    rng = bk.rng(seed)
    rows = []
    for d in dims:
        model = MLPEnergy(d, (hidden, hidden), rng=rng)
        x = bk.normal(rng, (n, d))

        def best(f):
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                bk.to_numpy(f())
                ts.append(time.perf_counter() - t0)
            return min(ts)

        t_ism = best(lambda: losses.ism(model.score, x))
        t_ssm = best(lambda: losses.ssm(model.score, x, rng, n_projections=M, variance_reduced=True))
        rows.append((d, t_ism * 1e3, t_ssm * 1e3, t_ism / t_ssm))
    return Table(f"Cost of exact ISM vs SSM (M={M}), MLP score, n={n}",
                 ["d", "ISM ms", "SSM ms", "ratio ISM/SSM"], rows)


if __name__ == "__main__":  # python -m refscore.apps.experiments
    for t in (dsm_variance_vs_sigma(), dsm_bias_vs_sigma(), ssm_variance_vs_projections(Ms=(1, 4, 16)),
              ism_vs_ssm_cost()):
        print(t.markdown(), "\n")
