r"""Models: a plain MLP, a neural energy and a noise-conditional score network, parameters as
pytrees (lists/dicts of arrays) initialised from a backend ``rng``; every model saves to and loads
from one ``.npz`` file (arrays + an architecture JSON string, no pickle).

The noise-conditional network follows NCSN (Song & Ermon 2019, §4.2 and the "v2" technique 3 of
Song & Ermon 2020): :math:`s_\theta(x,\sigma) = \mathrm{net}_\theta(c_{in}(\sigma)(x-\mu), \mathrm{emb}(\sigma))/\sigma`,
so the network predicts :math:`-z` and the :math:`1/\sigma` scale of the true score comes for free.
The noise schedule of Song & Ermon (2020) is :func:`ncsnv2_schedule` (from :mod:`refscore.models.schedules`).
"""
from __future__ import annotations

import json
import math
import numbers
import os

import autograd.numpy as anp
from autograd import elementwise_grad
from autograd.tracer import getval

from .. import backends
from .._validation import check_points, check_positive, check_positive_int
from ..diffusion.edm import edm_coefficients
from ..diffusion.parametrisation import per_example
from ..pytree import tree_leaves, tree_unflatten
from .activations import ACTIVATIONS
from .schedules import NCSNv2Schedule, ncsnv2_schedule

__all__ = ["mlp_init", "mlp_apply", "MLP", "NoiseConditionalScoreNet", "Saveable", "check_activation",
           "read_tree", "tree_arrays", "check_widths", "ncsnv2_schedule", "NCSNv2Schedule"]


def check_widths(widths, name="hidden"):
    """Layer widths as a tuple of positive ints; a zero, negative or non-integer width is a
    ``ValueError`` naming it (a zero-width layer would make a constant function)."""
    try:
        out = tuple(widths)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of layer widths, got {widths!r}") from None
    for w in out:
        if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1:
            raise ValueError(f"{name} must hold positive integer widths, got {list(out)!r}")
    return tuple(int(w) for w in out)


def check_activation(name):
    """``name`` if it is one of :data:`refscore.models.activations.ACTIVATIONS` (the fused
    primitives: every derivative order is one elementwise pass), else a ``ValueError``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return name


def mlp_init(sizes, rng, backend=None, dtype="float64"):
    """Parameters of an MLP with layer ``sizes`` as a list of ``{"W", "b"}`` dicts (a pytree);
    weights :math:`\\sim\\mathcal N(0, 1/\\text{fan\\_in})`, biases 0."""
    bk = backends.get(backend) if backend is not None else backends.of_rng(rng)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        W = bk.normal(rng, (fan_in, fan_out), dtype) / math.sqrt(fan_in)
        params.append({"W": W, "b": bk.xp.zeros((fan_out,), dtype=dtype)})
    return params


def mlp_apply(params, h, activation="softplus"):
    r"""Forward pass of :func:`mlp_init`'s MLP: activations between layers, linear output,

    .. math:: h_0 = x,\quad h_{\ell} = \phi(h_{\ell-1}W_\ell + b_\ell),\quad
              f(x) = h_{K-1}W_K + b_K

    (seed 001_…, "Neural net predicts energy of a given state"); :math:`\phi` is ``activation``."""
    act = ACTIVATIONS[activation]
    for layer in params[:-1]:
        h = act(h @ layer["W"] + layer["b"])
    return h @ params[-1]["W"] + params[-1]["b"]


# ----- saving and loading: one .npz of arrays + the architecture as a JSON string -----
_ARCH_KEY = "__architecture__"


def tree_arrays(tree, prefix="params"):
    """``{"params/0/W": array, ...}``: the leaves of a pytree keyed by their path."""
    return {f"{prefix}/{path}": leaf for path, leaf in tree_leaves(tree)}


def read_tree(template, arrays, bk, prefix="params"):
    r"""The pytree shaped like ``template`` with its leaves read from ``arrays`` by path (on ``bk``):
    :math:`\mathrm{read}(t, \mathrm{tree\_arrays}(\theta)) = \theta` for every θ shaped like t."""
    paths = [f"{prefix}/{path}" for path, _ in tree_leaves(template)]
    missing = [p for p in paths if p not in arrays]
    if missing:
        raise ValueError(f"the saved file has no array {missing[0]!r}; it was written by another architecture")
    return tree_unflatten(template, [bk.asarray(arrays[p]) for p in paths])


class Saveable:
    r"""``save(path)`` / ``load(path)`` for a model with ``params`` (a pytree) and three hooks a
    subclass implements: ``architecture()`` (a JSON-able dict), ``buffers()`` (non-trained arrays
    by name; none by default) and the class method ``from_saved(arch, arrays, bk)``.

    .. math:: \text{load}(\text{save}(\theta)) = \theta \quad\text{bit for bit}
    """

    def buffers(self):
        """Arrays saved beside the parameters (``{"buffers/<name>": array}``); none by default."""
        return {}

    def save(self, path):
        r"""Write the architecture (JSON) and every parameter array to one ``.npz`` file (no pickle).

        .. math:: \text{load}(\text{save}(\theta)) = \theta \quad\text{bit for bit}

        ``path`` gets a ``.npz`` suffix if it has none; missing parent folders are created (as
        ``fit`` does for ``checkpoint_dir``); returns the path written.
        """
        import numpy

        path = os.fspath(path)
        path = path if path.endswith(".npz") else path + ".npz"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        bk = backends.of(*[getval(a) for a in tree_arrays(self.params).values()])
        arrays = {k: bk.to_numpy(getval(v)) for k, v in {**tree_arrays(self.params), **self.buffers()}.items()}
        arch = {"class": type(self).__name__, **self.architecture()}
        numpy.savez(path, **arrays, **{_ARCH_KEY: numpy.array(json.dumps(arch))})
        return path

    @classmethod
    def load(cls, path, backend=None):
        r"""Rebuild a model written by :meth:`save` on ``backend`` (default: ``$REFSCORE_BACKEND``,
        else numpy), with parameters equal bit for bit to the saved ones."""
        import numpy

        with numpy.load(os.fspath(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        arch = json.loads(str(arrays.pop(_ARCH_KEY)))
        saved = arch.pop("class")
        if saved != cls.__name__:
            raise ValueError(f"{path} holds a saved {saved}, not a {cls.__name__}; use {saved}.load")
        bk = backends.get(backend)
        return cls.from_saved(arch, arrays, bk)


class MLP(Saveable):
    r"""A multilayer perceptron :math:`\mathbb R^{d_{in}}\to\mathbb R^{d_{out}}`, smooth activations
    (softplus by default, so second and third derivatives exist for ISM/SSM):

    .. math:: h_0 = x,\quad h_k = \phi(h_{k-1}W_k + b_k),\quad \mathrm{MLP}(x) = h_{K-1}W_K + b_K
    """

    def __init__(self, sizes, rng=None, activation="softplus", dtype="float64", params=None):
        check_activation(activation)
        self.sizes, self.activation = check_widths(sizes, "sizes"), activation
        if params is None and rng is None:
            raise ValueError("MLP needs rng (a backend Generator) to initialise its parameters")
        self.params = mlp_init(self.sizes, rng, dtype=dtype) if params is None else params

    def apply(self, params, x):
        """Forward pass for explicit parameters: (n, d_in) -> (n, d_out)."""
        return mlp_apply(params, x, self.activation)

    def __call__(self, x):
        return self.apply(self.params, x)

    def architecture(self):
        """What :meth:`save` records to rebuild this model (JSON-able)."""
        return {"sizes": list(self.sizes), "activation": self.activation}

    @classmethod
    def from_saved(cls, arch, arrays, bk):
        """The model :meth:`save` wrote, from its architecture and arrays, on backend ``bk``."""
        template = [{"W": 0, "b": 0} for _ in range(len(arch["sizes"]) - 1)]
        return cls(arch["sizes"], activation=arch["activation"], params=read_tree(template, arrays, bk))


class NoiseConditionalScoreNet(Saveable):
    r"""Noise-conditional score network :math:`s_\theta(x,\sigma)` with input preconditioning:

    .. math:: u = \frac{x-\mu}{\sqrt{\sigma^2+\sigma_{data}^2}},\quad
              h_1 = \phi(uW_x + e(\sigma)W_e + b),\quad
              s_\theta(x,\sigma) = \mathrm{MLP}(h_1)/\sigma,\quad
              e(\sigma) = [\sin(\omega_k\log\sigma), \cos(\omega_k\log\sigma)]_{k=1}^F

    The network sees inputs of unit scale at every noise level (:math:`x-\mu` has variance about
    :math:`\sigma_{data}^2+\sigma^2` under :math:`p_\sigma`; the :math:`c_{in}` of Karras et al.
    2022, eq. 7) and predicts :math:`\sigma s\approx -z`, whose scale is one at every level; the
    :math:`1/\sigma` output scale is technique 3 of Song & Ermon (2020). :math:`e` is a Fourier
    embedding of :math:`\log\sigma`; the input layer is a sum, not a concatenation, which reads the
    same and keeps every operation differentiable on every backend.

    Parameters
    ----------
    dim : int
    hidden : tuple of int, widths of the hidden layers
    rng : Generator of the backend that will hold the parameters
    n_freq : int, F
    activation : "softplus" (default), "tanh" or "swish"
    dtype : "float64" (default) or "float32": parameters, buffers and outputs
    data : optional (n, dim) training data: :math:`\mu` is its mean, :math:`\sigma_{data}` its
        root-mean-square per-coordinate standard deviation
    mean, sigma_data : optional explicit :math:`\mu` (dim,) and :math:`\sigma_{data}` (float);
        default 0 and 1 when neither these nor ``data`` are given

    Notes
    -----
    ``sigma`` may be a Python float or an ``(n,)`` array (one level per row, as
    :func:`refscore.losses.ncsn` passes with ``levels="sample"``).
    """

    def __init__(self, dim, hidden=(128, 128), rng=None, n_freq=8, activation="softplus", dtype="float64",
                 data=None, mean=None, sigma_data=None):
        if rng is None:
            raise ValueError("NoiseConditionalScoreNet needs rng (a backend Generator)")
        check_activation(activation)
        self.dim, self.n_freq = check_positive_int(dim, "dim"), check_positive_int(n_freq, "n_freq")
        self.hidden, self.activation, self.dtype = check_widths(hidden), activation, str(dtype)
        bk = backends.of_rng(rng)
        self.mean, self.sigma_data = _data_scale(bk, self.dim, self.dtype, data, mean, sigma_data)
        H, F = self.hidden[0], self.n_freq
        self.freqs = bk.asarray([2.0 ** (k - F // 2) for k in range(F)], dtype=dtype)  # (F,)
        self.params = {
            "in_x": bk.normal(rng, (dim, H), dtype) / math.sqrt(dim),
            "in_s": bk.normal(rng, (2 * F, H), dtype) / math.sqrt(2 * F),
            "b": bk.xp.zeros((H,), dtype=dtype),
            "mlp": mlp_init((*self.hidden, dim), rng, dtype=dtype),
        }

    def _sigma(self, sigma, x):
        """σ as a float, or an (n,) array as a per-example (n, 1) column of ``x``
        (:func:`refscore.diffusion.per_example`)."""
        sv = getval(sigma)
        if isinstance(sv, (int, float)) or getattr(sv, "ndim", None) == 0:
            return float(sv)
        return per_example(sv, x)  # (n, 1)

    def apply(self, params, x, sigma):
        r""":math:`s_\theta(x,\sigma)` for explicit parameters: (n, d) -> (n, d)."""
        sig = self._sigma(sigma, x)  # float or (n, 1)
        _, _, c_in, c_noise = edm_coefficients(sig, self.sigma_data)
        log_s = 4.0 * c_noise  # ln σ
        F = self.n_freq
        ang = anp.reshape(log_s * self.freqs, (-1, F))  # (n or 1, F)
        emb = anp.sin(ang) @ params["in_s"][:F] + anp.cos(ang) @ params["in_s"][F:]  # (n or 1, H)
        act = ACTIVATIONS[self.activation]
        h = act(((x - self.mean) * c_in) @ params["in_x"] + emb + params["b"])  # (n, H)
        out = mlp_apply(params["mlp"], h, self.activation) if len(params["mlp"]) > 0 else h
        return out / sig

    def score_fn(self, params=None):
        """``(x, sigma) -> s_θ(x, σ)`` for ``params`` (default: the current ones); σ a float or an
        ``(n,)`` array of per-example levels, which the attribute ``per_example_sigma`` says."""
        params = self.params if params is None else params

        def score(x, sigma):
            return self.apply(params, x, sigma)

        score.per_example_sigma = True
        return score

    def architecture(self):
        """What :meth:`save` records to rebuild this model (JSON-able)."""
        return {"dim": self.dim, "hidden": list(self.hidden), "n_freq": self.n_freq,
                "activation": self.activation, "dtype": self.dtype, "sigma_data": self.sigma_data}

    def buffers(self):
        """The input preconditioning's mean and the embedding's frequencies."""
        return {"buffers/mean": self.mean, "buffers/freqs": self.freqs}

    @classmethod
    def from_saved(cls, arch, arrays, bk):
        """The model :meth:`save` wrote, from its architecture and arrays, on backend ``bk``."""
        net = cls(arch["dim"], arch["hidden"], rng=bk.rng(0), n_freq=arch["n_freq"], activation=arch["activation"],
                  dtype=arch["dtype"], mean=arrays["buffers/mean"], sigma_data=arch["sigma_data"])
        net.mean, net.freqs = bk.asarray(arrays["buffers/mean"]), bk.asarray(arrays["buffers/freqs"])
        net.params = read_tree(net.params, arrays, bk)
        return net


def _data_scale(bk, dim, dtype, data, mean, sigma_data):
    r""":math:`\mu` (dim,) in ``dtype`` and :math:`\sigma_{data}` (float) from data or as given."""
    if data is not None:
        check_points(data, dim, "data")
        v = getval(data)
        mean = v.mean(axis=0) if mean is None else mean
        sigma_data = float(bk.xp.sqrt(bk.xp.mean(v.var(axis=0)))) if sigma_data is None else sigma_data
    mean = bk.xp.zeros((dim,), dtype=dtype) if mean is None else bk.asarray(mean, dtype=dtype)
    if tuple(mean.shape) != (dim,):
        raise ValueError(f"mean must have shape ({dim},), got {tuple(mean.shape)}")
    return mean, check_positive(1.0 if sigma_data is None else sigma_data, "sigma_data")
