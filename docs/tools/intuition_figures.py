"""The book's intuition figures, drawn with refscore.plots at docs build time (see make_figures,
which collects every ``fig_<name>`` here with its own).

- digits_noising: four 8x8 digits noised at eight levels of their NCSNv2 ladder;
- digits_chain, digits_samples: the digits page's annealed-Langevin chain (x above its Tweedie
  estimate x0_hat at eight levels) and its samples beside real test digits;
- lognormal_levels: where EDM's log-normal draw puts the MNIST run's training levels on the
  NCSNv2 ladder, against a uniform draw;
- sde_2d: the VE SDE on the two-mode data in 2-D, forward, reverse and probability flow;
- learned_vs_true: the first model's score against the exact one at three levels, with the
  relative error as a map.
"""
from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from refscore import plots, sde  # noqa: E402
from refscore.energies import GaussianMixture  # noqa: E402

DPI = 90
DOCS = pathlib.Path(__file__).resolve().parents[1]
TWO_MODES = GaussianMixture([0.2, 0.8], [[-4.0, -4.0], [4.0, 4.0]], [1.0, 1.0])


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def _unavailable(path, what):
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.text(0.5, 0.5, f"{what} unavailable in this build:\ninstall the `data` extra (scikit-learn)",
            ha="center", va="center")
    ax.axis("off")
    fig.savefig(path, dpi=DPI)


def fig_digits_noising(path):
    """x + sigma z for four training digits at eight levels of the digits' NCSNv2 ladder."""
    try:
        from refscore import datasets
        from refscore.models import ncsnv2_schedule

        x = datasets.digits("train")
    except ImportError:
        return _unavailable(path, "the digits")
    sigmas = ncsnv2_schedule(x, sigma_min=0.02).sigmas
    shown = [0.0] + [float(s) for s in sigmas[::-1][:: max(1, len(sigmas) // 6)]][:6] + [float(sigmas[0])]
    rng = np.random.default_rng(0)
    rows = [np.stack([d + s * rng.standard_normal(64) for s in shown]) for d in x[[0, 3, 5, 9]]]
    fig, ax = plt.subplots(figsize=(8, 4.6))
    plots.chain_strip(ax, rows, labels=[f"{s:.2g}" for s in shown])
    ax.set_xlabel("noise level sigma (pixels clipped to [0, 1] for display)")
    ax.set_title("x + sigma z: a digit along the noise ladder", fontsize=11)
    _save(fig, path)


def _digits_page():
    import execute  # docs/tools

    return execute.page_namespace(DOCS / "digits.md")


def fig_digits_chain(path):
    """The digits page's chain: x at eight levels, above its Tweedie estimate x0_hat."""
    try:
        ns = _digits_page()
    except ImportError:
        return _unavailable(path, "the digits")
    chain = ns["chain"]
    picks = np.unique(np.round(np.geomspace(1, len(chain), 8)).astype(int) - 1)
    rows, names = [], []
    for k in (0, 1):  # two chains, each as a pair of rows
        rows += [np.stack([chain[i][1][k] for i in picks]), np.stack([chain[i][2][k] for i in picks])]
        names += [f"chain {k + 1}: x", f"chain {k + 1}: x0_hat"]
    fig, ax = plt.subplots(figsize=(8, 4.9))
    plots.chain_strip(ax, rows, labels=[f"{chain[i][0]:.2g}" for i in picks], row_labels=names)
    ax.set_xlabel("noise level sigma_i of the annealed-Langevin chain (left: first level)")
    ax.set_title("x at each level, and x0_hat = x + sigma_i^2 s(x, sigma_i) below it", fontsize=11)
    _save(fig, path)


def fig_digits_samples(path):
    """The digits page's 64 samples beside 64 real test digits."""
    try:
        ns = _digits_page()
    except ImportError:
        return _unavailable(path, "the digits")
    fig, ax = plt.subplots(1, 2, figsize=(8, 4.3))
    for a, (title, imgs) in zip(ax, (("64 samples (annealed Langevin)", ns["samples"][:64]),
                                     ("64 real test digits", ns["x_test"][:64]))):
        plots.chain_strip(a, list(np.asarray(imgs).reshape(8, 8, 64)))
        a.set_title(title, fontsize=11)
    _save(fig, path)


def fig_lognormal_levels(path):
    """The MNIST run's 104 NCSNv2 levels and the share of training draws each gets."""
    from refscore.apps.images_cli import DEFAULTS
    from refscore.models import lognormal_level_index, ncsnv2_schedule

    corner = np.zeros((2, 784))
    sigmas = ncsnv2_schedule(corner, sigma_min=DEFAULTS["sigma_min"], sigma_max=16.004).sigmas  # sigma_1 of MNIST
    sigma_data = 0.3  # about MNIST's per-pixel spread
    idx = lognormal_level_index(sigmas, 200_000, np.random.default_rng(0), np.log(2 * sigma_data), 1.2)
    share = np.bincount(idx, minlength=len(sigmas)) / idx.size
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(sigmas, share, width=sigmas * 0.09, color="tab:blue", label="log-normal, median 2 sigma_data")
    ax.plot(sigmas, np.full(len(sigmas), 1 / len(sigmas)), "-", color="tab:orange", lw=2,
            label=f"uniform over the {len(sigmas)} levels")
    ax.axvspan(2.0, sigmas[0] * 1.1, color="0.85", zorder=0,
               label=f"sigma > 2: denoiser ~ data mean ({np.sum(sigmas > 2)} levels)")
    ax.axvline(2 * sigma_data, color="k", ls=":", lw=1)
    ax.text(2 * sigma_data * 1.08, share.max() * 1.02, "2 sigma_data", fontsize=9, ha="left")
    ax.set_xscale("log")
    above = share[sigmas > 2].sum()
    ax.set_title(f"training levels of the MNIST run (sigma_data ~ 0.3): {above:.0%} of the "
                 f"log-normal draws\nland above sigma = 2, against {np.mean(sigmas > 2):.0%} of "
                 f"uniform draws", fontsize=10)
    ax.set_xlabel(f"noise level sigma of the NCSNv2 ladder (16 down to {sigmas[-1]:g})")
    ax.set_ylabel("share of training draws")
    ax.set_ylim(0, share.max() * 1.12)
    ax.legend(fontsize=8, loc="upper left")
    _save(fig, path)


def _ve_paths(x, ts, rng, move):
    """Positions (len(ts), n, 2) of particles moved by ``move(x, t0, t1)`` along ``ts``."""
    out = [x]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        x = move(x, t0, t1)
        out.append(x)
    return np.stack(out)


def fig_sde_2d(path):
    """The VE SDE on the two-mode data: forward noising, reverse SDE and probability flow ODE."""
    ve = sde.VESDE(0.01, 12.0)
    std = lambda t: max(float(np.sqrt(ve.sigma(t) ** 2 - ve.sigma_min ** 2)), 1e-3)
    score = lambda x, t: TWO_MODES.perturbed(std(float(np.ravel(t)[0]))).score(x)
    rng = np.random.default_rng(5)
    up, down = np.linspace(1e-3, 1.0, 301), np.linspace(1.0, 1e-3, 301)
    g = lambda t: float(np.ravel(ve.diffusion(t))[0])
    fwd = _ve_paths(TWO_MODES.sample(300, rng), up, rng, lambda x, a, b: x + ve.drift(x, a) * (b - a)
                    + g(a) * np.sqrt(b - a) * rng.standard_normal(x.shape))
    start = ve.prior_sample(300, 2, rng)
    rev = _ve_paths(start, down, rng, lambda x, a, b: x - ve.reverse_drift(score, x, a) * (a - b)
                    + g(a) * np.sqrt(a - b) * rng.standard_normal(x.shape))
    ode = _ve_paths(start, down, rng, lambda x, a, b: x - ve.ode_drift(score, x, a) * (a - b))
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.9), sharex=True, sharey=True)
    panels = (("forward SDE: data -> noise", fwd), ("reverse SDE: noise -> data", rev),
              ("probability flow ODE (same marginals)", ode))
    for ax, (title, p) in zip(axes, panels):
        plots.density_contours(ax, TWO_MODES.log_prob, lim=14, levels=8, cmap="Greys")
        for k in range(12):
            ax.plot(p[:, k, 0], p[:, k, 1], lw=0.6, alpha=0.8)
        plots.samples_over_density(ax, p[-1], lim=14, size=3, color="tab:red", label="end points")
        plots.samples_over_density(ax, p[0], lim=14, size=3, color="tab:blue", label="start points")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8, loc="lower right")
    _save(fig, path)


def fig_learned_vs_true(path):
    """The first model's score against the exact one at three levels, and the error map."""
    import execute  # docs/tools

    ns = execute.page_namespace(DOCS / "first_model.md")
    toy, learned = ns["toy"], ns["net"].score_fn()
    rng = np.random.default_rng(6)
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.6), layout="constrained")
    for col, s in enumerate((0.1, 0.5, 2.0)):
        exact = toy.perturbed(s)
        top, bottom = axes[0, col], axes[1, col]
        plots.density_contours(top, exact.log_prob, lim=5.0, levels=10)
        plots.score_quiver(top, exact.score, lim=5.0, m=11, color="k", alpha=0.6)
        plots.score_quiver(top, lambda x: learned(x, s), lim=5.0, m=11, color="tab:red")
        top.set_title(f"sigma = {s}", fontsize=11)
        X, Y, pts = plots.grid_points(5.0, 80)
        typical = np.sqrt(np.mean(np.sum(exact.score(exact.sample(4000, rng)) ** 2, axis=1)))
        err = np.linalg.norm(learned(pts, s) - exact.score(pts), axis=1).reshape(X.shape) / typical
        im = bottom.pcolormesh(X, Y, np.minimum(err, 1.0), cmap="viridis", vmin=0, vmax=1)
        bottom.contour(X, Y, np.exp(exact.log_prob(pts)).reshape(X.shape), 4, colors="w",
                       linewidths=0.6)
        bottom.set_aspect("equal")
    axes[0, 0].set_ylabel("exact score (black), learned (red)")
    axes[1, 0].set_ylabel("|s_learned - s| / rms |s| under p_sigma")
    fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="error (capped at 1)")
    fig.savefig(path, dpi=DPI)
