r"""``refscore check``: every identity of the notes, computed on the chosen backend.

The identities are a registry, :data:`IDENTITIES`: each :class:`Identity` names its source (seed
file + equation, or paper), a ``compute(ctx)`` returning ``(value, reference, stderr)``, and its
tolerance rule — ``k`` Monte-Carlo standard errors for estimated identities, an absolute floor
for exact ones. ``refscore check`` and the test suite (``tests/test_check.py``) run the same
entries through the same :meth:`Identity.evaluate`, so the table and the tests cannot disagree.
"""
from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as onp

from .. import backends, losses, samplers, sde as sdelib, tweedie
from ..energies import Gaussian, GaussianMixture, MLPEnergy
from ..partition import log_partition_quadrature
from .report import Table

__all__ = ["Identity", "CheckContext", "IDENTITIES", "equivalence_table", "run_check"]

N_SE = 5.0  # Monte-Carlo identities pass within N_SE standard errors


@dataclass(frozen=True)
class Identity:
    r"""One identity of the notes with its tolerance rule.

    ``compute(ctx)`` returns ``(value, reference, stderr)``; the identity holds when

    .. math:: |\text{value} - \text{reference}| \le \max(k\cdot\text{stderr},\ \text{floor})

    — ``k`` standard errors of a Monte-Carlo estimate (``k = 5``: a false alarm about once in
    1.7 million), or an absolute ``floor`` for an exact identity (stderr 0).
    """

    name: str
    source: str
    compute: Callable
    k: float = N_SE
    floor: float = 0.0

    def evaluate(self, ctx):
        r"""Run the identity on ``ctx``: ``(value, reference, |error|, stderr, tolerance, passed)``.

        .. math:: \text{tolerance} = \max(k\cdot\text{stderr},\ \text{floor})
        """
        value, ref, se = (float(v) for v in self.compute(ctx))
        err, tol = abs(value - ref), max(self.k * se, self.floor)
        return value, ref, err, se, tol, bool(err <= tol)


def _mean_se(per_example):
    r"""Sample mean and its standard error :math:`\hat\sigma/\sqrt n` of host per-example values."""
    v = onp.asarray(per_example, float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


class CheckContext:
    r"""What the identities share: the backend, sample size ``n``, and fixtures built once —
    3-d Gaussian data :math:`\mathcal N(0, S)` with spectrum {0.5, 1, 2}, its sample, an MLP model
    (any θ: the identities hold for every θ), and a 2-d two-component Gaussian mixture.
    Each identity draws from its own generator, :meth:`rng`, so entries do not depend on order.
    """

    def __init__(self, backend=None, seed=0, n=20000):
        self.bk, self.seed, self.n = backends.get(backend), seed, n

    def rng(self, name):
        """A generator of this backend seeded by ``(seed, name)``: order-independent draws."""
        return self.bk.rng(self.seed * 2**32 + zlib.crc32(name.encode()))

    def host(self, a):
        return self.bk.to_numpy(a)

    @cached_property
    def S(self):
        q, _ = onp.linalg.qr(onp.random.default_rng(self.seed).standard_normal((3, 3)))
        return (q * onp.array([0.5, 1.0, 2.0])) @ q.T

    @cached_property
    def data(self):
        return Gaussian(onp.zeros(3), self.S, backend=self.bk.name)

    @cached_property
    def x(self):
        return self.data.sample(self.n, self.rng("x"))

    @cached_property
    def model(self):
        return MLPEnergy(3, (32, 32), rng=self.rng("model"))

    @cached_property
    def ism(self):
        return self.host(losses.ism(self.model.score, self.x, reduction="none"))

    @cached_property
    def gmm(self):
        return GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, -0.5]],
                               [[[0.6, 0.2], [0.2, 0.4]], [[1.0, 0.0], [0.0, 0.5]]], backend=self.bk.name)


# ----- the identities, in lecture order ------------------------------------------------------
def _score_vs_autograd(ctx):
    from autograd import elementwise_grad
    import autograd.numpy as anp

    y = ctx.gmm.sample(64, ctx.rng("score"))
    ag = elementwise_grad(lambda z: -anp.sum(ctx.gmm.energy(z)))(y)
    return float(abs(ctx.host(ctx.gmm.score(y) - ag)).max()), 0.0, 0.0


def _log_z(ctx):
    return log_partition_quadrature(ctx.gmm, [(-10, 10), (-10, 10)]), 0.0, 0.0


def _esm_ism(ctx):
    esm = ctx.host(losses.esm(ctx.model.score, ctx.x, ctx.data.score, reduction="none"))
    mean, se = _mean_se(esm - ctx.ism)
    return mean, 0.5 * onp.trace(onp.linalg.inv(ctx.S)), se


def _ssm_ism(kind, vr):
    def compute(ctx):
        ssm = ctx.host(losses.ssm(ctx.model.score, ctx.x, ctx.rng(f"ssm {kind} {vr}"), 1, kind, vr, reduction="none"))
        mean, se = _mean_se(ssm - ctx.ism)
        return mean, 0.0, se
    return compute


def _dsm_esm(ctx):
    sigma = 0.5
    z = ctx.bk.normal(ctx.rng("dsm"), ctx.x.shape)
    p_sigma = Gaussian(onp.zeros(3), ctx.S + sigma**2 * onp.eye(3), backend=ctx.bk.name)
    dsm = ctx.host(losses.dsm(ctx.model.score, ctx.x, sigma, z=z, reduction="none"))
    esm = ctx.host(losses.esm(ctx.model.score, ctx.x + sigma * z, p_sigma.score, reduction="none"))
    mean, se = _mean_se(dsm - esm)
    return mean, losses.dsm_esm_gap(ctx.data, sigma), se


def _noisy_gmm(ctx, scale):
    rng = ctx.rng(f"noisy {scale}")
    return ctx.gmm.sample(256, rng) + scale * ctx.bk.normal(rng, (256, 2))


def _tweedie_ve(ctx):
    y = _noisy_gmm(ctx, 0.7)
    den = tweedie.denoise(ctx.gmm.perturbed(0.7).score, y, 0.7)
    return float(abs(ctx.host(den - ctx.gmm.posterior_mean(y, 0.7))).max()), 0.0, 0.0


def _tweedie_vp(ctx):
    y = _noisy_gmm(ctx, 0.7)
    den = tweedie.denoise_vp(ctx.gmm.diffused(0.3).score, y, 0.3)
    return float(abs(ctx.host(den - ctx.gmm.posterior_mean_vp(y, 0.3))).max()), 0.0, 0.0


def _cross_term(ctx):
    import autograd.numpy as anp

    beta, rng = 0.3, ctx.rng("cross")
    a = math.sqrt(1 - beta)
    xg = ctx.gmm.sample(ctx.n, rng)
    xb = a * xg + math.sqrt(beta) * ctx.bk.normal(rng, xg.shape)  # x' of eq. 11.5
    post = ctx.gmm.posterior_mean_vp(xb, beta)
    m2 = MLPEnergy(2, (16,), rng=rng)
    cross = ctx.host(anp.sum((xb + beta * m2.score(xb) - a * post) * (a * post - a * xg), axis=1))
    mean, se = _mean_se(cross)
    return mean, 0.0, se


def _langevin_variance(kind):
    def compute(ctx):
        rng, h = ctx.rng(kind), 0.5
        std = Gaussian([0.0], [[1.0]], backend=ctx.bk.name)
        x0 = std.sample(ctx.n, rng)
        if kind == "ULA":
            xs, _ = samplers.langevin(std.score, x0, h, 40, rng)
            ref = 1 / (1 - h / 2)  # the stationary variance of ULA on N(0, 1)
        else:
            xs, _ = samplers.mala(std.unnormalized_log_prob, x0, h, 40, rng, score_fn=std.score)
            ref = 1.0
        mean, se = _mean_se(ctx.host(xs)[:, 0] ** 2)
        return mean, ref, se
    return compute


def _pf_ode_likelihood(ctx):
    sde = sdelib.VPSDE()
    dat2 = Gaussian([1.0, -0.5], [[1.0, 0.4], [0.4, 0.6]], backend=ctx.bk.name)
    xs = dat2.sample(4, ctx.rng("pf-ode"))
    ll = sdelib.log_likelihood(sde, lambda x, t: sdelib.marginal_law(dat2, sde, t).score(x), xs,
                               prior_log_prob=sdelib.marginal_law(dat2, sde, 1.0).log_prob)
    return float(abs(ctx.host(ll - dat2.log_prob(xs))).max()), 0.0, 0.0


IDENTITIES = (
    Identity("closed-form score = autograd of -E (GMM)", "001_… score; docs: API reference", _score_vs_autograd, floor=1e-10),
    Identity("log Z = 0 for the normalised GMM (quadrature)", "002_… EBM, Z", _log_z, floor=1e-6),
    Identity("ESM - ISM = ½ E||s*||² = ½ tr S⁻¹", "Hyvärinen 2005 Thm 1; 004_… Q1", _esm_ism),
    *(Identity(f"E_v[SSM] = ISM ({kind}{', VR' if vr else ''})", "002_… Hutchinson; Song et al. 2019",
               _ssm_ism(kind, vr)) for kind in ("gaussian", "rademacher") for vr in (False, True)),
    Identity("DSM_σ - ESM_σ = C(σ), σ = 0.5", "Vincent 2011; 001_… appendix", _dsm_esm),
    Identity("Tweedie VE: y + σ² s_σ(y) = E[x|y]", "003_… eq. 11.12 (β→σ²)", _tweedie_ve, floor=1e-9),
    Identity("Tweedie VP: (y + β s_β(y))/√(1-β) = E[x|y]", "003_… eqs. 11.12–11.13", _tweedie_vp, floor=1e-9),
    Identity("cross term of eqs. 11.19–11.20 = 0", "003_… eq. 11.21 (tower property)", _cross_term),
    Identity("ULA on N(0,1): Var = 1/(1-h/2), h = 0.5", "001_… Langevin", _langevin_variance("ULA")),
    Identity("MALA on N(0,1): Var = 1, h = 0.5", "003_… §11.2.1", _langevin_variance("MALA")),
    Identity("PF-ODE log-likelihood = log N(x; μ, S) (VP)", "Song et al. 2021 eq. 39; 001_…", _pf_ode_likelihood,
             floor=1e-4),
)


def equivalence_table(backend=None, seed=0, n=20000, identities=IDENTITIES):
    r"""Evaluate ``identities`` on one :class:`CheckContext`: a :class:`~refscore.apps.report.Table`
    with value, reference, error, standard error, tolerance and pass for each row.

    .. math:: \text{pass} \iff |\text{value}-\text{reference}| \le \max(k\,\mathrm{SE},\ \text{floor})
    """
    ctx = CheckContext(backend, seed, n)
    rows = []
    for identity in identities:
        *numbers, passed = identity.evaluate(ctx)
        rows.append((identity.name, *numbers, "yes" if passed else "NO", identity.source))
    return Table(f"Equivalence table (backend {ctx.bk.name}, seed {seed}, n = {n})",
                 ["identity", "value", "expected", "|error|", "MC s.e.", "tolerance", "pass", "source"], rows,
                 note=f"Monte-Carlo rows pass within {N_SE:g} standard errors; exact rows within a stated floor.")


def run_check(backend=None, seed=0, out=None, n=20000):
    r"""Print the equivalence table; write ``check.json`` to ``out``; exit status 1 if any fails.

    .. math:: \text{status} = \mathbb 1[\exists\ \text{identity}: |\text{value}-\text{reference}| > \text{tolerance}]
    """
    t = equivalence_table(backend, seed, n)
    print(t.markdown())
    failed = [r[0] for r in t.rows if r[6] != "yes"]
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "check.json"), "w") as f:
            json.dump(t.as_dict(), f, indent=1)
    if failed:
        print(f"\nFAILED: {len(failed)} identities: {failed}")
        return 1
    print(f"\nall {len(t.rows)} identities hold")
    return 0
