r"""Pictures of the objects of the lecture, on a Matplotlib ``ax`` you give: a 2-D density as
contours, its score field as arrows, samples over the density they should follow, and a strip of
images along a chain (a digit being noised, or a reverse chain with its denoised estimates).

Every helper takes host data or backend arrays (brought to the host here), or a callable on host
``(m, 2)`` points; it draws on ``ax``, returns what it drew (the Matplotlib artist, or the
evaluated grid) and never saves, shows or closes anything. Matplotlib is imported by the caller
who makes ``ax``; this module needs only NumPy, so importing refscore never imports pyplot.

- :func:`grid_points` — the square grid every 2-D helper evaluates on,
- :func:`density_contours` — :math:`p(x)\propto e^{-E(x)}` (or :math:`\log p`) as contours,
- :func:`score_quiver` — :math:`s(x)=\nabla_x\log p(x)` as arrows,
- :func:`samples_over_density` — samples as dots over the density's contours,
- :func:`chain_strip` — rows of small images side by side, each column labelled.

A classroom picture of a mixture and its score:

>>> import matplotlib.pyplot as plt
>>> from refscore import plots
>>> from refscore.energies import GaussianMixture
>>> gmm = GaussianMixture([0.3, 0.7], [[-1.5, 0.0], [1.5, 0.5]], [0.5, 0.8])
>>> fig, ax = plt.subplots()
>>> X, Y, P = plots.density_contours(ax, gmm.log_prob, lim=3.5)
>>> arrows = plots.score_quiver(ax, gmm.score, lim=3.5)
"""
from __future__ import annotations

import math

import numpy as onp

from . import backends
from ._validation import check_positive, check_positive_int

__all__ = ["grid_points", "density_contours", "score_quiver", "samples_over_density", "chain_strip"]


def _host(a, name):
    """A host float array from a NumPy array, a list, or an array of any refscore backend."""
    if not isinstance(a, onp.ndarray):
        try:
            a = backends.of(a).to_numpy(a)
        except (TypeError, ValueError):
            a = onp.asarray(a)
    a = onp.asarray(a, dtype=float)
    if not onp.all(onp.isfinite(a)):
        raise ValueError(f"{name} has NaN or inf entries; a picture of them would be empty")
    return a


def _points_2d(points, name):
    x = _host(points, name)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, 2) array of points in the plane, got shape {x.shape}")
    return x


def _box(lim):
    """``(x0, x1, y0, y1)`` from a half-width ``lim`` or an explicit box."""
    if isinstance(lim, (int, float)) and not isinstance(lim, bool):
        h = check_positive(lim, "lim")
        return -h, h, -h, h
    box = tuple(float(v) for v in lim)
    if len(box) != 4 or not (box[0] < box[1] and box[2] < box[3]):
        raise ValueError(f"lim must be a half-width > 0 or a box (x0, x1, y0, y1) with x0 < x1 and "
                         f"y0 < y1, got {lim!r}")
    return box


def grid_points(lim=3.0, m=100):
    r"""An ``m × m`` grid on the square :math:`[-\mathrm{lim},\mathrm{lim}]^2` (or on the box
    ``lim = (x0, x1, y0, y1)``), as the arrays a contour plot wants and as points.

    .. math:: \{(u_i, v_j)\}_{i,j=1}^m,\qquad u_i = x_0 + (x_1-x_0)\frac{i-1}{m-1}

    Returns ``X, Y`` of shape ``(m, m)`` and the points ``(m², 2)`` (rows, refscore's ``(n, d)``).
    """
    m = check_positive_int(m, "m", minimum=2)
    x0, x1, y0, y1 = _box(lim)
    X, Y = onp.meshgrid(onp.linspace(x0, x1, m), onp.linspace(y0, y1, m))
    return X, Y, onp.stack([X.ravel(), Y.ravel()], axis=1)


def _evaluate(fn, pts, width, name):
    out = _host(fn(pts), f"what {name} returned")
    want = (len(pts),) if width == 1 else (len(pts), width)
    if out.shape != want:
        raise ValueError(f"{name} must map (m², 2) points to shape {want}, got {out.shape}")
    return out


def density_contours(ax, log_prob_fn, lim=3.0, m=120, levels=20, filled=True, log=False,
                     floor=-30.0, cmap="Blues"):
    r"""Contours of a 2-D density known up to its normaliser, from its log-density.

    .. math:: \tilde p(x) = \exp\big(\log\tilde p(x) - \max_{\text{grid}}\log\tilde p\big)
              \qquad\text{or, with } \texttt{log=True},\qquad
              \max\big(\log\tilde p(x) - \max_{\text{grid}}\log\tilde p,\ \text{floor}\big)

    :math:`Z` drops out (seed ``001_…``: :math:`\nabla_x\log Z = 0`; here the shift by the maximum
    does the same for the picture). ``log=True`` shows where the density is tiny but not zero —
    the empty regions of seed ``000_…``'s covariate shift — clipped below at ``floor`` nats.

    Parameters
    ----------
    ax : a Matplotlib Axes
    log_prob_fn : callable, host ``(m², 2)`` points to ``(m²,)`` (e.g. ``energy.log_prob`` or
        ``energy.unnormalized_log_prob``)
    lim : half-width of the square, or a box ``(x0, x1, y0, y1)``
    m : grid points per axis
    levels : number of contour levels
    filled : filled contours (``contourf``) or lines (``contour``)
    log : draw the shifted log-density instead of the density
    floor : lowest log value shown when ``log=True``
    cmap : Matplotlib colour map

    Returns
    -------
    (X, Y, V) : the grid and the values drawn, each ``(m, m)``
    """
    levels = check_positive_int(levels, "levels", minimum=2)
    X, Y, pts = grid_points(lim, m)
    lp = _evaluate(log_prob_fn, pts, 1, "log_prob_fn").reshape(X.shape)
    lp = lp - lp.max()
    V = onp.maximum(lp, float(floor)) if log else onp.exp(lp)
    draw = ax.contourf if filled else ax.contour
    draw(X, Y, V, levels=onp.linspace(V.min(), V.max(), levels), cmap=cmap)
    ax.set_xlim(X.min(), X.max())
    ax.set_ylim(Y.min(), Y.max())
    ax.set_aspect("equal")
    return X, Y, V


def score_quiver(ax, score_fn, lim=3.0, m=17, power=0.5, color="C3", **quiver_kw):
    r"""The score field as arrows on an ``m × m`` grid.

    .. math:: s(x) = \nabla_x\log p(x) = -\nabla_x E(x),\qquad
              \text{arrow}(x) = \frac{s(x)}{\|s(x)\|^{1-\text{power}}}

    (seed ``001_…``, "score function"; refscore's sign, :math:`s=-\nabla E`). An arrow points up
    the density; its length grows like :math:`\|s\|^{\text{power}}` — ``power=0.5`` (the
    default) keeps the large scores far from the data from swamping the picture, ``power=1``
    draws the field as it is, ``power=0`` only its direction.

    Parameters
    ----------
    ax : a Matplotlib Axes
    score_fn : callable, host ``(m², 2)`` points to ``(m², 2)`` scores
    lim : half-width of the square, or a box ``(x0, x1, y0, y1)``
    m : arrows per axis
    power : exponent of the arrows' length, in [0, 1]
    color : arrow colour; ``quiver_kw`` go to ``ax.quiver``

    Returns
    -------
    the Matplotlib ``Quiver``
    """
    power = float(power)
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"power must lie in [0, 1] (the arrows' length is |s|^power), got {power!r}")
    _, _, pts = grid_points(lim, m)
    s = _evaluate(score_fn, pts, 2, "score_fn")
    norm = onp.linalg.norm(s, axis=1, keepdims=True)
    arrows = s * onp.where(norm > 0, norm, 1.0) ** (power - 1.0)
    q = ax.quiver(pts[:, 0], pts[:, 1], arrows[:, 0], arrows[:, 1], color=color, **quiver_kw)
    ax.set_aspect("equal")
    return q


def samples_over_density(ax, points, log_prob_fn=None, lim=None, m=120, size=3.0, color="C3",
                         label=None, cmap="Blues"):
    r"""Samples as dots over the contours of the density they should follow.

    .. math:: x^{(i)}\sim q\quad\text{drawn over}\quad\tilde p(x)\propto e^{-E(x)}

    A sampler is right when the dots follow the shading (seed ``001_…``, Langevin dynamics "from
    a random point"). Without ``log_prob_fn`` only the dots are drawn. ``lim`` defaults to the
    smallest square about the origin that holds every point, with a 10% margin.

    Parameters
    ----------
    ax : a Matplotlib Axes
    points : ``(n, 2)`` samples, host or backend
    log_prob_fn : callable on host ``(m², 2)`` points, or None
    lim, m, cmap : as in :func:`density_contours`
    size, color, label : the dots' area (points²), colour and legend label

    Returns
    -------
    the Matplotlib ``PathCollection`` of the dots
    """
    x = _points_2d(points, "points")
    if lim is None:
        lim = 1.1 * float(onp.abs(x).max()) or 1.0
    if log_prob_fn is not None:
        density_contours(ax, log_prob_fn, lim=lim, m=m, cmap=cmap)
    dots = ax.scatter(x[:, 0], x[:, 1], s=size, c=color, label=label, zorder=3)
    x0, x1, y0, y1 = _box(lim)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    return dots


def _strip_rows(images, side):
    """``(rows, k, side, side)`` host images from one ``(k, d)`` row or a list of them."""
    rows = [images] if getattr(images, "ndim", None) == 2 else list(images)
    arrays = [_host(r, "images") for r in rows]
    if not arrays or any(a.ndim != 2 or a.shape != arrays[0].shape or a.shape[0] == 0 for a in arrays):
        raise ValueError("images must be a non-empty (k, d) array of flattened images, or a list of such "
                         f"arrays of one shape, got shapes {[a.shape for a in arrays]}")
    d = arrays[0].shape[1]
    side = int(round(math.sqrt(d))) if side is None else check_positive_int(side, "side")
    if side * side != d:
        raise ValueError(f"images have d = {d} pixels, which is not side² for side = {side}")
    return onp.stack(arrays).reshape(len(arrays), -1, side, side), side


def chain_strip(ax, images, side=None, labels=None, row_labels=None, vmin=0.0, vmax=1.0, cmap="gray_r"):
    r"""Small images side by side, one row per sequence, on one ``ax``: a digit along the forward
    (noising) chain, or a reverse chain's :math:`x_t` above its denoised :math:`\hat x_0`.

    .. math:: \text{tile}_{r,j} = \text{clip}\big(\text{images}_r[j],\ \text{vmin},\ \text{vmax}\big),
              \qquad\text{e.g. } x_{\sigma_j} = x + \sigma_j z\ \text{(seed 001\_…, "noise to the rescue")}

    Parameters
    ----------
    ax : a Matplotlib Axes
    images : ``(k, d)`` flattened images (one row), or a list of ``(k, d)`` arrays (one row each)
    side : image side, default :math:`\sqrt d`
    labels : ``k`` column labels (e.g. ``"σ = 0.5"``), written under the bottom row
    row_labels : one label per row, written on the left
    vmin, vmax : the grey scale's range; pixels outside it are clipped (noisy images leave it)
    cmap : colour map, ink dark by default

    Returns
    -------
    the canvas drawn, ``(rows·(side+1)+1, k·(side+1)+1)`` (a white pixel between tiles)
    """
    tiles, side = _strip_rows(images, side)
    n_rows, k = tiles.shape[:2]
    if labels is not None and len(labels) != k:
        raise ValueError(f"labels must give one label per column ({k}), got {len(labels)}")
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(f"row_labels must give one label per row ({n_rows}), got {len(row_labels)}")
    step = side + 1
    canvas = onp.full((n_rows * step + 1, k * step + 1), float(vmin))
    for r in range(n_rows):
        for j in range(k):
            canvas[1 + r * step:r * step + step, 1 + j * step:j * step + step] = \
                onp.clip(tiles[r, j], vmin, vmax)
    ax.imshow(canvas, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    centers = [1 + j * step + (side - 1) / 2 for j in range(k)]
    ax.set_xticks(centers if labels is not None else [])
    if labels is not None:
        ax.set_xticklabels([str(s) for s in labels])
    ax.set_yticks([1 + r * step + (side - 1) / 2 for r in range(n_rows)] if row_labels is not None else [])
    if row_labels is not None:
        ax.set_yticklabels([str(s) for s in row_labels])
    ax.tick_params(length=0)
    return canvas
