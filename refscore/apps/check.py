r"""``refscore check``: the equivalence table — every identity of the notes, computed on the
chosen backend, with its Monte-Carlo standard error and a pass/fail (5 SE, or a stated
tolerance for deterministic identities)."""
from __future__ import annotations

import json
import math
import os

import numpy as onp

from .. import backends, losses, samplers, sde as sdelib, tweedie
from ..energies import Gaussian, GaussianMixture, MLPEnergy
from .report import Table
from ..partition import log_partition_quadrature

N_SE = 5.0


def _mc_row(name, per_example, expected, source):
    v = onp.asarray(per_example, float)
    mean, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
    err = abs(mean - expected)
    return (name, mean, float(expected), err, se, "yes" if err <= N_SE * se else "NO", source)


def _det_row(name, value, expected, tol, source):
    err = abs(float(value) - float(expected))
    return (name, float(value), float(expected), err, 0.0, "yes" if err <= tol else "NO", source)


def equivalence_table(backend=None, seed=0, n=20000):
    """Compute the table (a :class:`~refscore.apps.report.Table`)."""
    bk = backends.get(backend)
    rng = bk.rng(seed)
    hr = onp.random.default_rng(seed)
    H = bk.to_numpy
    d = 3
    q, _ = onp.linalg.qr(hr.standard_normal((d, d)))
    S = (q * onp.array([0.5, 1.0, 2.0])) @ q.T
    data = Gaussian(onp.zeros(d), S, backend=bk.name)
    x = data.sample(n, rng)
    model = MLPEnergy(d, (32, 32), rng=rng)
    gmm = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]], [[[0.6, 0.2], [0.2, 0.4]], [[1.0, 0.0], [0.0, 0.5]]],
                          backend=bk.name)
    rows = []
    y = gmm.sample(64, rng)
    from autograd import elementwise_grad
    import autograd.numpy as anp

    ag = elementwise_grad(lambda z: -anp.sum(gmm.energy(z)))(y)
    rows.append(_det_row("closed-form score = autograd of -E (GMM)", float(abs(H(gmm.score(y) - ag)).max()), 0.0,
                         1e-10, "001_… score; API.md"))
    rows.append(_det_row("log Z = 0 for the normalised GMM (quadrature)",
                         log_partition_quadrature(gmm, [(-10, 10), (-10, 10)]), 0.0, 1e-6, "002_… EBM, Z"))
    ism = H(losses.ism(model.score, x, reduction="none"))
    esm = H(losses.esm(model.score, x, data.score, reduction="none"))
    rows.append(_mc_row("ESM - ISM = ½ E||s*||² = ½ tr S⁻¹", esm - ism, 0.5 * onp.trace(onp.linalg.inv(S)),
                        "Hyvärinen 2005 Thm 1; 004_… Q1"))
    for kind in ("gaussian", "rademacher"):
        for vr in (False, True):
            ssm = H(losses.ssm(model.score, x, rng, 1, kind, vr, reduction="none"))
            rows.append(_mc_row(f"E_v[SSM] = ISM ({kind}{', VR' if vr else ''})", ssm - ism, 0.0,
                                "002_… Hutchinson; Song et al. 2019"))
    sigma = 0.5
    z = bk.normal(rng, x.shape)
    xt = x + sigma * z
    p_sigma = Gaussian(onp.zeros(d), S + sigma**2 * onp.eye(d), backend=bk.name)
    dsm = H(losses.dsm(model.score, x, sigma, z=z, reduction="none"))
    esm_s = H(losses.esm(model.score, xt, p_sigma.score, reduction="none"))
    rows.append(_mc_row("DSM_σ - ESM_σ = C(σ), σ = 0.5", dsm - esm_s, losses.dsm_esm_gap(data, sigma),
                        "Vincent 2011; 001_… appendix"))
    yy = gmm.sample(256, rng) + 0.7 * bk.normal(rng, (256, 2))
    rows.append(_det_row("Tweedie VE: y + σ² s_σ(y) = E[x|y]",
                         float(abs(H(tweedie.denoise(gmm.perturbed(0.7).score, yy, 0.7) - gmm.posterior_mean(yy, 0.7))).max()),
                         0.0, 1e-9, "003_… eq. 11.12 (β→σ²)"))
    rows.append(_det_row("Tweedie VP: (y + β s_β(y))/√(1-β) = E[x|y]",
                         float(abs(H(tweedie.denoise_vp(gmm.diffused(0.3).score, yy, 0.3) - gmm.posterior_mean_vp(yy, 0.3))).max()),
                         0.0, 1e-9, "003_… eqs. 11.12–11.13"))
    beta = 0.3
    a = math.sqrt(1 - beta)
    xg = gmm.sample(n, rng)
    eps = bk.normal(rng, xg.shape)
    xp_ = a * xg + math.sqrt(beta) * eps
    post = gmm.posterior_mean_vp(xp_, beta)
    m2 = MLPEnergy(2, (16,), rng=rng)
    cross = H(anp.sum((xp_ + beta * m2.score(xp_) - a * post) * (a * post - a * xg), axis=1))
    rows.append(_mc_row("cross term of eqs. 11.19–11.20 = 0", cross, 0.0, "003_… eq. 11.21 (tower property)"))
    std = Gaussian([0.0], [[1.0]], backend=bk.name)
    x0 = std.sample(n, rng)
    h = 0.5
    xu, _ = samplers.langevin(std.score, x0, h, 40, rng)
    xu = H(xu)[:, 0]
    rows.append(_mc_row("ULA on N(0,1): Var = 1/(1-h/2), h = 0.5", xu**2, 1 / (1 - h / 2), "001_… Langevin"))
    xm, _ = samplers.mala(std.unnormalized_log_prob, x0, h, 40, rng, score_fn=std.score)
    rows.append(_mc_row("MALA on N(0,1): Var = 1, h = 0.5", H(xm)[:, 0] ** 2, 1.0, "003_… §11.2.1"))
    sde = sdelib.VPSDE()
    mu2, S2 = onp.array([1.0, -0.5]), onp.array([[1.0, 0.4], [0.4, 0.6]])
    marg = {}

    def score_t(xx, t):
        if t not in marg:
            m, sd = sde.marginal_coeffs(t)
            v = sd * sd
            marg[t] = Gaussian(m * mu2, m * m * S2 + v * onp.eye(2), backend=bk.name)
        return marg[t].score(xx)

    dat2 = Gaussian(mu2, S2, backend=bk.name)
    xs = dat2.sample(4, rng)
    m1, sd1 = sde.marginal_coeffs(1.0)
    v1 = sd1 * sd1
    p1 = Gaussian(m1 * mu2, m1 * m1 * S2 + v1 * onp.eye(2), backend=bk.name)
    ll = H(sdelib.log_likelihood(sde, score_t, xs, prior_log_prob=p1.log_prob))
    rows.append(_det_row("PF-ODE log-likelihood = log N(x; μ, S) (VP)", float(abs(ll - H(dat2.log_prob(xs))).max()),
                         0.0, 1e-4, "Song et al. 2021 eq. 39; 001_…"))
    return Table(f"Equivalence table (backend {bk.name}, seed {seed}, n = {n})",
                 ["identity", "value", "expected", "|error|", "MC s.e.", "pass", "source"], rows,
                 note=f"Monte-Carlo rows pass within {N_SE:g} standard errors; deterministic rows within a stated tolerance.")


def run_check(backend=None, seed=0, out=None, n=20000):
    t = equivalence_table(backend, seed, n)
    print(t.markdown())
    failed = [r[0] for r in t.rows if r[5] != "yes"]
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "check.json"), "w") as f:
            json.dump(t.as_dict(), f, indent=1)
    if failed:
        print(f"\nFAILED: {len(failed)} identities: {failed}")
        return 1
    print(f"\nall {len(t.rows)} identities hold")
    return 0
