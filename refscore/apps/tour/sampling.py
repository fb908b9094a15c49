r"""Tour sections 5–6: Tweedie denoising, and sampling by ULA, MALA and annealed Langevin."""
from __future__ import annotations

import math
import os

import numpy as onp

from ... import datasets, diagnostics, losses, samplers, tweedie
from ...energies import GaussianMixture
from .. import plots
from ..report import Table
from .artefacts import energy_model, ncsn_model, ring

__all__ = ["tweedie_section", "sampling_section"]

# issue 24's targets for the NCSN ring samples (measured in `refscore tour --seed 0`)
SW2_RATIO_TARGET, IN_MODE_TARGET, WEIGHT_TARGET = 1.2, 0.9, 0.03


def tweedie_section(ctx):
    r"""Section 5: Tweedie's formula with the exact score and with the NCSN net (seed 003_…, eq. 11.12):

    .. math:: \mathbb E[x\mid y] = y + \sigma^2\nabla_y\log p_\sigma(y),\qquad y = x + \sigma z
    """
    import matplotlib.pyplot as plt

    R, target, sd = ctx.report, ring(ctx), 0.5
    R.heading("5. Tweedie denoising")
    rng = ctx.rng("tweedie")
    xc = target.sample(400, rng)
    y = xc + sd * ctx.bk.normal(rng, xc.shape)
    net = ncsn_model(ctx)[0]
    den_exact = tweedie.denoise(target.perturbed(sd).score, y, sd)
    den_net = tweedie.denoise(lambda v: net.score_fn()(v, sd), y, sd)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.8))
    for a, (title, dd) in zip(ax, [("exact: y + σ² ∇log p_σ(y)", den_exact), ("NCSN net at σ = 0.5", den_net)]):
        yy, dd = ctx.host(y), ctx.host(dd)
        a.scatter(yy[:, 0], yy[:, 1], s=4, c="0.6", label="noisy y")
        a.scatter(dd[:, 0], dd[:, 1], s=4, c="C3", label="E[x | y]")
        a.legend(loc="upper right", fontsize=8)
        a.set_title(title)
        a.set_aspect("equal")
    R.figure(fig, "05_tweedie.png", "Tweedie's formula (seed 003_…, eq. 11.12) moves noisy points to their posterior mean")
    err = float(onp.abs(ctx.host(den_exact) - ctx.host(target.posterior_mean(y, sd))).max())
    mse = lambda a: float(onp.mean(onp.sum((ctx.host(a) - ctx.host(xc)) ** 2, 1)))
    R.text(f"The exact Tweedie denoiser agrees with the closed-form posterior mean to {err:.1e}; mean squared error "
           f"to the clean points: noisy {mse(y):.3f}, exact denoiser {mse(den_exact):.3f}, network {mse(den_net):.3f}.")


def _ring_samples(ctx):
    r"""Chains from the uniform square of side 6 by ULA and MALA with the exact score, annealed
    Langevin with the NCSN net, and ULA on the DSM-trained energy; plus exact samples."""
    target, rng, n, n_s = ring(ctx), ctx.rng("sampling"), ctx.size("n_chains"), ctx.size("n_sample_steps")
    net, schedule, _ = ncsn_model(ctx)
    x0 = ctx.bk.uniform(rng, (n, 2)) * 6 - 3
    xs = {"initial uniform": x0}
    xs["ULA exact score"] = samplers.langevin(target.score, x0, 0.01, n_s, rng)[0]
    xs["MALA exact"], info = samplers.mala(target.unnormalized_log_prob, x0, 0.05, n_s, rng, score_fn=target.score)
    xs["annealed Langevin, NCSN net"] = samplers.annealed_langevin(
        net.score_fn(), x0, schedule.sigmas, schedule.step_size, ctx.size("ncsn_steps_each"), rng,
        final_denoise=True)[0]
    xs["ULA on DSM-trained energy"] = samplers.langevin(energy_model(ctx, "DSM")[0].score, x0, 0.005, n_s, rng)[0]
    rate = info["acceptance_rate"]
    acc = float(onp.mean(rate if isinstance(rate, (int, float)) else ctx.host(rate)))
    return xs, target.sample(n, ctx.rng("exact samples")), acc


def sampling_section(ctx):
    r"""Section 6: ULA, MALA and annealed Langevin on the ring, scored by the sliced Wasserstein
    distance to exact samples; the NCSN two-mode experiment (Song & Ermon 2019, §3.2).

    .. math:: x' = x + h\,s(x) + \sqrt{2h}\,z,\qquad
              SW_2(x,y)^2 = \mathbb E_\theta W_2^2(\theta^\top x, \theta^\top y)
    """
    import matplotlib.pyplot as plt

    R = ctx.report
    R.heading("6. Sampling: ULA, MALA, annealed Langevin")
    xs, exact, acc = _ring_samples(ctx)
    dens = plots.density_grid(ctx.on_host(ring(ctx).unnormalized_log_prob), lim=3.2)
    panels = [("ULA (exact score)", "ULA exact score"), (f"MALA (acc. {acc:.2f})", "MALA exact"),
              ("annealed Langevin (NCSN net)", "annealed Langevin, NCSN net"),
              ("ULA on the DSM energy", "ULA on DSM-trained energy")]
    fig, ax = plt.subplots(1, 4, figsize=(17, 4.2))
    for a, (title, key) in zip(ax, panels):
        plots.scatter_over_density(a, ctx.host(xs[key]), dens, title)
    R.figure(fig, "06_samples.png", "Samples over the data density, chains started uniformly on the square of side 6")
    ncsn = ctx.host(xs["annealed Langevin, NCSN net"])
    onp.save(os.path.join(ctx.out, "ncsn_2d_samples.npy"), ncsn)
    keys = ["ULA exact score", "MALA exact", "annealed Langevin, NCSN net", "ULA on DSM-trained energy", "initial uniform"]
    sw = {k: diagnostics.sliced_wasserstein(ctx.host(xs[k]), ctx.host(exact)) for k in keys}
    ratio = sw["annealed Langevin, NCSN net"] / sw["ULA exact score"]
    R.table(Table("Sliced Wasserstein distance to exact samples (lower is better)", ["sampler / model", "SW2"],
                  list(sw.items()),
                  note=f"NCSN / ULA-exact = {ratio:.2f} (target ≤ {SW2_RATIO_TARGET}: "
                       f"{'met' if ratio <= SW2_RATIO_TARGET else 'MISSED'}); "
                       f"the NCSN samples are saved as ncsn_2d_samples.npy {ncsn.shape}."))
    ctx.results["sw2_ncsn"], ctx.results["sw2_ula_exact"] = sw["annealed Langevin, NCSN net"], sw["ULA exact score"]
    R.table(_mode_table(ctx, {"exact samples": exact, "ULA exact score": xs["ULA exact score"],
                              "annealed Langevin, NCSN net": xs["annealed Langevin, NCSN net"]}))
    R.table(_two_modes(ctx))


def _mode_table(ctx, samples):
    r"""How the samples sit on the ring: the share within three standard deviations of a mode
    (:func:`refscore.diagnostics.in_mode_share`; exact samples give :math:`1-e^{-9/2} = 0.989`)
    and the largest deviation of a mode's weight from 1/8 (:func:`~refscore.diagnostics.mode_weights`)."""
    target = ring(ctx)
    mu, s = ctx.host(target.means), datasets.RING_NOISE  # the modes' std, 0.15
    rows, keys = [], {"exact samples": "exact", "ULA exact score": "ula_exact", "annealed Langevin, NCSN net": "ncsn"}
    for name, x in samples.items():
        share = diagnostics.in_mode_share(ctx.host(x), mu, s)
        dev = float(onp.abs(diagnostics.mode_weights(ctx.host(x), mu) - 1 / 8).max())
        rows.append((name, share, dev))
        ctx.results[f"{keys[name]}_in_mode_share"], ctx.results[f"{keys[name]}_mode_weights_max_dev"] = share, dev
    share, dev = rows[-1][1:]
    ok = lambda b: "met" if b else "MISSED"
    n = ctx.size("n_chains")
    cols = ["sampler / model", "share within 3 std of a mode", "largest deviation of a mode weight from 1/8"]
    note = (f"NCSN targets: share ≥ {IN_MODE_TARGET} ({ok(share >= IN_MODE_TARGET)}), every weight within "
            f"{WEIGHT_TARGET} of 1/8 ({ok(dev <= WEIGHT_TARGET)}). Exact samples: share 1 - exp(-9/2) = "
            f"{1 - math.exp(-4.5):.4f}; a weight's binomial s.e. is {math.sqrt(7 / 64 / n):.4f} with {n} chains.")
    return Table("Mode occupancy on the ring", cols, rows, note=note)


def _two_modes(ctx):
    r"""The two-mode experiment: weight 0.2/0.8 at (−5,−5)/(5,5); plain Langevin keeps the initial
    split, annealed Langevin over 10 levels with exact perturbed scores recovers it."""
    g2 = GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], [1.0, 1.0], backend=ctx.bk.name)
    rng, n = ctx.rng("two modes"), ctx.size("n_chains")
    z0 = ctx.bk.uniform(rng, (n, 2)) * 16 - 8
    sig2 = [float(s) for s in losses.geometric_sigmas(20.0, 0.5, 10)]
    pert = {s: g2.perturbed(s).score for s in sig2}
    ya, _ = samplers.annealed_langevin(lambda x, s: pert[float(s)](x), z0, sig2, 0.05, 100, rng)
    yl, _ = samplers.langevin(g2.score, z0, 0.05, 1000, rng)
    se = math.sqrt(0.16 / n)  # binomial SE of a proportion near 0.8
    return Table("NCSN two-mode experiment: weight of the mode at (5, 5) (true 0.8)", ["sampler", "weight", "MC s.e."],
                 [("plain Langevin, 1000 steps", float(onp.mean(ctx.host(yl)[:, 0] > 0)), se),
                  ("annealed Langevin, 10 levels x 100", float(onp.mean(ctx.host(ya)[:, 0] > 0)), se)],
                 note="Plain Langevin cannot move mass between the modes; annealing recovers the weights.")
