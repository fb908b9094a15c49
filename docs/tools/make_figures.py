"""The book's figures, drawn from refscore's public API at docs build time.

Each figure is one small function ``fig_<name>(path)``; ``build(out_dir)`` draws the ones whose
PNG is missing or older than this file. Small n throughout: the whole set takes well under a
minute of CPU. Run by hand with ``python docs/tools/make_figures.py [--force]``.
"""
from __future__ import annotations

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from refscore import datasets, plots, samplers, sde, tweedie  # noqa: E402
from refscore.apps import experiments  # noqa: E402
from refscore.apps import plots as tour_plots  # noqa: E402  (the tour's mosaic of digits)
from refscore.diagnostics import mode_weights  # noqa: E402
from refscore.energies import DoubleWell, Gaussian, GaussianMixture, Ring, SumOfEnergies  # noqa: E402
from refscore.partition import log_partition_quadrature  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import diffusion_figures  # noqa: E402  (docs/tools: DDPM/DDIM, guidance, the U-Net)
import intuition_figures  # noqa: E402  (docs/tools: the figures drawn with refscore.plots)

DPI = 90
# the running example of the book: two well-separated modes of unequal weight (chapters 4, 6, 7)
TWO_MODES = GaussianMixture([0.2, 0.8], [[-4.0, -4.0], [4.0, 4.0]], [1.0, 1.0])
RING8 = datasets.gaussian_mixture_law(noise=0.2)  # the tour's 8-Gaussian ring, modes of width 0.2


def _grid(lim, m=120):
    u = np.linspace(-lim, lim, m)
    X, Y = np.meshgrid(u, u)
    return X, Y, np.c_[X.ravel(), Y.ravel()]  # (m*m, 2)


def _finish(fig, ax, path, xlabel, ylabel, legend_size=8):
    """Label the axes, add the legend, and save the figure."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def fig_ebm(path):
    """A product of experts E = E_ring + E_well: the energy, and the density after dividing by Z."""
    poe = SumOfEnergies([Ring(radius=2.0, width=0.4), DoubleWell(dim=2, barrier=0.5)])
    log_z = log_partition_quadrature(poe, [(-5, 5), (-5, 5)])
    X, Y, pts = _grid(3.5)
    E = poe.energy(pts).reshape(X.shape)
    fig, ax = plt.subplots(1, 2, figsize=(8, 3.6))
    ax[0].contourf(X, Y, np.minimum(E, np.percentile(E, 90)), 30, cmap="viridis")
    ax[0].set_title("energy E(x) (low = likely)")
    plots.density_contours(ax[1], lambda x: -poe.energy(x), lim=3.5, levels=30, cmap="magma")
    ax[1].set_title(f"p(x) = exp(-E(x)) / Z,  log Z = {log_z:.3f}")
    for a in ax:
        a.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def fig_score_field(path):
    """The score of a mixture as arrows over its density (the tour's plots.score_field)."""
    gmm = GaussianMixture([0.3, 0.7], [[-1.5, 0.0], [1.5, 0.5]], [0.5, 0.8])
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    plots.density_contours(ax, gmm.log_prob, lim=3.5)
    plots.score_quiver(ax, gmm.score, lim=3.5, m=17)
    ax.set_title("s(x) = -grad E(x) over p(x)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def fig_ssm_variance(path):
    """SSM's per-example variance over projections against M: measured and closed form."""
    t = experiments.ssm_variance_vs_projections(Ms=(1, 2, 4, 8, 16), n=2000)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for kind, vr, mark in (("gaussian", "no", "o"), ("gaussian", "yes", "s"), ("rademacher", "yes", "^")):
        rows = [r for r in t.rows if r[1] == kind and r[2] == vr]
        M = [r[0] for r in rows]
        measured, closed = t.columns.index("measured var"), t.columns.index("closed form")
        ax.loglog(M, [r[measured] for r in rows], mark, label=f"{kind}, VR={vr} (measured)")
        ax.loglog(M, [r[closed] for r in rows], "-", color=ax.lines[-1].get_color(), alpha=0.6)
    ax.set_title("Hutchinson: variance falls as 1/M (lines: closed form)")
    _finish(fig, ax, path, "projections per example M", "Var(SSM - ISM) per example", legend_size=7)


def fig_sigma_ladder(path):
    """The sigma ladder: p_sigma of the two-mode data for sigma_1 > ... > sigma_L, and the data."""
    one_d = GaussianMixture([0.2, 0.8], [[-4.0], [4.0]], [1.0, 1.0])
    u = np.linspace(-14, 14, 600)[:, None]
    sigmas = np.geomspace(8.0, 0.1, 5)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    for s in sigmas:
        ax[0].plot(u[:, 0], np.exp(one_d.perturbed(s).log_prob(u)), label=f"sigma = {s:.2g}")
    ax[0].set_title("p_sigma of the 1-D analogue 0.2 N(-4,1) + 0.8 N(4,1)", fontsize=9)
    ax[0].legend(fontsize=7)
    rng = np.random.default_rng(0)
    x = TWO_MODES.sample(400, rng)
    # log p shifted by its maximum and clipped at -30: the colour scale shows the empty regions
    plots.density_contours(ax[1], TWO_MODES.log_prob, lim=9, levels=16, log=True, floor=-30.0,
                           cmap="Greys_r")
    noisy = TWO_MODES.perturbed(3.0).sample(300, rng)
    # the sigma = 3 points first and large, in a colour that stands out on the grey scale; the
    # data on top, small: both clouds stay visible where they overlap
    ax[1].plot(noisy[:, 0], noisy[:, 1], "o", ms=3.5, mfc="deepskyblue", mec="navy", mew=0.4, alpha=0.9, zorder=2)
    ax[1].plot(x[:, 0], x[:, 1], ".", ms=1.5, color="tab:orange", zorder=3)
    ax[1].set_title("log p (dark = low density): data (orange) leave it empty;\nsigma = 3 samples (light blue) cover it", fontsize=9)
    ax[1].set(xlim=(-9, 9), ylim=(-9, 9), aspect="equal")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


S_BIAS = np.array([[1.0, 0.6], [0.6, 0.8]])  # the S of experiments.dsm_bias_vs_sigma


def kl_small_sigma(s, S=S_BIAS):
    """The leading term of KL(N(0, S) || N(0, S + s^2 I)) as s -> 0: s^4 tr(S^-2) / 4 (chapter 4)."""
    Si = np.linalg.inv(S)
    return s**4 * np.trace(Si @ Si) / 4


def fig_dsm_variance(path):
    """DSM's variance against sigma (grows like d / (2 sigma^4)) and the bias of its optimum."""
    sig = (0.03, 0.1, 0.3, 1.0, 3.0)
    v = experiments.dsm_variance_vs_sigma(sigmas=sig, n=4000)
    b = experiments.dsm_bias_vs_sigma(sigmas=sig, n=4000)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].errorbar(sig, v.column("var loss"), yerr=2 * np.asarray(v.column("SE of var loss")), fmt="o",
                   label="measured (+- 2 SE), n = 4000")
    ax[0].loglog(sig, v.column("var loss (closed form)"), "-", label="(d/2) (1/sigma^2 - a*)^2, d = 2")
    ax[0].set(xscale="log", yscale="log", ylabel="Var of the per-example DSM loss")
    ax[0].set_title("variance: data N(0, I_2), model at its optimum", fontsize=9)
    ax[1].loglog(sig, b.column("KL(p || p_sigma)"), "o-", color="tab:red", label="exact KL")
    ax[1].loglog(sig, [kl_small_sigma(s) for s in sig], ":", color="k", label="sigma^4 tr(S^-2) / 4")
    ax[1].set(ylabel="KL(p || p_sigma) (nats)")
    ax[1].set_title("bias of the DSM optimum: data N(0, S), S = [[1, .6], [.6, .8]]", fontsize=9)
    ax[1].legend(fontsize=8)
    for a in ax:
        a.set_xlabel("noise level sigma")
    ax[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def fig_tweedie(path):
    """Tweedie (eq. 11.13): noisy points x' and the denoised E[x | x'] from the score alone."""
    beta = 0.4
    rng = np.random.default_rng(1)
    x = RING8.sample(60, rng)
    xp = np.sqrt(1 - beta) * x + np.sqrt(beta) * rng.standard_normal(x.shape)
    den = tweedie.denoise_vp(RING8.diffused(beta).score, xp, beta)
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot(*RING8.sample(800, rng).T, ".", ms=1.5, color="0.7", label="data x")
    ax.plot(*xp.T, "x", ms=4, color="tab:blue", label="x' = sqrt(1-b) x + sqrt(b) eps")
    ax.plot(*den.T, "o", ms=3, color="tab:red", label="(x' + b s(x')) / sqrt(1-b)")
    for a, c in zip(xp, den):
        ax.plot([a[0], c[0]], [a[1], c[1]], "-", lw=0.5, color="tab:red")
    ax.set_title(f"Tweedie denoising, beta = {beta}")
    ax.set_aspect("equal")
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def fig_samplers(path):
    """ULA, MALA and annealed Langevin on the two-mode data, from the same uniform start."""
    rng = np.random.default_rng(2)
    x0 = rng.uniform(-8, 8, (600, 2))
    ula, _ = samplers.langevin(TWO_MODES.score, x0, 0.1, 300, rng)
    mala, _ = samplers.mala(TWO_MODES.unnormalized_log_prob, x0, 0.1, 300, rng, score_fn=TWO_MODES.score)
    sig = np.geomspace(10.0, 0.5, 10)
    ann, _ = samplers.annealed_langevin(lambda x, s: TWO_MODES.perturbed(s).score(x), x0, sig, 0.05, 30, rng)
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.7), sharex=True, sharey=True)
    modes = TWO_MODES.host_params["means"]
    for a, (name, y) in zip(ax, (("ULA", ula), ("MALA", mala), ("annealed", ann))):
        share = float(mode_weights(y, modes)[1])
        plots.samples_over_density(a, y, TWO_MODES.log_prob, lim=8.0)
        a.set_title(f"{name}: {share:.2f} in the 0.8 mode")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def fig_ula_bias(path):
    """ULA's stationary variance on N(0, 1) against the step h, and 1 / (1 - h/2)."""
    g = Gaussian([0.0], [[1.0]])
    rng = np.random.default_rng(3)
    hs = np.array([0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0])
    n = 4000
    var = np.array([float(samplers.langevin(g.score, rng.standard_normal((n, 1)), h, 80, rng)[0].var(ddof=1)) for h in hs])
    se = var * np.sqrt(2 / (n - 1))  # SE of a sample variance of n Gaussian draws
    u = np.linspace(0.01, 1.05, 100)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.errorbar(hs, var, yerr=2 * se, fmt="o", capsize=3, label=f"ULA, {n} chains x 80 steps (+- 2 SE)")
    ax.plot(u, 1 / (1 - u / 2), "-", label="1 / (1 - h/2)")
    ax.axhline(1.0, color="k", lw=0.8, ls=":", label="target variance 1")
    _finish(fig, ax, path, "step size h", "stationary variance", legend_size=8)


def fig_reverse_sde(path):
    """Reverse-SDE paths (VE SDE, exact perturbed score of a 1-D mixture) and the final histogram."""
    one_d = GaussianMixture([0.2, 0.8], [[-4.0], [4.0]], [0.5, 0.5])
    ve = sde.VESDE(0.01, 12.0)
    std = lambda t: float(np.sqrt(ve.sigma(t) ** 2 - ve.sigma_min ** 2))
    score = lambda x, t: one_d.perturbed(max(std(t), 1e-3)).score(x)
    rng = np.random.default_rng(4)
    x = ve.prior_sample(500, 1, rng)
    ts = np.linspace(1.0, 1e-3, 401)
    path_x = [x[:, 0]]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        dt = t0 - t1
        x = x - ve.reverse_drift(score, x, t0) * dt + ve.diffusion(t0) * np.sqrt(dt) * rng.standard_normal(x.shape)
        path_x.append(x[:, 0])
    paths = np.array(path_x)  # (steps + 1, n)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [3, 1]})
    ax[0].plot(ts, paths[:, :40], lw=0.5)
    ax[0].set_xlim(1, 0)
    ax[0].set_xlabel("t (from the prior at t = 1 to the data at t = 0)")
    ax[0].set_title("reverse-SDE paths")
    ax[1].hist(paths[-1], bins=40, orientation="horizontal", density=True, color="tab:green")
    ax[1].set_title(f"end points: {np.mean(paths[-1] > 0):.0%} in the\nright mode (truth 80%)", fontsize=9)
    ax[0].set_ylim(-12, 12)
    ax[1].set_ylim(-12, 12)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def fig_first_model(path):
    """The first-model page, run as written: the data, the model's samples, the exact-score
    sampler's, and the training loss."""
    import execute  # docs/tools

    ns = execute.page_namespace(pathlib.Path(__file__).resolve().parents[1] / "first_model.md")
    fig, ax = plt.subplots(2, 2, figsize=(8, 7.4))  # 2 x 2: readable at the page's width
    ax = ax.ravel()
    panels = (("training data", ns["data"][:2000]), ("first model: annealed Langevin", ns["samples"]),
              ("same sampler, exact score", ns["oracle"]))
    for a, (title, y) in zip(ax[:3], panels):
        plots.samples_over_density(a, y, ns["toy"].log_prob, lim=5.0)
        a.set_title(title)
    loss = np.asarray(ns["hist"]["loss"])
    k = 100
    ax[3].plot(np.arange(loss.size), loss, lw=0.3, color="0.7", label="per step")
    ax[3].plot(np.arange(k - 1, loss.size), np.convolve(loss, np.ones(k) / k, mode="valid"), color="tab:blue",
               label=f"mean of {k} steps")
    ax[3].set_title("training loss (NCSN, levels sampled)")
    _finish(fig, ax[3], path, "step", "loss", legend_size=9)


def fig_sigma_star(path):
    """Q2.1: the error of a DSM fit against sigma for three n, closed form and measured, sigma*(n)."""
    import execute  # docs/tools

    ns = execute.page_namespace(pathlib.Path(__file__).resolve().parents[1] / "08_open_questions.md",
                                containing="def dsm_fit")
    rng = np.random.default_rng(7)
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    u = np.geomspace(0.03, 1.0, 200)
    for n, color in ((10**3, "tab:blue"), (10**4, "tab:orange"), (10**5, "tab:green")):
        ax.loglog(u, [ns["bias2"](s) + ns["V"](s) / n for s in u], "-", color=color, lw=1.2)
        pts = np.geomspace(0.04, 0.8, 7)
        meas = [ns["measured_error"](n, s, max(10, 10**6 // n), rng) for s in pts]
        ax.errorbar(pts, [m for m, _ in meas], yerr=[2 * e for _, e in meas], fmt="o", ms=4, capsize=2, color=color,
                    label=f"n = {n:.0e}: fits (+- 2 SE), closed form")
        s_star = ns["sigma_star"][n]
        ax.axvline(s_star, color=color, ls=":", lw=1)
        ax.annotate(f"sigma* = {s_star:.3f}", (s_star, ns["bias2"](s_star) + ns["V"](s_star) / n), color=color,
                    textcoords="offset points", xytext=(4, -14), fontsize=7)
    ax.set_title("Q2.1: error of the DSM fit, bias^2 + V(sigma)/n; data N(0, S)", fontsize=9)
    _finish(fig, ax, path, "noise level sigma", "E || P_hat - S^-1 ||_F^2", legend_size=7)


def fig_sde_kernels(path):
    """VE and VP transition kernels x_t = a(t) x_0 + s(t) z: closed form against Euler-Maruyama."""
    rng = np.random.default_rng(8)
    ts = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    for a, (name, s) in zip(ax, (("VE SDE (sigma 0.01 -> 10)", sde.VESDE(0.01, 10.0)),
                                 ("VP SDE (beta 0.1 -> 20)", sde.VPSDE(0.1, 20.0)))):
        coef, std = (np.array([float(np.ravel(c)[0]) for c in col]) for col in zip(*[s.marginal_coeffs(t) for t in ts]))
        a.plot(ts, coef, "-", color="tab:blue", label="mean coefficient a(t)")
        a.plot(ts, std, "-", color="tab:red", label="standard deviation s(t)")
        if name.startswith("VP"):
            a.plot(ts, coef**2 + std**2, ":", color="k", label="a^2 + s^2 (preserved)")
        x, dt, sims = np.ones((4000, 1)), 1 / 400, []
        for k in range(400):                      # Euler-Maruyama from x_0 = 1
            t = k * dt
            x = x + s.drift(x, t) * dt + float(s.diffusion(t)) * np.sqrt(dt) * rng.standard_normal(x.shape)
            if (k + 1) % 50 == 0:
                sims.append(((k + 1) * dt, x.mean(), x.std()))
        tt, mm, ss = np.array(sims).T
        a.plot(tt, mm, "o", color="tab:blue", ms=4, label="simulated mean (x_0 = 1)")
        a.plot(tt, ss, "s", color="tab:red", ms=4, label="simulated std")
        a.set_title(name, fontsize=9)
        if name.startswith("VE"):
            a.set_yscale("log")
        _finish(fig, a, path, "t", "", legend_size=7)


def _real_digits():
    """(n, 64) real digits in [0, 1]: refscore.datasets.digits() if present, else scikit-learn."""
    from refscore import datasets

    if hasattr(datasets, "digits"):
        d = datasets.digits()
        return np.asarray(d[0] if isinstance(d, tuple) else getattr(d, "train", d))[:, :64], "refscore.datasets.digits()"
    from sklearn.datasets import load_digits  # the `data` extra

    return load_digits().data / 16.0, "sklearn.datasets.load_digits()"


def fig_digits(path):
    """Real 8x8 digits, and the tour's NCSN samples beside them when a tour has been run."""
    try:
        real, source = _real_digits()
    except ImportError:
        fig, ax = plt.subplots(figsize=(5, 1.6))
        ax.text(0.5, 0.5, "digits unavailable in this build:\ninstall the `data` extra (scikit-learn)",
                ha="center", va="center")
        ax.axis("off")
        fig.savefig(path, dpi=DPI)
        return
    tour = pathlib.Path(__file__).resolve().parents[2] / "tour-output" / "digits_samples.npy"
    panels = [("real digits: " + source, real[:32])]
    if tour.exists():
        panels.append(("NCSN samples (tour-output/digits_samples.npy)", np.load(tour)[:32]))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), squeeze=False)
    for ax, (title, imgs) in zip(axes[:, 0], panels):
        tour_plots.image_grid(ax, imgs, side=8, ncols=16, title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


FIGURES = {name[4:]: f for name, f in sorted({**vars(intuition_figures), **vars(diffusion_figures),
                                              **globals()}.items()) if name.startswith("fig_")}


def build(out_dir, force=False):
    """Draw every figure whose ``out_dir/<name>.png`` is missing or older than this file."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = max(pathlib.Path(f).stat().st_mtime
                for f in (__file__, intuition_figures.__file__, diffusion_figures.__file__))
    for name, draw in FIGURES.items():
        target = out_dir / f"{name}.png"
        if force or not target.exists() or target.stat().st_mtime < stamp:
            draw(target)
            plt.close("all")
    return sorted(out_dir.glob("*.png"))


if __name__ == "__main__":
    build(pathlib.Path(__file__).resolve().parents[1] / "figures", force="--force" in sys.argv)
