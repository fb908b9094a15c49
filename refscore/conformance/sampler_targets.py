r"""Targets with exact samplers and exact moments, for the sampler exactness tests.

Every target gives what a sampler step needs (``log_prob`` (n,), ``score`` (n, d)) and what the
tests need: ``draw(rng, n)`` exact i.i.d. draws and ``moments`` test functions with their exact
expectations. ``law(mode, h)`` is the law a correct sampler of that mode leaves invariant:
the target itself for MALA, RWMH and MH, ULA's own biased Gaussian for ULA.

* ``gauss``: :math:`\mathcal N(0, I_d)`.
* ``aniso``: :math:`\mathcal N(\mu, \Sigma)`, :math:`\Sigma = R\,\mathrm{diag}(s^2)R^\top`, a fixed
  rotation :math:`R` and scales :math:`s` from 0.5 to 2 (condition number 16).
* ``banana``: the twisted Gaussian of Haario, Saksman & Tamminen (1999, §4):
  :math:`y\sim\mathcal N(0,\mathrm{diag}(a^2,1,\dots,1))`, :math:`x_2 = y_2 + b(y_1^2-a^2)`,
  exact by construction; :math:`\mathbb E x_2^2 = 1 + 2a^4b^2`, :math:`\mathbb E x_1^2x_2 = 2a^4b`.
* ``mixture``: :math:`w\,\mathcal N(m, I) + (1-w)\,\mathcal N(-m, I)` with unequal weights
  (:math:`w = 0.3`): :math:`\mathbb E x = (2w-1)m`, :math:`\mathbb E x_1^3 = (2w-1)(m_1^3+3m_1)`.

ULA, :math:`x' = x + h\,s(x) + \sqrt{2h}\,z`, on :math:`\mathcal N(\mu,\Sigma)` with
:math:`P=\Sigma^{-1}` is the AR(1) recursion :math:`x'-\mu = (I-hP)(x-\mu) + \sqrt{2h}\,z`, whose
stationary covariance solves the Lyapunov equation :math:`V = (I-hP)V(I-hP) + 2hI`; :math:`V`
commutes with :math:`P`, so :math:`V = 2h\,(2hP - h^2P^2)^{-1} = \Sigma\,(I - \tfrac h2 P)^{-1}`
(for :math:`\mathcal N(0, s^2)`: :math:`s^2/(1-h/(2s^2))`; Roberts & Tweedie 1996, §3.1, show the
bias; the recursion is stable for :math:`h < 2\,\lambda_{\min}(\Sigma)`).
"""
from __future__ import annotations

import math

import numpy as onp

__all__ = ["SamplerTarget", "gaussian_target", "banana_target", "mixture_target", "sampler_targets",
           "TARGET_NAMES"]

TARGET_NAMES = ("gauss", "aniso", "banana", "mixture")


def _products(x, pairs):
    return onp.stack([x[:, j] * x[:, k] for j, k in pairs], 1)


class SamplerTarget:
    r"""A target law with an exact sampler and test functions with exact expectations.

    .. math:: \mathbb E_\pi f_j(x) = \texttt{expected}_j,\qquad x\sim\pi\ \text{drawn by}\ \texttt{draw}

    Attributes: ``name``, ``d``, ``log_prob(x)`` (n,), ``score(x)`` (n, d), ``draw(rng, n)`` (n, d),
    ``moment_names``, ``moments(x)`` (n, m), ``expected`` (m,), ``ula`` (the ULA law for step h,
    a function, or None where ULA's stationary law is not known in closed form).
    """

    def __init__(self, name, d, log_prob, score, draw, moment_names, moments, expected, ula=None):
        self.name, self.d, self.log_prob, self.score, self.draw = name, d, log_prob, score, draw
        self.moment_names, self.moments, self.expected, self.ula = moment_names, moments, onp.asarray(expected), ula

    def law(self, mode, h):
        r"""The law a correct sampler of ``mode`` leaves invariant with step ``h``:

        .. math:: \pi\ (\text{MALA, RWMH, MH}),\qquad \mathcal N\big(\mu, \Sigma(I-\tfrac h2\Sigma^{-1})^{-1}\big)
                  \ (\text{ULA on } \mathcal N(\mu,\Sigma))
        """
        if mode != "ula":
            return self
        if self.ula is None:
            raise ValueError(f"ULA's stationary law on target {self.name!r} is not known in closed form; "
                             "ULA is checked on the Gaussian targets ('gauss', 'aniso')")
        return self.ula(h)

    def __repr__(self):
        return f"SamplerTarget({self.name!r}, d={self.d})"


def _second_moment_pairs(d):
    return [(j, k) for j in range(d) for k in range(j, d)]


def gaussian_target(mu, cov, name="gauss", ula_of=True):
    r""":math:`\mathcal N(\mu,\Sigma)`: :math:`\log\pi = -\tfrac12(x-\mu)^\top P(x-\mu)`,
    :math:`s = -P(x-\mu)`, test functions :math:`x_j` and :math:`x_jx_k` (:math:`j\le k`):

    .. math:: \mathbb E x_j = \mu_j,\qquad \mathbb E x_jx_k = \Sigma_{jk} + \mu_j\mu_k

    ``ula_of``: attach ULA's law :math:`\mathcal N(\mu, \Sigma(I-\tfrac h2P)^{-1})` (module docstring).
    """
    mu, cov = onp.asarray(mu, dtype=float), onp.asarray(cov, dtype=float)
    d = mu.size
    prec, chol = onp.linalg.inv(cov), onp.linalg.cholesky(cov)
    pairs = _second_moment_pairs(d)
    names = [f"x{j + 1}" for j in range(d)] + [f"x{j + 1}*x{k + 1}" for j, k in pairs]
    second = cov + onp.outer(mu, mu)

    def ula(h):
        lam = onp.linalg.eigvalsh(cov).min()
        if not 0 < h < 2 * lam:
            raise ValueError(f"ULA on target {name!r} is stable only for 0 < h < 2 λ_min(Σ) = {2 * lam:.4g}, got h={h}")
        return gaussian_target(mu, cov @ onp.linalg.inv(onp.eye(d) - 0.5 * h * prec), f"{name} (ULA law, h={h:g})",
                               ula_of=False)

    return SamplerTarget(
        name, d, lambda x: -0.5 * onp.sum(((x - mu) @ prec) * (x - mu), 1), lambda x: -(x - mu) @ prec,
        lambda rng, n: mu + rng.standard_normal((n, d)) @ chol.T, names,
        lambda x: onp.concatenate([x, _products(x, pairs)], 1),
        onp.concatenate([mu, [second[j, k] for j, k in pairs]]), ula if ula_of else None)


def _aniso(d):
    rot = onp.linalg.qr(onp.random.default_rng(20240601).standard_normal((d, d)))[0]
    scales = onp.geomspace(0.5, 2.0, d)
    mu = onp.linspace(0.5, -0.5, d)
    return gaussian_target(mu, rot @ onp.diag(scales**2) @ rot.T, "aniso")


def banana_target(d, a=1.0, b=0.5):
    r"""Haario, Saksman & Tamminen's (1999, §4) twisted Gaussian ("banana") in ``d >= 2`` dimensions:

    .. math:: \log\pi(x) = -\frac{x_1^2}{2a^2} - \frac{(x_2 - b(x_1^2-a^2))^2}{2} - \sum_{j\ge3}\frac{x_j^2}{2},
              \qquad \mathbb E x_2^2 = 1+2a^4b^2,\ \ \mathbb E x_1^2x_2 = 2a^4b
    """
    if d < 2:
        raise ValueError(f"the banana target needs d >= 2, got d={d}")

    def twist(x):
        return x[:, 1] - b * (x[:, 0] ** 2 - a * a)

    def log_prob(x):
        return -0.5 * x[:, 0] ** 2 / (a * a) - 0.5 * twist(x) ** 2 - 0.5 * onp.sum(x[:, 2:] ** 2, 1)

    def score(x):
        e = twist(x)
        return onp.concatenate([(-x[:, 0] / (a * a) + 2 * b * e * x[:, 0])[:, None], -e[:, None], -x[:, 2:]], 1)

    def draw(rng, n):
        y = rng.standard_normal((n, d))
        y[:, 0] *= a
        y[:, 1] += b * (y[:, 0] ** 2 - a * a)
        return y

    pairs = _second_moment_pairs(d)
    second = onp.eye(d)
    second[0, 0], second[1, 1] = a * a, 1 + 2 * a**4 * b * b
    names = [f"x{j + 1}" for j in range(d)] + [f"x{j + 1}*x{k + 1}" for j, k in pairs] + ["x1^2*x2"]
    return SamplerTarget("banana", d, log_prob, score, draw, names,
                         lambda x: onp.concatenate([x, _products(x, pairs), (x[:, 0] ** 2 * x[:, 1])[:, None]], 1),
                         onp.concatenate([onp.zeros(d), [second[j, k] for j, k in pairs], [2 * a**4 * b]]))


def mixture_target(d, w=0.3, shift=1.2):
    r"""Two unit-covariance Gaussian modes with unequal weights, :math:`m = (\text{shift}, 0, \dots)`:

    .. math:: \pi = w\,\mathcal N(m, I) + (1-w)\,\mathcal N(-m, I),\quad s(x) = -x + (r_+ - r_-)\,m,\quad
              \mathbb E x = (2w-1)m,\ \ \mathbb E x_1^3 = (2w-1)(m_1^3 + 3m_1)

    (:math:`r_\pm` the posterior weights of the two modes at :math:`x`).
    """
    m = onp.zeros(d)
    m[0] = shift
    lw, lv = math.log(w), math.log(1 - w)

    def parts(x):
        return lw - 0.5 * onp.sum((x - m) ** 2, 1), lv - 0.5 * onp.sum((x + m) ** 2, 1)

    def score(x):
        l1, l2 = parts(x)
        r = onp.tanh(0.5 * (l1 - l2))  # r_+ - r_-
        return -x + r[:, None] * m

    def draw(rng, n):
        sign = onp.where(rng.uniform(size=n) < w, 1.0, -1.0)
        return sign[:, None] * m + rng.standard_normal((n, d))

    pairs = _second_moment_pairs(d)
    second = onp.eye(d) + onp.outer(m, m)
    names = [f"x{j + 1}" for j in range(d)] + [f"x{j + 1}*x{k + 1}" for j, k in pairs] + ["x1^3"]
    return SamplerTarget("mixture", d, lambda x: onp.logaddexp(*parts(x)), score, draw, names,
                         lambda x: onp.concatenate([x, _products(x, pairs), (x[:, 0] ** 3)[:, None]], 1),
                         onp.concatenate([(2 * w - 1) * m, [second[j, k] for j, k in pairs],
                                          [(2 * w - 1) * (shift**3 + 3 * shift)]]))


def sampler_targets(d, names=TARGET_NAMES):
    r"""The named targets in dimension ``d``: ``gauss`` :math:`\mathcal N(0,I_d)`, ``aniso``,
    ``banana``, ``mixture`` (module docstring).

    .. math:: \pi \in \{\mathcal N(0,I),\ \mathcal N(\mu,\Sigma),\ \text{banana},\ w\mathcal N(m,I)+(1-w)\mathcal N(-m,I)\}
    """
    makers = {"gauss": lambda: gaussian_target(onp.zeros(d), onp.eye(d)), "aniso": lambda: _aniso(d),
              "banana": lambda: banana_target(d), "mixture": lambda: mixture_target(d)}
    unknown = [n for n in names if n not in makers]
    if unknown:
        raise ValueError(f"targets must be among {list(makers)}, got {unknown}")
    return [makers[n]() for n in names]
