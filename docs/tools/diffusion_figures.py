"""The book's figures on samplers and networks of the diffusion half, drawn at docs build time
(make_figures collects every ``fig_<name>`` here with its own).

- ddim_paths: DDPM's ancestral chain (1000 steps) against DDIM with eta = 0 (20 steps) on a 1-D
  mixture with the exact noise prediction: stochastic paths and the deterministic
  probability-flow paths, both ending on the data law;
- guidance: classifier-free guidance on chapter 7's two-class mixture for w = 0, 1, 4: the tilted
  density p(x) p(c|x)^(1+w) against the guided probability-flow samples (the page's own code);
- unet: the architecture of refscore.models.ConvScoreNet with the shapes of the MNIST run.
"""
from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from refscore import diffusion, plots  # noqa: E402
from refscore.energies import GaussianMixture  # noqa: E402

DPI = 90
DOCS = pathlib.Path(__file__).resolve().parents[1]


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def fig_ddim_paths(path):
    """DDPM ancestral paths (T = 1000) and DDIM eta = 0 paths (20 steps), exact noise prediction."""
    data = GaussianMixture([0.3, 0.7], [[-2.0], [2.0]], [0.25, 0.25])
    betas = np.linspace(1e-4, 0.02, 1000)
    abar = diffusion.alphas_cumprod(betas)
    eps = lambda x, t: -np.sqrt(1 - abar[t]) * data.diffused(1 - abar[t]).score(x)
    rng = np.random.default_rng(9)
    n = 2000
    x = rng.standard_normal((n, 1))
    ddpm = [x]
    for t in range(999, -1, -1):
        tt = np.full(n, t)
        x = diffusion.ancestral_step(x, tt, eps(x, t), rng.standard_normal(x.shape), betas)
        ddpm.append(x)
    steps = np.linspace(999, 0, 21).round().astype(int)  # 20 DDIM steps, the last to t = -1
    y, ddim = ddpm[0], [ddpm[0]]
    for t, tp in zip(steps[:-1], list(steps[1:-1]) + [-1]):
        a, ap = abar[t], (abar[tp] if tp >= 0 else 1.0)
        e = eps(y, t)
        y = np.sqrt(ap) * (y - np.sqrt(1 - a) * e) / np.sqrt(a) + np.sqrt(1 - ap) * e
        ddim.append(y)
    fig, ax = plt.subplots(1, 3, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 3, 1.3]}, sharey=True)
    ax[0].plot(np.arange(1000, -1, -1), np.stack(ddpm)[:, :30, 0], lw=0.5)
    ax[0].set_title("DDPM ancestral (Alg. 2): 1000 steps", fontsize=10)
    ddim_t = np.r_[1000, steps[1:-1] + 1, 0]
    ax[1].plot(ddim_t, np.stack(ddim)[:, :30, 0], "-", lw=0.7, marker=".", ms=2)
    ax[1].set_title("DDIM, eta = 0: 20 Euler steps of the PF-ODE", fontsize=10)
    for a in ax[:2]:
        a.set_xlim(1000, 0)
        a.set_xlabel("step t (noise at t = 1000, data at t = 0)")
    u = np.linspace(-4, 4, 300)[:, None]
    ax[2].plot(np.exp(data.log_prob(u)), u[:, 0], "k-", lw=1, label="data law")
    ax[2].hist(ddpm[-1][:, 0], bins=50, density=True, orientation="horizontal", alpha=0.5, label="DDPM")
    ax[2].hist(ddim[-1][:, 0], bins=50, density=True, orientation="horizontal", alpha=0.5, label="DDIM")
    ax[2].set_title(f"end points, n = {n}", fontsize=10)
    ax[2].legend(fontsize=8, loc="lower right")
    ax[0].set_ylim(-4, 4)
    ax[0].set_ylabel("x_t")
    _save(fig, path)


def fig_guidance(path):
    """The tilted density for w = 0, 1, 4 and the chapter's guided probability-flow samples."""
    import execute  # docs/tools

    ns = execute.page_namespace(DOCS / "07_sde.md", containing="def guided_score")
    rng = np.random.default_rng(10)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.9), sharey=True)
    box = (-5.0, 7.0, -5.0, 5.0)
    X, Y, grid = plots.grid_points((-6.0, 10.0, -8.0, 8.0), 300)
    for ax, w in zip(axes, (0.0, 1.0, 4.0)):
        y = ns["pf_ode_samples"](w, 1000, rng)
        lp = ns["tilted_log_density"](grid, w)
        p = np.exp(lp - lp.max())
        tilted_mean = float(p @ grid[:, 0] / p.sum())
        plots.samples_over_density(ax, ns["joint"].sample(300, rng), lim=box, size=2, color="0.6",
                                   label="p(x), both classes")
        dots = plots.samples_over_density(ax, y[:400], lim=box, size=2, color="tab:red",
                                          label="guided PF-ODE")
        dots.set_alpha(0.6)
        plots.density_contours(ax, lambda x: ns["tilted_log_density"](x, w), lim=box, levels=7,
                               filled=False, cmap="viridis")
        ax.axvline(float(y[:, 0].mean()), color="tab:red", ls="--", lw=1.2, label="mean x1, guided")
        ax.axvline(tilted_mean, color="k", ls=":", lw=1.2, label="mean x1, tilted law")
        ax.set_title(f"w = {w:g}: mean x1 {y[:, 0].mean():.2f} (guided),\n{tilted_mean:.2f} (tilted law)",
                     fontsize=10)
        ax.set_xlabel("x1 (class 0 left, class 1 right)")
    axes[0].set_ylabel("x2")
    axes[0].legend(fontsize=8, loc="lower left", markerscale=2.5)
    fig.suptitle("contours: p(x) p(c=1 | x)^(1+w), normalised; red: samples of the guided score",
                 fontsize=10)
    _save(fig, path)


# (label, x, y) of the boxes of ConvScoreNet(side=28, channels=16), the MNIST run's network: the
# encoder runs down the left column, the decoder up the right one, the preconditioning outside
_UNET = {
    "x": ("x (noisy digit)\n28x28x1", 0.0, 0.0), "cin": ("u = c_in·(x − μ)\n28x28x1", 0.0, -1.4),
    "e1": ("e1a, e1b: 2 conv 3x3\n28x28x16", 3.4, -1.4), "e2": ("e2a, e2b: 2 conv 3x3\n14x14x32", 3.4, -2.8),
    "m_a": ("m_a: conv 3x3\n7x7x32", 3.4, -4.2), "g": ("residual dense layer, 128\nunits, across all 7x7x32", 5.5, -5.5),
    "m_b": ("m_b: conv 3x3\n7x7x32", 7.6, -4.2), "d2": ("d2: conv 3x3 of [up, skip]\n14x14x(32+32) → 32", 7.6, -2.8),
    "d1": ("d1: conv 3x3 of [up, skip]\n28x28x(32+16) → 16", 7.6, -1.4),
    "out": ("out: conv 3x3\nF(u, log σ): 28x28x1", 11.0, -1.4),
    "D": ("D = μ + c_skip·(x − μ)\n+ c_out·F   (EDM eq. 7)", 11.0, 0.0),
    "s": ("s = (D − x) / σ²\n(Tweedie)", 11.0, 1.4),
    "emb": ("σ → Fourier features of\nlog σ → dense → e (64)", 5.5, 1.4),
}
_EDGES = [("x", "cin", "k"), ("cin", "e1", "k"), ("e1", "e2", "k"), ("e2", "m_a", "k"), ("m_a", "g", "k"),
          ("g", "m_b", "k"), ("m_b", "d2", "k"), ("d2", "d1", "k"), ("d1", "out", "k"), ("out", "D", "k"),
          ("D", "s", "k"), ("x", "D", "tab:purple"), ("e1", "d1", "tab:green"), ("e2", "d2", "tab:green")]
BOX = (2.9, 0.95)  # box width and height, in the units of the coordinates above


def _box(ax, xy, text, color):
    w, h = BOX
    ax.add_patch(FancyBboxPatch((xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle="round,pad=0.04",
                                fc=color, ec="0.3", lw=0.8, zorder=2))
    ax.text(xy[0], xy[1], text, ha="center", va="center", fontsize=10, zorder=3)


def _edge_point(p, q):
    """Where the segment from the centre p towards q leaves p's box."""
    (x0, y0), (x1, y1) = p, q
    dx, dy = x1 - x0, y1 - y0
    t = min(BOX[0] / 2 / abs(dx) if dx else np.inf, BOX[1] / 2 / abs(dy) if dy else np.inf) + 0.02
    return x0 + t * dx, y0 + t * dy


def fig_unet(path):
    """ConvScoreNet as boxes and arrows, with the feature shapes of the MNIST run."""
    pos = {k: (x, y) for k, (_, x, y) in _UNET.items()}
    colors = {"x": "0.92", "cin": "#fde9c9", "D": "#fde9c9", "s": "#fde9c9", "emb": "#e6d8f2", "g": "#f6d5d5",
              "out": "#d8e8f6"}
    fig, ax = plt.subplots(figsize=(10, 6.2))
    for a, b, color in _EDGES:
        ax.add_patch(FancyArrowPatch(_edge_point(pos[a], pos[b]), _edge_point(pos[b], pos[a]),
                                     arrowstyle="-|>", mutation_scale=14, color=color, zorder=1,
                                     lw=1.0 if color == "k" else 1.6, shrinkA=0, shrinkB=0))
    for k, (text, _, _) in _UNET.items():
        _box(ax, pos[k], text, colors.get(k, "#d8f0dc" if k[0] in "em" else "#d8e8f6"))
    notes = ((5.5, 0.55, "e enters every conv block as act((k∗h)(1 + eS) + eE) (FiLM)", "tab:purple"),
             (5.5, 0.17, "the preconditioning's skip carries x to D", "tab:purple"),
             (5.5, -1.2, "skip", "tab:green"), (5.5, -2.6, "skip", "tab:green"),
             (0.0, -5.2, "skips (green): channels\nconcatenated, not added", "tab:green"),
             (0.0, -3.5, "down: 2x2 mean pool", "k"), (11.0, -3.5, "up: nearest 2x copy", "k"))
    for x, y, text, color in notes:
        ax.text(x, y, text, ha="center", va="center", fontsize=10, color=color)
    ax.set_xlim(-1.6, 12.6)
    ax.set_ylim(-6.1, 2.0)
    ax.axis("off")
    ax.set_title("ConvScoreNet(side=28, channels=16, global_width=128, film=True): the MNIST run's network",
                 fontsize=11)
    _save(fig, path)
