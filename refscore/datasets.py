r"""Data sets: two-dimensional toys drawn with a backend ``rng`` (no global state), and
scikit-learn's 8×8 digits (:func:`digits`, the optional extra ``refscore[data]``).

``make(name, n, rng)`` with name in ``gaussian_mixture`` (8 Gaussians on a circle),
``two_moons``, ``rings``, ``spirals``, ``checkerboard``. Returns ``(n, 2)`` arrays of the rng's
backend, scaled to roughly unit spread (the conventions of Grathwohl et al. 2019, FFJORD toys).
"""
from __future__ import annotations

import math

from . import backends
from ._validation import check_positive, check_positive_int, check_real

__all__ = ["make", "NAMES", "gaussian_mixture_law", "digits", "DIGITS_N_TEST"]

NAMES = ("gaussian_mixture", "two_moons", "rings", "spirals", "checkerboard")
RING_MODES, RING_RADIUS, RING_NOISE = 8, 2.0, 0.15  # the 8 Gaussians of "gaussian_mixture"


def gaussian_mixture_law(noise=None, backend=None):
    r"""The exact law of ``make("gaussian_mixture", ...)``: eight equally weighted Gaussians
    on the circle of radius 2,

    .. math:: p(x) = \frac18\sum_{k=0}^{7}\mathcal N\big(x;\ 2(\cos\tfrac{2\pi k}{8}, \sin\tfrac{2\pi k}{8}),\ s^2 I\big),
              \quad s = 0.15

    (Grathwohl et al. 2019's toy), as a :class:`~refscore.energies.GaussianMixture` with exact
    score, samples and perturbed laws.
    """
    from .energies import GaussianMixture

    s = RING_NOISE if noise is None else check_positive(noise, "noise")
    ang = [2 * math.pi * k / RING_MODES for k in range(RING_MODES)]
    means = [[RING_RADIUS * math.cos(a), RING_RADIUS * math.sin(a)] for a in ang]
    return GaussianMixture([1.0 / RING_MODES] * RING_MODES, means, [s * s] * RING_MODES, backend=backend)


def make(name, n, rng, noise=None):
    r"""Draw ``n`` points of the named toy set (see the module docstring for each law), e.g. the
    8-Gaussian ring

    .. math:: x = 2(\cos\tfrac{2\pi k}{8}, \sin\tfrac{2\pi k}{8}) + s\,z,\quad k\sim U\{0..7\},\ z\sim\mathcal N(0, I)

    (Grathwohl et al. 2019's toys); ``rng`` is a backend Generator, the points ``(n, 2)``.
    ``noise`` (a number >= 0, or None for each set's default) is the standard deviation :math:`s`
    of the Gaussian noise added to every point (the checkerboard has none)."""
    if name not in NAMES:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(NAMES)}")
    n = check_positive_int(n, "n")
    if noise is not None and check_real(noise, "noise") < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise!r}")
    bk = backends.of_rng(rng)
    xp = bk.xp
    u = lambda *s: bk.uniform(rng, s)
    z = lambda *s: bk.normal(rng, s)
    if name == "gaussian_mixture":
        k = xp.floor(u(n) * RING_MODES)
        ang = 2 * math.pi * k / RING_MODES
        centers = xp.stack([xp.cos(ang), xp.sin(ang)], axis=1) * RING_RADIUS
        return centers + (RING_NOISE if noise is None else noise) * z(n, 2)
    if name == "two_moons":
        t = u(n) * math.pi
        upper = u(n) < 0.5
        x = xp.where(upper, xp.cos(t), 1.0 - xp.cos(t))
        y = xp.where(upper, xp.sin(t), 0.5 - xp.sin(t))
        return (xp.stack([x, y], axis=1) - xp.asarray([0.5, 0.25])) * 1.5 + (0.08 if noise is None else noise) * z(n, 2)
    if name == "rings":
        r = 0.75 * (1 + xp.floor(u(n) * 3))
        ang = 2 * math.pi * u(n)
        return xp.stack([r * xp.cos(ang), r * xp.sin(ang)], axis=1) + (0.06 if noise is None else noise) * z(n, 2)
    if name == "spirals":
        t = xp.sqrt(u(n)) * 3 * math.pi
        sign = xp.where(u(n) < 0.5, -1.0, 1.0)
        pts = xp.stack([t * xp.cos(t), t * xp.sin(t)], axis=1) * sign[:, None] / (3 * math.pi) * 2.5
        return pts + (0.08 if noise is None else noise) * z(n, 2)
    # checkerboard on [-2, 2]²: x uniform, y in alternating cells
    x1 = u(n) * 4 - 2
    y0 = u(n) * 2 - 2 + 2 * xp.floor(u(n) * 2)
    x2 = y0 + (xp.floor(x1) % 2)
    return xp.stack([x1, x2], axis=1)


# ----- real data: scikit-learn's bundled 8×8 digits -----
DIGITS_N_TEST = 360  # about a fifth of the 1797 images


def digits(split="train", return_labels=False, backend=None, dtype="float64", seed=0):
    r"""scikit-learn's bundled 8×8 handwritten digits (1797 images of 0–9; UCI optical digits, the
    test set of Alpaydin & Kaynak 1998) as rows of 64 pixels in :math:`[0, 1]`:

    .. math:: x = \texttt{load\_digits().data} / 16 \in [0,1]^{64},\qquad
              \text{pixel } (r, c) \text{ is column } 8r + c

    The split is fixed: a permutation of the 1797 images by ``numpy.random.default_rng(seed)``
    (``seed=0`` by default); its last ``DIGITS_N_TEST = 360`` images are ``"test"``, the first
    1437 ``"train"``. Three pixels are blank in every image (zero variance: use DSM/NCSN, not
    ISM/SSM, on these data).

    Parameters
    ----------
    split : "train", "test" or "all"
    return_labels : also return the (n,) integer labels 0–9
    backend : backend name (default ``$REFSCORE_BACKEND``, else numpy); dtype : "float64" or "float32"

    Returns
    -------
    x : (n, 64) array, or ``(x, labels)`` with ``return_labels=True``

    Needs scikit-learn (``pip install "refscore[data]"``).
    """
    import numpy

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError('refscore.datasets.digits needs scikit-learn: pip install "refscore[data]"') from None
    raw = load_digits()
    x, y = raw.data / 16.0, raw.target.astype(numpy.int64)
    order = numpy.random.default_rng(seed).permutation(x.shape[0])
    cut = x.shape[0] - DIGITS_N_TEST
    idx = {"train": order[:cut], "test": order[cut:], "all": numpy.arange(x.shape[0])}[split]
    bk = backends.get(backend)
    xs = bk.asarray(x[idx], dtype=dtype)
    return (xs, bk.asarray(y[idx])) if return_labels else xs
