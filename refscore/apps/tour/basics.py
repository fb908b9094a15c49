r"""Tour sections 1–4: an energy-based model and its partition function, the score, the score
matching objectives (their identities and three trainings), and denoising at many noise scales."""
from __future__ import annotations

import numpy as onp

from ...energies import DoubleWell, Ring, SumOfEnergies
from ...partition import log_partition_quadrature
from .. import plots
from ..check import equivalence_table
from ..report import Table
from .artefacts import energy_model, ncsn_model, ring, ring_data

__all__ = ["ebm_section", "score_section", "objectives_section", "noise_scales_section"]


def ebm_section(ctx):
    r"""Section 1: a product of experts :math:`E = E_\text{ring} + E_\text{double well}`, its energy,
    and its density normalised by quadrature (seed 002_…, "EBM drawing"):

    .. math:: p(x) = e^{-E(x)}/Z,\qquad Z = \int e^{-E(x)}\,dx
    """
    import matplotlib.pyplot as plt

    R = ctx.report
    R.heading("1. An energy-based model and why Z is hard")
    poe = SumOfEnergies([Ring(radius=2.0, width=0.4), DoubleWell(dim=2, barrier=0.5)])
    logZ = log_partition_quadrature(poe, [(-5, 5), (-5, 5)])
    X, Y, pts = plots.grid(3.5, 150)
    E = ctx.host(poe.energy(ctx.dev(pts))).reshape(X.shape)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    fig.colorbar(ax[0].contourf(X, Y, E, 30, cmap="viridis"), ax=ax[0])
    ax[0].set_title("energy E(x) = ring + double well")
    fig.colorbar(ax[1].contourf(X, Y, onp.exp(-E - logZ), 30, cmap="magma"), ax=ax[1])
    ax[1].set_title(f"density exp(-E)/Z,  log Z = {logZ:.4f}")
    R.figure(fig, "01_energy_density.png", "A product of experts (ring × double well): energy and normalised density")
    R.text(f"p(x) = exp(-E(x))/Z with E a sum of two experts (seed 002_…, 'EBM drawing'). In two dimensions Z "
           f"is a quadrature: log Z = {logZ:.6f}; in d dimensions a grid of m points per axis costs m^d evaluations, "
           "which is why the notes turn to the score, which does not depend on Z.")


def score_section(ctx):
    r"""Section 2: the data's score beside the scores of two trained MLP energies (seed 001_…):

    .. math:: s(x) = \nabla_x\log p(x) = -\nabla_x E(x)\quad(Z\text{ drops out})
    """
    import matplotlib.pyplot as plt

    R = ctx.report
    R.heading("2. The Stein score: data vs model")
    fields = [("data score (closed form)", ring(ctx).score),
              ("MLP energy trained by DSM", energy_model(ctx, "DSM")[0].score),
              ("MLP energy trained by SSM-VR", energy_model(ctx, "SSM-VR")[0].score)]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.8))
    for a, (title, score) in zip(ax, fields):
        plots.score_field(a, ctx.on_host(score), lim=3.0, data=ctx.host(ring_data(ctx)), title=title)
    R.figure(fig, "02_score_fields.png", "Score fields s(x) = ∇ log p(x) (arrows scaled by |s|^½) over the data")
    R.text("The score points towards high density and never involves Z. Away from the data the learned fields are "
           "poor: the covariate shift of seeds 000_…/002_… that motivates multiple noise scales.")


def objectives_section(ctx):
    r"""Section 3: the objectives agree up to constants (the ``refscore check`` registry), and an
    MLP energy trained by three of them (Hyvärinen 2005, Thm 1; Vincent 2011; Song et al. 2019):

    .. math:: \mathrm{ESM}(\theta) = \mathrm{ISM}(\theta) + \tfrac12\mathbb E\|s^*\|^2
              = \mathrm{DSM}_\sigma(\theta) - C(\sigma) + O(\sigma)
    """
    import matplotlib.pyplot as plt

    R = ctx.report
    R.heading("3. The score matching objectives agree up to constants")
    R.table(equivalence_table(ctx.bk.name, ctx.seed, ctx.size("n_check")))
    names = ("DSM", "SSM-VR", "CD")
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    for a, name in zip(ax, names):
        plots.loss_panel(a, energy_model(ctx, name)[1], f"{name} loss")
    fig.tight_layout()
    R.figure(fig, "03_loss_curves.png", "Training loss curves of the MLP energy (thin: per step; thick: running mean)")
    R.text("An MLP energy is trained on the 8-Gaussian ring by denoising score matching (σ = 0.15), sliced score "
           "matching with variance reduction, and persistent contrastive divergence (Langevin negatives). Its "
           "score field is in section 2; samples from it and their sliced Wasserstein distance are in section 6.")


def noise_scales_section(ctx):
    r"""Section 4: the perturbed densities of an NCSN noise schedule and a noise-conditional net
    trained on them (Song & Ermon 2019, eq. 6; 2020, techniques 1–2, 5):

    .. math:: p_{\sigma_i} = p * \mathcal N(0,\sigma_i^2 I),\qquad
              \sigma_1 > \dots > \sigma_L,\quad \sigma_{i+1}/\sigma_i = \gamma
    """
    import matplotlib.pyplot as plt

    R = ctx.report
    R.heading("4. Denoising at many noise scales (NCSN)")
    net, schedule, curve = ncsn_model(ctx)
    sig = onp.asarray(schedule.sigmas, float)
    show = sig[onp.unique(onp.linspace(0, len(sig) - 1, 5).round().astype(int))]
    fig = plots.sigma_ladder(lambda s: ctx.on_host(ring(ctx).perturbed(s).log_prob), show, lim=4.5)
    R.figure(fig, "04_sigma_ladder.png", "The ring perturbed at five of the schedule's noise levels (largest first)")
    fig, ax = plt.subplots(1, 1, figsize=(5, 3.4))
    plots.loss_panel(ax, curve, "NCSN loss (one σ per example)")
    R.figure(fig, "04_ncsn_loss.png", "Training loss of the noise-conditional net (thin: per step; thick: running mean)")
    R.table(Table("Noise schedule (Song & Ermon 2020, techniques 1–2 and 4)", ["quantity", "value"],
                  [("σ₁ (largest pairwise distance)", float(sig[0])), ("σ_L", float(sig[-1])), ("L", len(sig)),
                   ("ratio γ", float(sig[1] / sig[0])), ("step size h (our h; their ε)", float(schedule.step_size)),
                   ("steps per level T", ctx.size("ncsn_steps_each"))]))
    R.text("A noise-conditional score network s_θ(x, σ) is trained by the NCSN objective with λ(σ) = σ²: each "
           "example draws its own level uniformly (an unbiased estimate of the average over levels at 1/L of the "
           "cost), the net sees (x − μ)/√(σ² + σ_data²) and its output is scaled by 1/σ, and an exponential moving "
           "average of the parameters is kept. Large σ fills the space between the modes, so the score is learnt "
           "where Langevin chains start; its samples are in section 6.")
