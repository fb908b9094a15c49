r"""Plot helpers shared by the tour and the docs build: one picture idea per function.

Every helper takes host data (NumPy arrays, or callables on NumPy ``(m, 2)`` points) and either
draws on a Matplotlib ``ax`` it is given or returns a new ``Figure``; none of them saves or
closes anything, so the caller decides where the picture goes. A callable may return an array of
any refscore backend: results are brought to the host here.

- :func:`density_grid`, :func:`draw_density` — a 2-D density :math:`p(x)\propto e^{-E(x)}` on a grid,
- :func:`score_field` — arrows of :math:`s(x)=\nabla_x\log p(x)` over data or a density,
- :func:`scatter_over_density` — samples over the density they should follow,
- :func:`loss_panel` — a training curve with its running mean,
- :func:`image_grid`, :func:`samples_beside_real` — a mosaic of small images (e.g. 8×8 digits),
- :func:`sigma_ladder` — the perturbed densities :math:`p_\sigma = p * \mathcal N(0,\sigma^2 I)`
  of a noise schedule (seed 000_…: "multiple noise scales").

The grid and the sample dots are :mod:`refscore.plots`'s (the public helpers
the book draws with); this module adds the tour's panel layouts around them.
"""
from __future__ import annotations

import math

import numpy as onp

from .. import backends
from .. import plots as core_plots

__all__ = ["grid", "density_grid", "draw_density", "score_field", "scatter_over_density", "loss_panel",
           "image_grid", "samples_beside_real", "sigma_ladder"]


def _host(a):
    return onp.asarray(backends.of(a).to_numpy(a)) if not isinstance(a, onp.ndarray) else a


def _figure(ncols, width=4.2, height=4.0):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, ax[0]


def grid(lim, m):
    r"""A square grid on :math:`[-\mathrm{lim},\mathrm{lim}]^2` with ``m`` points per axis.

    .. math:: \{(u_i, u_j)\}_{i,j=1}^m,\quad u_i = -\mathrm{lim} + 2\,\mathrm{lim}\,(i-1)/(m-1)

    Returns ``X, Y`` of shape ``(m, m)`` (for contour plots) and the points ``(m², 2)``:
    :func:`refscore.plots.grid_points` on the square.
    """
    return core_plots.grid_points(lim, m)


def density_grid(log_prob_fn, lim=3.2, m=120):
    r"""A 2-D density on a grid, from its (unnormalised) log-density, shifted by its maximum:

    .. math:: \tilde p(x) = \exp\big(\log p(x) - \max_{\text{grid}}\log p\big)

    (Z drops out: seed 002_…, an EBM is known up to its normaliser). ``log_prob_fn`` takes host
    ``(m², 2)`` points and returns ``(m²,)``. Returns ``(X, Y, P)``, each ``(m, m)``.
    """
    X, Y, pts = grid(lim, m)
    lp = _host(log_prob_fn(pts)).reshape(X.shape)
    return X, Y, onp.exp(lp - lp.max())


def draw_density(ax, density, cmap="Blues", levels=20):
    r"""Filled contours of a density from :func:`density_grid` (``(X, Y, P)``) on ``ax``, square
    axes limited to the grid.

    .. math:: \{x : \tilde p(x) = c_k\},\ k = 1..\text{levels}
    """
    X, Y, P = density
    ax.contourf(X, Y, P, levels, cmap=cmap)
    ax.set_xlim(X.min(), X.max())
    ax.set_ylim(Y.min(), Y.max())
    ax.set_aspect("equal")


def score_field(ax, score_fn, lim=3.0, m=21, data=None, density=None, title=None):
    r"""Arrows of a 2-D score field on an ``m × m`` grid, over grey data points or a density.

    .. math:: s(x) = \nabla_x\log p(x) = -\nabla_x E(x)

    (seed 001_…, "score"). Arrows are drawn as :math:`s/|s|^{1/2}`, so their length grows like
    :math:`|s|^{1/2}`: far-away arrows do not swamp the picture. ``score_fn`` takes host
    ``(m², 2)`` points and returns ``(m², 2)``.
    """
    _, _, q = grid(lim, m)
    s = _host(score_fn(q))  # (m², 2)
    if density is not None:
        draw_density(ax, density)
    if data is not None:
        d = _host(data)
        ax.scatter(d[:, 0], d[:, 1], s=1, c="0.7")
    scaled = s / (onp.linalg.norm(s, axis=1, keepdims=True) ** 0.5 + 1e-9)
    ax.quiver(q[:, 0], q[:, 1], scaled[:, 0], scaled[:, 1], color="C3")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)


def scatter_over_density(ax, points, density=None, title=None, size=2, color="C3"):
    r"""Samples (host or backend ``(n, 2)``) as dots over a density from :func:`density_grid`.

    .. math:: x^{(i)} \sim q \quad\text{drawn over}\quad \tilde p(x)

    A sampler is right when the dots follow the shading (:func:`refscore.plots.samples_over_density`
    on the density's box).
    """
    box = None
    if density is not None:
        draw_density(ax, density)
        X, Y, _ = density
        box = (float(X.min()), float(X.max()), float(Y.min()), float(Y.max()))
    x = onp.asarray(_host(points), dtype=float)
    x = x[onp.all(onp.isfinite(x), axis=1)]  # a diverged chain is left out, as Matplotlib did
    if len(x):
        core_plots.samples_over_density(ax, x, lim=box, size=size, color=color)
    if title:
        ax.set_title(title)


def loss_panel(ax, losses, title, window=None):
    r"""A training curve: the per-step loss (thin) and its running mean over ``window`` steps
    (thick; default a thirtieth of the run).

    .. math:: \bar\ell_t = \frac1k\sum_{j=0}^{k-1}\ell_{t-j}
    """
    c = onp.asarray(losses, dtype=float)
    k = window or max(len(c) // 30, 1)
    ax.plot(c, lw=0.5, alpha=0.5)
    if len(c) >= k:
        ax.plot(onp.arange(len(c) - k + 1) + k // 2, onp.convolve(c, onp.ones(k) / k, "valid"), lw=2)
    ax.set_title(title)
    ax.set_xlabel("step")


def image_grid(ax, images, side=8, ncols=8, title=None, vmax=1.0):
    r"""A mosaic of small grey images on ``ax`` (one pixel of white between tiles).

    ``images`` is ``(n, side²)`` (rows are flattened images, refscore's ``(n, d)``) with values in
    :math:`[0, \mathrm{vmax}]`; dark is ink, as in scikit-learn's digits.

    .. math:: \text{tile}_{(r,c)} = \text{image}_{r\cdot\text{ncols}+c}
    """
    x = _host(images)
    n = x.shape[0]
    rows = math.ceil(n / ncols)
    canvas = onp.zeros((rows * (side + 1) + 1, ncols * (side + 1) + 1))
    for i in range(n):
        r, c = divmod(i, ncols)
        canvas[1 + r * (side + 1):1 + r * (side + 1) + side, 1 + c * (side + 1):1 + c * (side + 1) + side] = \
            onp.clip(x[i].reshape(side, side), 0.0, vmax)
    ax.imshow(canvas, cmap="gray_r", vmin=0.0, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)


def samples_beside_real(samples, real, side=8, titles=("samples", "real")):
    r"""Two mosaics side by side (see :func:`image_grid`): generated images and real ones.

    .. math:: \{x^{(i)}\}_{\text{model}} \;\big|\; \{x^{(i)}\}_{\text{data}}

    Returns the ``Figure``.
    """
    fig, ax = _figure(2, 5.0, 5.3)
    image_grid(ax[0], samples, side, title=titles[0])
    image_grid(ax[1], real, side, title=titles[1])
    return fig


def sigma_ladder(perturbed_log_prob, sigmas, lim=4.0, m=100, data=None):
    r"""The ladder of perturbed densities of a noise schedule, one panel per σ.

    .. math:: p_\sigma(\tilde x) = \int p(x)\,\mathcal N(\tilde x; x, \sigma^2 I)\,dx

    Large σ fills the space between the modes (where the score is learnt), small σ is close to
    the data (Song & Ermon 2019, §3). ``perturbed_log_prob(sigma)`` returns a log-density
    callable on host ``(m², 2)`` points, e.g. ``lambda s: mixture.perturbed(s).log_prob``.
    Returns the ``Figure``.
    """
    sigmas = [float(s) for s in sigmas]
    fig, ax = _figure(len(sigmas), 3.0, 3.2)
    for a, s in zip(ax, sigmas):
        draw_density(a, density_grid(perturbed_log_prob(s), lim, m), cmap="magma")
        if data is not None:
            d = _host(data)
            a.scatter(d[:, 0], d[:, 1], s=0.5, c="w", alpha=0.4)
        a.set_title(f"σ = {s:.3g}")
        a.set_xticks([])
        a.set_yticks([])
    return fig
