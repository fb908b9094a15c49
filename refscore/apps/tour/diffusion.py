r"""Tour sections 7–8: the notes' open questions answered by experiment, and the diffusion view
(reverse SDE, probability-flow ODE, exact likelihoods) with the AIS likelihood of a trained EBM."""
from __future__ import annotations

import numpy as onp

from ... import sde as sdelib
from .. import experiments
from .. import plots
from ..report import Table
from .artefacts import energy_model, ring

__all__ = ["questions_section", "diffusion_section"]


def _questions_figure(tv, tb, tm, tc):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(16, 4.2))
    s_ = tv.column("sigma")
    ax[0].loglog(s_, tv.column("var loss"), "o-", label="var of DSM loss (measured)")
    ax[0].loglog(s_, tv.column("var loss (closed form)"), "k--", label="closed form d/2 (1/σ² - a)²")
    ax[0].loglog(tb.column("sigma"), tb.column("rel. error of (S+s^2 I)^-1 vs S^-1"), "s-", label="bias of the optimum")
    ax[0].set_xlabel("σ")
    ax[0].legend(fontsize=8)
    ax[0].set_title("Q2.1: variance explodes as σ→0, bias grows with σ")
    for kind, mk in (("gaussian", "o"), ("rademacher", "s")):
        for vr in ("no", "yes"):
            rows = [r for r in tm.rows if r[1] == kind and r[2] == vr]
            Ms = onp.array([r[0] for r in rows])
            ax[1].loglog(Ms, [r[3] for r in rows], mk + "-", label=f"{kind}, VR={vr}")
            ax[1].loglog(Ms, [r[4] for r in rows], "k:", lw=1)
    ax[1].set_xlabel("projections M")
    ax[1].set_title("Q2.2: SSM variance ∝ 1/M (dotted: closed forms)")
    ax[1].legend(fontsize=8)
    ax[2].plot(tc.column("d"), tc.column("ratio ISM/SSM"), "o-")
    ax[2].set_xscale("log")
    ax[2].set_xlabel("dimension d")
    ax[2].set_title("cost of exact ISM / SSM (M = 1)")
    return fig


def questions_section(ctx):
    r"""Section 7: seed 004_…, Q2.1 (choosing σ: DSM's variance against its bias) and Q2.2 (the
    number of projections of SSM), with closed forms:

    .. math:: \operatorname{Var}[\mathrm{DSM}_\sigma] \sim \frac{d}{2\sigma^4},\qquad
              \operatorname{Var}[\mathrm{SSM}_M] \propto \frac1M
    """
    R, bk = ctx.report, ctx.bk.name
    R.heading("7. The notes' open questions (seed 004_…, Q2.1 and Q2.2)")
    tv = experiments.dsm_variance_vs_sigma(n=ctx.size("n_open"), backend=bk)
    tb = experiments.dsm_bias_vs_sigma(n=ctx.size("n_bias"))
    tm = experiments.ssm_variance_vs_projections(Ms=(1, 2, 4, 8, 16), n=ctx.size("n_open"), backend=bk)
    tc = experiments.ism_vs_ssm_cost(dims=(2, 8, 32) if ctx.quick else (2, 8, 32, 128), n=256, backend=bk)
    R.figure(_questions_figure(tv, tb, tm, tc), "07_open_questions.png", "The open questions, answered by experiment")
    for t in (tv, tb, tm, tc):
        R.table(t)
    R.text("Choosing σ: the DSM loss's variance grows like d/(2σ⁴) as σ → 0 while the optimum's bias, the gap "
           "between (S+σ²I)⁻¹ and S⁻¹, grows like σ²; multiple noise levels (NCSN) take both. How many projections: "
           "the variance falls exactly as 1/M with the closed forms above; Rademacher probes beat Gaussian ones, and "
           "variance reduction removes the (vᵀs)² term — M = 1 with VR is usually enough, at 1/d of ISM's cost.")


def diffusion_section(ctx):
    r"""Section 8: the VP SDE's reverse process and probability-flow ODE with the exact scores of
    the ring's diffused laws, exact log-likelihoods by the ODE (Song et al. 2021, eqs. 6, 13, 39),
    and the held-out log-likelihood of the DSM-trained energy by AIS:

    .. math:: \log p_0(x) = \log p_1(x_1) + \int_0^1 \nabla\cdot\tilde f(x_t, t)\,dt
    """
    import matplotlib.pyplot as plt

    R, target = ctx.report, ring(ctx)
    R.heading("8. The reverse SDE, the probability-flow ODE and log-likelihoods")
    sde, rng = sdelib.VPSDE(0.1, 20.0), ctx.rng("diffusion")
    score_t = lambda x, t: sdelib.marginal_law(target, sde, t).score(x)
    x1 = sde.prior_sample(ctx.size("n_reverse"), 2, rng)
    xr = sdelib.reverse_sde_sample(sde, score_t, x1, rng, n_steps=ctx.size("reverse_steps"))
    xf = sdelib.probability_flow_sample(sde, score_t, x1[:300], rtol=1e-4, atol=1e-4)
    dens = plots.density_grid(ctx.on_host(target.unnormalized_log_prob), lim=3.2)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.6))
    plots.scatter_over_density(ax[0], ctx.host(xr), dens, "reverse-time SDE (Euler–Maruyama)")
    plots.scatter_over_density(ax[1], ctx.host(xf), dens, "probability-flow ODE")
    R.figure(fig, "08_reverse_sde.png", "Samples from the VP SDE's reverse process and its probability-flow ODE (exact scores)")
    xt = target.sample(ctx.size("n_likelihood"), rng)
    ll = ctx.host(sdelib.log_likelihood(sde, score_t, xt, t_min=1e-5))
    exact = ctx.host(target.log_prob(xt))
    R.table(Table("Exact log-likelihood by the probability-flow ODE (prior N(0, I) at t = 1)",
                  ["point", "PF-ODE log p", "true log p", "difference"],
                  [(i, float(a), float(b), float(a - b)) for i, (a, b) in enumerate(zip(ll, exact))]))
    R.table(_ais_table(ctx))


def _ais_table(ctx):
    r"""Held-out log-likelihood of the DSM-trained MLP energy, :math:`-E_\theta(x) - \log Z_\theta`,
    with :math:`\log Z_\theta` by annealed importance sampling (``refscore.partition.ais``, Neal
    2001) and by quadrature, next to the true :math:`\log p(x)` of the ring."""
    from ... import partition

    model, target = energy_model(ctx, "DSM")[0], ring(ctx)
    held_out = target.sample(2000, ctx.rng("held out"))
    log_z_quad = partition.log_partition_quadrature(model, [(-6, 6), (-6, 6)])
    ll_model = float(ctx.host(-model.energy(held_out)).mean())
    lp_true = ctx.host(target.log_prob(held_out))
    rows = [("log Z_θ by quadrature", float(log_z_quad), 0.0),
            ("model log p_θ(x), quadrature", ll_model - log_z_quad, 0.0)]
    # the base N(0, 2² I) covers the ring of radius 2 (AIS needs a base wider than the target)
    res = partition.ais(model, ctx.size("n_ais"), ctx.size("ais_steps"), ctx.rng("ais"), base=(0.0, 2.0))
    log_z, se = float(res.log_z), float(res.stderr)
    rows = [("log Z_θ by AIS", log_z, se), rows[0], ("model log p_θ(x), AIS", ll_model - log_z, se), rows[1]]
    ctx.results["heldout_ll_dsm_ais"], ctx.results["ais_ess"] = ll_model - log_z, float(res.ess)
    ctx.results["heldout_ll_dsm_quadrature"], ctx.results["heldout_ll_true"] = ll_model - log_z_quad, float(lp_true.mean())
    rows.append(("true log p(x)", float(lp_true.mean()), float(lp_true.std(ddof=1) / lp_true.size ** 0.5)))
    return Table("Held-out log-likelihood (mean over 2000 ring points) of the DSM-trained energy",
                 ["quantity", "value", "s.e."], rows,
                 note="Score matching never sees Z; AIS (MALA transitions from a Gaussian base) recovers it, "
                      "so the EBM's likelihood can be reported after training (seed 002_…).")
