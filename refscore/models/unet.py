r"""A small convolutional U-Net score network for square images, in NumPy + autograd.

Convolutions are nine shifted matrix products over the zero-padded, flattened feature map,

.. math:: (k * h)[i, j, :] = \sum_{a,b\in\{-1,0,1\}} h[i+a, j+b, :]\;K_{a,b},

one autograd primitive with its own VJP (:mod:`refscore.models.conv`); :func:`im2col3x3` (the
nine neighbours stacked along channels, with its adjoint :func:`col2im3x3`) stays as the
reference. Down-sampling is a 2×2 mean, up-sampling a nearest copy, and the skip connections
concatenate channels (Ronneberger et al. 2015, the U-Net; as used for scores by Song & Ermon
2019 and Ho et al. 2020); the decoder's up-sampling and concatenation are written straight into
the next convolution's padded input. The noise level enters every block as a
per-channel bias from a Fourier embedding of :math:`\log\sigma`.

The output is preconditioned as in Karras et al. (2022, "EDM", eq. 7 and Table 1): the network
:math:`F_\theta` gives a denoiser and the score follows from Tweedie's formula (Efron 2011),

.. math:: D_\theta(x,\sigma) = \mu + c_{skip}(\sigma)(x-\mu) + c_{out}(\sigma)\,F_\theta\big(c_{in}(\sigma)(x-\mu), \log\sigma\big),
          \qquad s_\theta(x,\sigma) = \frac{D_\theta(x,\sigma)-x}{\sigma^2},

.. math:: c_{in} = \frac{1}{\sqrt{\sigma^2+\sigma_d^2}},\quad c_{skip} = \frac{\sigma_d^2}{\sigma^2+\sigma_d^2},\quad
          c_{out} = \frac{\sigma\,\sigma_d}{\sqrt{\sigma^2+\sigma_d^2}}.

Why it matters at d = 784: predicting :math:`-z` and dividing by σ (NCSNv2's technique 3, the
MLP's :class:`~refscore.models.nn.NoiseConditionalScoreNet`) multiplies the network's error by
:math:`1/\sigma` at the small levels, where the score must be most accurate; here the network's
target at small σ is the scaled noise and the skip carries the image, at large σ it is the image.
:meth:`ConvScoreNet.loss_weight` is the λ(σ) of :func:`refscore.losses.ncsn` that makes every
level's loss the unit-weighted :math:`\|F_\theta - F^\star\|^2` (EDM's λ).
"""
from __future__ import annotations

import math

import autograd.numpy as anp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from .. import backends
from .._validation import check_choice, check_finite, check_points, check_positive, check_positive_int
from ..diffusion.edm import edm_denoiser, score_loss_weight
from ..diffusion.parametrisation import per_example, score_from_denoiser
from . import conv
from .conv_block import conv_film_silu
from .activations import ACTIVATIONS
from .nn import Saveable, check_activation, read_tree

__all__ = ["ConvScoreNet", "conv3x3", "im2col3x3", "col2im3x3", "downsample", "upsample"]


@primitive
def im2col3x3(h):
    r"""The nine 3×3 neighbours of every pixel, zero-padded, stacked along channels:
    ``h`` (n, H, W, C) -> (n, H, W, 9C), block :math:`3a+b` holding :math:`h[i+a-1, j+b-1]`.

    .. math:: \mathrm{cols}[i, j, (3a+b)C + c] = h_{pad}[i+a, j+b, c],\qquad a, b\in\{0,1,2\}

    An autograd primitive whose VJP (:func:`col2im3x3`) adds the nine blocks back into place:
    differentiating the slices one by one would scatter with ``ufunc.at``, ten times slower."""
    xp = backends.of(h).xp
    n, H, W, C = h.shape
    hp = xp.zeros((n, H + 2, W + 2, C), dtype=h.dtype)
    hp[:, 1:H + 1, 1:W + 1, :] = h
    return xp.concatenate([hp[:, a:a + H, b:b + W, :] for a in range(3) for b in range(3)], axis=3)


def col2im3x3(g):
    r"""The adjoint of :func:`im2col3x3`: (n, H, W, 9C) -> (n, H, W, C),

    .. math:: \bar h[i, j] = \sum_{a,b} \bar{\mathrm{cols}}[i-a+1, j-b+1, (3a+b)C:(3a+b+1)C]

    (terms outside the image dropped): each block is added at its shift into a padded buffer."""
    xp = backends.of(g).xp
    n, H, W, C9 = g.shape
    C = C9 // 9
    acc = xp.zeros((n, H + 2, W + 2, C), dtype=g.dtype)
    for k in range(9):
        a, b = divmod(k, 3)
        acc[:, a:a + H, b:b + W, :] += g[..., k * C:(k + 1) * C]
    return acc[:, 1:H + 1, 1:W + 1, :]


defvjp(im2col3x3, lambda ans, h: col2im3x3)


def conv3x3(h, K, b, skip=None):
    r"""A 3×3 'same' convolution: ``h`` (n, H, W, C), ``K`` (9C, C_out), ``b`` (C_out,); with
    ``skip`` (n, 2H, 2W, C_s), of the decoder's input :math:`x = [\mathrm{upsample}(h), \mathrm{skip}]`
    (channels side by side, K then has 9(C + C_s) rows) without making it.

    .. math:: \mathrm{out}[i,j] = b + \sum_{a,b=0}^{2} x_{pad}[i+a, j+b]\,K_{(3a+b)C:(3a+b+1)C}

    (cross-correlation, as in every deep-learning "convolution"), by nine shifted matrix products
    with their own VJP (:func:`refscore.models.conv.conv3x3`); equal to
    ``reshape(im2col3x3(x), (nHW, 9C)) @ K + b``. Returns (n, H, W, C_out), resp. (n, 2H, 2W, C_out).
    """
    if skip is None:
        return conv.conv3x3(h, K, b)
    return conv.conv3x3(h, K, b, skip=skip, upsample=True)


@primitive
def downsample(h):
    r"""2×2 mean pooling: :math:`\mathrm{out}[i,j] = \tfrac14\sum_{a,b\in\{0,1\}} h[2i+a, 2j+b]`,
    ``h`` (n, H, W, C) with H and W even. The sum of four strided views (NumPy's ``mean`` over
    the two inner axes of a 6-d view took 3.5× as long); its VJP spreads
    :math:`\tfrac14\bar{\mathrm{out}}` to the four cells (:func:`_downsample_vjp`)."""
    out = h[:, 0::2, 0::2] + h[:, 0::2, 1::2]
    out += h[:, 1::2, 0::2]
    out += h[:, 1::2, 1::2]
    out *= 0.25
    return out


def _downsample_vjp(ans, h):
    xp = backends.of(h).xp

    def vjp(g):
        out = xp.empty(h.shape, dtype=g.dtype)
        q = g * 0.25
        for a in (0, 1):
            for b in (0, 1):
                out[:, a::2, b::2] = q
        return out

    return vjp


defvjp(downsample, _downsample_vjp)


def upsample(h):
    r"""Nearest-neighbour 2× up-sampling: :math:`\mathrm{out}[i,j] = h[\lfloor i/2\rfloor, \lfloor j/2\rfloor]`."""
    n, H, W, C = getval(h).shape
    ones = backends.of(getval(h)).xp.ones((1, 1, 2, 1, 2, 1), dtype=getval(h).dtype)
    return anp.reshape(anp.reshape(h, (n, H, 1, W, 1, C)) * ones, (n, 2 * H, 2 * W, C))


# (name, input channels as multiples of C, output multiple, resolution level 0/1/2)
_BLOCKS = (("e1a", None, 1), ("e1b", 1, 1), ("e2a", 1, 2), ("e2b", 2, 2), ("m_a", 2, 2), ("m_b", 2, 2),
           ("d2", 4, 2), ("d1", 3, 1))


class ConvScoreNet(Saveable):
    r"""Noise-conditional score network :math:`s_\theta(x,\sigma)` for ``side × side`` images with
    a three-resolution U-Net (side, side/2, side/4) of ``channels`` C, 2C, 2C feature maps, EDM
    preconditioning (module docstring) and Tweedie's score :math:`(D_\theta - x)/\sigma^2`.

    Rows are flattened images ``(n, side²)`` like every model here (the (n, d) convention);
    ``sigma`` is a float or an ``(n,)`` array of per-example levels (``ncsn(levels="sample")``).

    Parameters
    ----------
    side : image side, divisible by 4 (28 for MNIST)
    channels : C
    rng : backend Generator for the initial parameters
    n_freq : F, Fourier frequencies of :math:`\log\sigma`; emb : width of the σ embedding
    global_width : G > 0 adds a dense bottleneck at the lowest resolution (below); 0 (default) none
    film : True makes σ scale each block's channels as well as shift them (FiLM, Perez et al.
        2018: :math:`\mathrm{act}(\gamma(e)\odot(k*h) + \beta(e))`, γ = 1 + eS, S starting at 0);
        False (default) only shifts them, γ = 1
    activation : "swish" (default), "softplus" or "tanh"
    data : optional ``(n, side²)`` training rows: μ their per-pixel mean, :math:`\sigma_d` their
        root-mean-square per-pixel standard deviation; or ``mean`` / ``sigma_data`` directly
    """

    def __init__(self, side=28, channels=16, rng=None, n_freq=8, emb=64, activation="swish", dtype="float32",
                 data=None, mean=None, sigma_data=None, global_width=0, film=False):
        if rng is None:
            raise ValueError("ConvScoreNet needs rng (a backend Generator)")
        self.side, self.channels = check_positive_int(side, "side"), check_positive_int(channels, "channels")
        if self.side % 4:
            raise ValueError(f"side must be divisible by 4 (two 2x down-samplings), got {side}")
        self.n_freq, self.emb = check_positive_int(n_freq, "n_freq"), check_positive_int(emb, "emb")
        self.activation, self.dtype = check_activation(activation), str(dtype)
        self.global_width = check_positive_int(global_width, "global_width", minimum=0)  # 0: no dense bottleneck
        if not isinstance(film, bool):
            raise TypeError(f"film must be True or False, got {film!r}")
        self.film = film
        self.dtype = check_choice(str(getattr(dtype, "__name__", dtype)), "dtype", ("float32", "float64"))
        bk = backends.of_rng(rng)
        d = self.side**2
        if data is not None:
            data = bk.asarray(data) if isinstance(data, (list, tuple)) else data  # rows given as nested lists
            if getattr(getval(data), "ndim", None) == 3:
                raise ValueError(f"data must hold flattened images, shape (n, {d}), got shape "
                                 f"{tuple(getval(data).shape)}; pass data.reshape(len(data), -1)")
            v = getval(check_points(data, dim=d, name=f"data (rows of side x side = {d} pixels)"))
            mean = v.mean(axis=0) if mean is None else mean
            sigma_data = float(bk.xp.sqrt(bk.xp.mean(v.var(axis=0)))) if sigma_data is None else sigma_data
        if mean is not None:
            mean = bk.asarray(getval(mean), dtype=dtype)
            if tuple(mean.shape) != (d,):
                raise ValueError(f"mean must have shape ({d},) (one value per pixel of side={self.side}), "
                                 f"got shape {tuple(mean.shape)}")
            check_finite(mean, "mean")
        self.mean = bk.xp.zeros((d,), dtype=dtype) if mean is None else mean
        self.sigma_data = check_positive(0.5 if sigma_data is None else sigma_data, "sigma_data")
        self.freqs = bk.asarray([2.0 ** (k - self.n_freq // 2) for k in range(self.n_freq)], dtype=dtype)
        self.params = self._init(bk, rng)

    def _init(self, bk, rng):
        C, E = self.channels, self.emb
        dense = lambda i, o: {"W": bk.normal(rng, (i, o), self.dtype) / math.sqrt(i),
                              "b": bk.xp.zeros((o,), dtype=self.dtype)}
        p = {"emb": dense(2 * self.n_freq, E)}
        for name, cin, cout in _BLOCKS:
            fan = 9 * (1 if cin is None else cin * C)
            p[name] = {"K": bk.normal(rng, (fan, cout * C), self.dtype) * math.sqrt(2.0 / fan),
                       "b": bk.xp.zeros((cout * C,), dtype=self.dtype),
                       "E": bk.normal(rng, (E, cout * C), self.dtype) / math.sqrt(E)}
            if self.film:  # the scale starts at one: the block begins as the bias-only one
                p[name]["S"] = bk.xp.zeros((E, cout * C), dtype=self.dtype)
        if self.global_width:
            cells = (self.side // 4) ** 2 * 2 * C
            p["global"] = {**dense(cells, self.global_width), "E": bk.normal(rng, (E, self.global_width), self.dtype) / math.sqrt(E),
                           "W2": bk.normal(rng, (self.global_width, cells), self.dtype) / math.sqrt(self.global_width),
                           "b2": bk.xp.zeros((cells,), dtype=self.dtype)}
        # the last layer starts at zero: D = μ + c_skip(x-μ) at initialisation, a sane denoiser
        p["out"] = {"K": bk.xp.zeros((9 * C, 1), dtype=self.dtype), "b": bk.xp.zeros((1,), dtype=self.dtype)}
        return p

    def _sigma(self, sigma, x):
        """σ as a float, or an (n,) array as a per-example column of ``x``
        (:func:`refscore.diffusion.per_example`)."""
        sv = getval(sigma)
        if isinstance(sv, (int, float)) or getattr(sv, "ndim", None) == 0:
            return float(sv)
        return per_example(sv, x)

    def features(self, params, u, log_s):
        r""":math:`F_\theta(u, \log\sigma)`: the U-Net on preconditioned rows ``u`` (n, side²) with
        ``log_s`` a float or an (n, 1) column; returns (n, side²)."""
        act = ACTIVATIONS[self.activation]
        n, S = getval(u).shape[0], self.side
        ang = anp.reshape(log_s * self.freqs, (-1, self.n_freq))  # (n or 1, F)
        e = act(anp.concatenate([anp.sin(ang), anp.cos(ang)], axis=1) @ params["emb"]["W"] + params["emb"]["b"])

        def block(name, h, skip=None):  # with skip: the input is [upsample(h), skip]
            q = params[name]
            col = lambda W: anp.reshape(e @ W, (-1, 1, 1, W.shape[1]))  # (n or 1, 1, 1, C_out)
            gamma = 1.0 + col(q["S"]) if self.film else None
            if self.activation in ("swish", "silu"):  # one primitive, in cache-sized pieces (conv_block)
                return conv_film_silu(h, q["K"], q["b"], gamma, col(q["E"]), skip=skip, upsample=skip is not None)
            out = conv3x3(h, q["K"], q["b"], skip)
            return act((out * gamma if self.film else out) + col(q["E"]))

        h1 = block("e1b", block("e1a", anp.reshape(u, (n, S, S, 1))))  # (n, S, S, C)
        h2 = block("e2b", block("e2a", downsample(h1)))  # (n, S/2, S/2, 2C)
        h3 = block("m_a", downsample(h2))  # (n, S/4, S/4, 2C)
        if self.global_width:
            h3 = h3 + self.global_mix(params["global"], h3, e, act)
        h3 = block("m_b", h3)
        g2 = block("d2", h3, skip=h2)  # [upsample(h3), h2] -> (n, S/2, S/2, 2C)
        g1 = block("d1", g2, skip=h1)  # [upsample(g2), h1] -> (n, S, S, C)
        return anp.reshape(conv3x3(g1, params["out"]["K"], params["out"]["b"]), (n, S * S))

    @staticmethod
    def global_mix(q, h, e, act):
        r"""The dense bottleneck: every cell of the lowest-resolution map ``h`` (n, s, s, c) sees
        every other, through G units conditioned on the σ embedding ``e``,

        .. math:: g = \mathrm{act}\big(\mathrm{vec}(h)W_1 + b_1 + eE\big),\qquad
                  \Delta h = \mathrm{unvec}(gW_2 + b_2),

        added to ``h`` as a residual. A 3×3 convolution sees a 3×3 window; at MNIST's 7×7 bottleneck
        two of them do not span a digit, and the dense layer lets its strokes agree (the role
        self-attention plays at 16×16 in Ho et al. 2020)."""
        n, s, _, c = getval(h).shape
        g = act(anp.reshape(h, (n, s * s * c)) @ q["W"] + q["b"] + e @ q["E"])
        return anp.reshape(g @ q["W2"] + q["b2"], (n, s, s, c))

    def denoiser(self, params, x, sigma):
        r""":math:`D_\theta(x,\sigma) = \mu + c_{skip}(x-\mu) + c_{out}F_\theta(c_{in}(x-\mu), \log\sigma)`
        (Karras et al. 2022, eq. 7): the estimate of :math:`\mathbb E[x_0\mid x]`, (n, d)."""
        return edm_denoiser(lambda u, log_s: self.features(params, u, log_s), x, self._sigma(sigma, x),
                            self.sigma_data, self.mean)

    def apply(self, params, x, sigma):
        r""":math:`s_\theta(x,\sigma) = (D_\theta(x,\sigma) - x)/\sigma^2` (Tweedie), (n, d) -> (n, d)."""
        return score_from_denoiser(x, self.denoiser(params, x, sigma), self._sigma(sigma, x))

    def score_fn(self, params=None):
        """``(x, sigma) -> s_θ(x, σ)`` for ``params`` (default: the current ones); σ a float or an
        ``(n,)`` array of per-example levels, which the attribute ``per_example_sigma`` says."""
        params = self.params if params is None else params

        def score(x, sigma):
            return self.apply(params, x, sigma)

        score.per_example_sigma = True
        return score

    def loss_weight(self, sigma):
        r"""EDM's λ(σ) in the units of :func:`refscore.losses.ncsn`: with it each level's term is
        :math:`\tfrac12\|F_\theta - F^\star\|^2`, of order one at every σ,

        .. math:: \lambda(\sigma)\,\tfrac12\Big\|s_\theta+\frac{z}{\sigma}\Big\|^2
                  = \frac{\lambda(\sigma)\,c_{out}^2}{\sigma^4}\,\tfrac12\|F_\theta-F^\star\|^2,
                  \qquad \lambda(\sigma) = \frac{\sigma^2(\sigma^2+\sigma_d^2)}{\sigma_d^2}

        (Karras et al. 2022, Table 1, λ = 1/c_out² in their loss on D)."""
        return score_loss_weight(sigma, self.sigma_data)

    def architecture(self):
        """What :meth:`save` records to rebuild this model (JSON-able)."""
        return {"side": self.side, "channels": self.channels, "n_freq": self.n_freq, "emb": self.emb,
                "activation": self.activation, "dtype": self.dtype, "sigma_data": self.sigma_data,
                "global_width": self.global_width, "film": self.film}

    def buffers(self):
        """The preconditioning's mean and the embedding's frequencies."""
        return {"buffers/mean": self.mean, "buffers/freqs": self.freqs}

    @classmethod
    def from_saved(cls, arch, arrays, bk):
        """The model :meth:`save` wrote, from its architecture and arrays, on backend ``bk``."""
        net = cls(rng=bk.rng(0), mean=arrays["buffers/mean"], **arch)
        net.freqs = bk.asarray(arrays["buffers/freqs"])
        net.params = read_tree(net.params, arrays, bk)
        return net
