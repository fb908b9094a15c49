r"""``refscore tour``: the lecture notes end to end, with pictures — figures (PNG) plus
``report.md`` and a self-contained ``report.html`` in ``--out``.

Sections follow the notes: (1) an EBM and its partition function; (2) score fields; (3) the
identities between the objectives; (4) training by DSM, SSM-VR, NCSN and CD; (5) sampling by
ULA, MALA and annealed Langevin; (6) Tweedie denoising; (7) the open questions of ``004_…``;
(8) the reverse SDE, the probability-flow ODE and exact log-likelihoods.
"""
from __future__ import annotations

import math
import os
import time

import numpy as onp


def _grid(lo, hi, m):
    g = onp.linspace(lo, hi, m)
    X, Y = onp.meshgrid(g, g)
    return X, Y, onp.stack([X.ravel(), Y.ravel()], axis=1)


def run_tour(backend=None, seed=0, out="tour-output", quick=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import backends, datasets, diagnostics, experiments, losses, nn, samplers, sde as sdelib, train, tweedie
    from .check import equivalence_table
    from ..energies import DoubleWell, GaussianMixture, MLPEnergy, Ring, SumOfEnergies
    from ..partition import log_partition_quadrature
    from .report import Report, Table

    t_start = time.perf_counter()
    bk = backends.get(backend)
    H, A = bk.to_numpy, bk.asarray
    rng = bk.rng(seed)
    R = Report(out, f"refscore tour (backend {bk.name}, seed {seed}{', quick' if quick else ''})")
    S = dict(n_data=2000 if quick else 4000, steps=150 if quick else 1200, n_chains=500 if quick else 2000,
             n_check=4000 if quick else 20000)
    log = lambda msg: print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    # (1) ---------------------------------------------------------------------------------
    log("1/8 energy-based model and its partition function")
    R.heading("1. An energy-based model and why Z is hard")
    poe = SumOfEnergies([Ring(radius=2.0, width=0.4), DoubleWell(dim=2, barrier=0.5)])
    logZ = log_partition_quadrature(poe, [(-5, 5), (-5, 5)])
    X, Y, pts = _grid(-3.5, 3.5, 150)
    E = H(poe.energy(A(pts))).reshape(X.shape)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    c0 = ax[0].contourf(X, Y, E, 30, cmap="viridis")
    fig.colorbar(c0, ax=ax[0])
    ax[0].set_title("energy E(x) = ring + double well")
    c1 = ax[1].contourf(X, Y, onp.exp(-E - logZ), 30, cmap="magma")
    fig.colorbar(c1, ax=ax[1])
    ax[1].set_title(f"density exp(-E)/Z,  log Z = {logZ:.4f}")
    R.figure(fig, "01_energy_density.png", "A product of experts (ring × double well): energy and normalised density")
    R.text(f"p(x) = exp(-E(x))/Z with E a sum of two experts (seed 002_…, 'EBM drawing'). In two dimensions Z "
           f"is a quadrature: log Z = {logZ:.6f}; in d dimensions a grid of m points per axis costs m^d evaluations, "
           "which is why the notes turn to the score, which does not depend on Z.")

    # data for the rest of the tour
    data = datasets.make("gaussian_mixture", S["n_data"], rng)
    target = GaussianMixture(onp.full(8, 1 / 8), [[2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)]
                                                   for k in range(8)], onp.full(8, 0.15**2), backend=bk.name)

    # (4) training, computed before (2) so that (2) can show the trained model ---------------
    log("4/8 training: DSM, SSM-VR, NCSN, CD")
    hidden = (64, 64)
    curves, models = {}, {}
    sw = {}
    x_eval = target.sample(S["n_chains"], rng)
    for name in ("DSM", "SSM-VR", "CD"):
        m = MLPEnergy(2, hidden, rng=bk.rng(seed + 1))
        if name == "DSM":
            lf = lambda p, b, r, m=m: losses.dsm(m.score_fn(p), b, 0.15, r)
            p, h = train.fit(lf, m.params, data, rng, n_steps=S["steps"], batch_size=128, desc="DSM", optimizer=train.adam(3e-3))
        elif name == "SSM-VR":
            lf = lambda p, b, r, m=m: losses.ssm(m.score_fn(p), b, r, variance_reduced=True)
            p, h = train.fit(lf, m.params, data, rng, n_steps=S["steps"], batch_size=128, desc="SSM-VR", optimizer=train.adam(3e-3))
        else:
            p, h = train.fit_cd(m, data, rng, k=20, step_size=0.005, persistent=True, n_steps=S["steps"] // 2,
                                batch_size=128, optimizer=train.adam(3e-3))
        m.params = p
        curves[name], models[name] = h["loss"], m
    sigmas = losses.geometric_sigmas(3.0, 0.05, 8)
    net = nn.NoiseConditionalScoreNet(2, (64, 64), rng=bk.rng(seed + 2))
    lf = lambda p, b, r: losses.ncsn(net.score_fn(p), b, sigmas, r)
    net.params, h = train.fit(lf, net.params, data, rng, n_steps=max(S["steps"] // 2, 100), batch_size=128, desc="NCSN",
                              optimizer=train.adam(3e-3))
    curves["NCSN"] = h["loss"]
    fig, ax = plt.subplots(1, 4, figsize=(16, 3.4))
    for a, (name, c) in zip(ax, curves.items()):
        c = onp.asarray(c)
        a.plot(c, lw=0.5, alpha=0.5)
        k = max(len(c) // 30, 1)
        a.plot(onp.arange(len(c) - k + 1) + k // 2, onp.convolve(c, onp.ones(k) / k, "valid"), lw=2)
        a.set_title(f"{name} loss")
        a.set_xlabel("step")
    R.figure(fig, "04_loss_curves.png", "Training loss curves (thin: per step; thick: running mean)")

    # (2) ---------------------------------------------------------------------------------
    log("2/8 score fields")
    R.heading("2. The Stein score: data vs model")
    Xq, Yq, q = _grid(-3, 3, 21)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.8))
    fields = [("data score (closed form)", H(target.score(A(q)))), ("MLP energy trained by DSM", H(models["DSM"].score(A(q)))),
              ("MLP energy trained by SSM-VR", H(models["SSM-VR"].score(A(q))))]
    dn = H(data)
    for a, (title, s) in zip(ax, fields):
        a.scatter(dn[:, 0], dn[:, 1], s=1, c="0.7")
        nrm = onp.linalg.norm(s, axis=1, keepdims=True) + 1e-9
        a.quiver(q[:, 0], q[:, 1], *(s / nrm ** 0.5).T, color="C3")
        a.set_title(title)
        a.set_aspect("equal")
    R.figure(fig, "02_score_fields.png", "Score fields s(x) = ∇ log p(x) (arrows scaled by |s|^½) over the data")
    R.text("The score points towards high density and never involves Z. Away from the data the learned fields are "
           "poor: the covariate shift of seeds 000_…/002_… that motivates multiple noise scales.")

    # (3) ---------------------------------------------------------------------------------
    log("3/8 identities")
    R.heading("3. The objectives agree up to constants")
    R.table(equivalence_table(bk.name, seed, S["n_check"]))

    R.heading("4. Training on a 2-D toy")
    R.text("An MLP energy is trained by denoising score matching (σ = 0.15), sliced score matching with variance "
           "reduction, and persistent contrastive divergence (Langevin negatives); a noise-conditional score "
           "network by the NCSN objective over 8 noise levels (λ(σ) = σ²). Sliced Wasserstein distance of "
           "samples from each model to the data is in section 5.")

    # (5) ---------------------------------------------------------------------------------
    log("5/8 sampling")
    R.heading("5. Sampling: ULA, MALA, annealed Langevin")
    x0 = bk.uniform(rng, (S["n_chains"], 2)) * 6 - 3
    n_s = 300 if quick else 1000
    xu, _ = samplers.langevin(target.score, x0, 0.01, n_s, rng)
    xm, im = samplers.mala(target.unnormalized_log_prob, x0, 0.05, n_s, rng, score_fn=target.score)
    xa, _ = samplers.annealed_langevin(lambda x, s: net.score_fn()(x, s), x0, sigmas, 0.002, 40 if quick else 100, rng,
                                       final_denoise=True)
    xd, _ = samplers.langevin(models["DSM"].score, x0, 0.005, n_s, rng)
    fig, ax = plt.subplots(1, 4, figsize=(17, 4.2))
    Xd, Yd, g = _grid(-3.2, 3.2, 120)
    dens = onp.exp(-H(target.energy(A(g)))).reshape(Xd.shape)
    for a, (title, xs) in zip(ax, [("ULA (exact score)", xu), (f"MALA (acc. {float(im['acceptance_rate'].mean()):.2f})", xm),
                                   ("annealed Langevin (NCSN net)", xa), ("ULA on the DSM energy", xd)]):
        a.contourf(Xd, Yd, dens, 20, cmap="Blues")
        xs = H(xs)
        a.scatter(xs[:, 0], xs[:, 1], s=2, c="C3")
        a.set_title(title)
        a.set_xlim(-3.2, 3.2)
        a.set_ylim(-3.2, 3.2)
        a.set_aspect("equal")
    R.figure(fig, "05_samples.png", "Samples over the data density, chains started uniformly on the square of side 6")
    swt = Table("Sliced Wasserstein distance to exact samples (lower is better)", ["sampler / model", "SW2"],
                            [(k, diagnostics.sliced_wasserstein(v, x_eval)) for k, v in
                             [("ULA exact score", xu), ("MALA exact", xm), ("annealed Langevin, NCSN net", xa),
                              ("ULA on DSM-trained energy", xd), ("initial uniform", x0)]])
    R.table(swt)
    # the two-mode experiment
    g2 = GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], [1.0, 1.0], backend=bk.name)
    z0 = bk.uniform(rng, (S["n_chains"], 2)) * 16 - 8
    sig2 = losses.geometric_sigmas(20.0, 0.5, 10)
    pert = {float(s): g2.perturbed(float(s)).score for s in sig2}
    ya, _ = samplers.annealed_langevin(lambda x, s: pert[s](x), z0, sig2, 0.05, 100, rng)
    yl, _ = samplers.langevin(g2.score, z0, 0.05, 1000, rng)
    n2 = S["n_chains"]
    se = math.sqrt(0.16 / n2)
    R.table(Table("NCSN two-mode experiment: weight of the mode at (5, 5) (true 0.8)",
                              ["sampler", "weight", "MC s.e."],
                              [("plain Langevin, 1000 steps", float(onp.mean(H(yl)[:, 0] > 0)), se),
                               ("annealed Langevin, 10 levels x 100", float(onp.mean(H(ya)[:, 0] > 0)), se)],
                              note="Plain Langevin cannot move mass between the modes; annealing recovers the weights."))

    # (6) ---------------------------------------------------------------------------------
    log("6/8 Tweedie denoising")
    R.heading("6. Tweedie denoising")
    sd = 0.5
    xc = target.sample(400, rng)
    y = xc + sd * bk.normal(rng, xc.shape)
    den_exact = tweedie.denoise(target.perturbed(sd).score, y, sd)
    den_net = tweedie.denoise(lambda v: net.score_fn()(v, sd), y, sd)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.8))
    for a, (title, dd) in zip(ax, [("exact: y + σ² ∇log p_σ(y)", den_exact), ("NCSN net at σ = 0.5", den_net)]):
        yy, dd = H(y), H(dd)
        a.scatter(yy[:, 0], yy[:, 1], s=4, c="0.6", label="noisy y")
        a.scatter(dd[:, 0], dd[:, 1], s=4, c="C3", label="E[x | y]")
        a.legend(loc="upper right", fontsize=8)
        a.set_title(title)
        a.set_aspect("equal")
    R.figure(fig, "06_tweedie.png", "Tweedie's formula (seed 003_…, eq. 11.12) moves noisy points to their posterior mean")
    err = float(onp.abs(H(den_exact) - H(target.posterior_mean(y, sd))).max())
    R.text(f"The exact Tweedie denoiser agrees with the closed-form posterior mean to {err:.1e}; mean squared error "
           f"to the clean points: noisy {float(onp.mean(onp.sum((H(y) - H(xc)) ** 2, 1))):.3f}, exact denoiser "
           f"{float(onp.mean(onp.sum((H(den_exact) - H(xc)) ** 2, 1))):.3f}, network "
           f"{float(onp.mean(onp.sum((H(den_net) - H(xc)) ** 2, 1))):.3f}.")

    # (7) ---------------------------------------------------------------------------------
    log("7/8 the open questions")
    R.heading("7. The notes' open questions (seed 004_…, Q2.1 and Q2.2)")
    tv = experiments.dsm_variance_vs_sigma(n=5000 if quick else 20000, backend=bk.name)
    tb = experiments.dsm_bias_vs_sigma(n=10000 if quick else 50000)
    tm = experiments.ssm_variance_vs_projections(Ms=(1, 2, 4, 8, 16), n=4000 if quick else 20000, backend=bk.name)
    tc = experiments.ism_vs_ssm_cost(dims=(2, 8, 32) if quick else (2, 8, 32, 128), n=256, backend=bk.name)
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
            sel = [i for i, r in enumerate(tm.rows) if r[1] == kind and r[2] == vr]
            Ms = onp.array([tm.rows[i][0] for i in sel])
            ax[1].loglog(Ms, [tm.rows[i][3] for i in sel], mk + "-", label=f"{kind}, VR={vr}")
            ax[1].loglog(Ms, [tm.rows[i][4] for i in sel], "k:", lw=1)
    ax[1].set_xlabel("projections M")
    ax[1].set_title("Q2.2: SSM variance ∝ 1/M (dotted: closed forms)")
    ax[1].legend(fontsize=8)
    ax[2].plot(tc.column("d"), tc.column("ratio ISM/SSM"), "o-")
    ax[2].set_xscale("log")
    ax[2].set_xlabel("dimension d")
    ax[2].set_title("cost of exact ISM / SSM (M = 1)")
    R.figure(fig, "07_open_questions.png", "The open questions, answered by experiment")
    for t in (tv, tb, tm, tc):
        R.table(t)
    R.text("Choosing σ: the DSM loss's variance grows like d/(2σ⁴) as σ → 0 while the optimum's bias, the gap "
           "between (S+σ²I)⁻¹ and S⁻¹, grows like σ²; multiple noise levels (NCSN) take both. How many projections: "
           "the variance falls exactly as 1/M with the closed forms above; Rademacher probes beat Gaussian ones, and "
           "variance reduction removes the (vᵀs)² term — M = 1 with VR is usually enough, at 1/d of ISM's cost.")

    # (8) ---------------------------------------------------------------------------------
    log("8/8 reverse SDE and likelihoods")
    R.heading("8. The reverse SDE, the probability-flow ODE and exact log-likelihoods")
    sde = sdelib.VPSDE(0.1, 20.0)
    cache = {}

    def score_t(x, t):
        if t not in cache:
            m_, sd_ = sde.marginal_coeffs(t)
            v_ = sd_ * sd_
            cache[t] = target.diffused(min(max(v_, 1e-12), 1 - 1e-12)) if t > 0 else target
        return cache[t].score(x)

    n8 = 500 if quick else 2000
    x1 = sde.prior_sample(n8, 2, rng)
    xr = sdelib.reverse_sde_sample(sde, score_t, x1, rng, n_steps=200 if quick else 1000)
    xf = sdelib.probability_flow_sample(sde, score_t, x1[:300], rtol=1e-4, atol=1e-4)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.6))
    for a, (title, xs) in zip(ax, [("reverse-time SDE (Euler–Maruyama)", xr), ("probability-flow ODE", xf)]):
        a.contourf(Xd, Yd, dens, 20, cmap="Blues")
        xs = H(xs)
        a.scatter(xs[:, 0], xs[:, 1], s=2, c="C3")
        a.set_title(title)
        a.set_aspect("equal")
    R.figure(fig, "08_reverse_sde.png", "Samples from the VP SDE's reverse process and its probability-flow ODE (exact scores)")
    xt8 = target.sample(8 if quick else 16, rng)
    ll = H(sdelib.log_likelihood(sde, score_t, xt8, t_min=1e-5))
    exact = H(target.log_prob(xt8))
    R.table(Table("Exact log-likelihood by the probability-flow ODE (prior N(0, I) at t = 1)",
                              ["point", "PF-ODE log p", "true log p", "difference"],
                              [(i, float(a), float(b), float(a - b)) for i, (a, b) in enumerate(zip(ll, exact))]))

    wall = time.perf_counter() - t_start
    R.text(f"Tour wall time: {wall:.1f} s on backend {bk.name}.")
    R.write()
    log(f"done: {os.path.join(out, 'report.html')}")
    return 0
