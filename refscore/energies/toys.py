r"""Toy targets for samplers: a double well, a banana (Rosenbrock-like), Neal's funnel, a ring."""
from __future__ import annotations

import math

import autograd.numpy as anp

from .._math import LOG_2PI, sqnorm
from .._validation import check_positive, check_positive_int
from .base import Energy

__all__ = ["DoubleWell", "Banana", "NealsFunnel", "Ring"]


class DoubleWell(Energy):
    r"""Double well in the first coordinate, Gaussian in the rest:

    .. math:: E(x) = a\,(x_1^2-1)^2 + \tfrac12\sum_{i\ge 2} x_i^2

    Two modes at :math:`x_1=\pm1` separated by a barrier of height :math:`a`.
    """

    def __init__(self, dim=2, barrier=2.0):
        self.dim = check_positive_int(dim, "dim")
        self.barrier = check_positive(barrier, "barrier")

    def energy_unchecked(self, x):
        r"""The energy of each row, unvalidated: the formula in the class docstring."""
        x1 = x[:, 0]
        return self.barrier * (x1 * x1 - 1.0) ** 2 + 0.5 * (sqnorm(x) - x1 * x1)

    def log_partition(self):
        from scipy.integrate import quad

        a = self.barrier
        z1, _ = quad(lambda t: math.exp(-a * (t * t - 1.0) ** 2), -math.inf, math.inf)
        return math.log(z1) + 0.5 * (self.dim - 1) * LOG_2PI


class Banana(Energy):
    r"""Banana (twisted Gaussian, Haario et al. 1999), d = 2:

    .. math:: E(x) = \frac{x_1^2}{2a^2} + \tfrac12\big(x_2 - b(x_1^2 - a^2)\big)^2,
              \qquad \log Z = \log(2\pi a)

    The map :math:`(x_1,x_2)\mapsto(x_1/a,\,x_2-b(x_1^2-a^2))` has unit Jacobian determinant up
    to :math:`1/a`, which gives :math:`Z` and an exact sampler.
    """

    def __init__(self, a=1.0, b=1.0):
        self.dim, self.a, self.b = 2, check_positive(a, "a"), float(b)

    def energy_unchecked(self, x):
        r"""The energy of each row, unvalidated: the formula in the class docstring."""
        x1, x2 = x[:, 0], x[:, 1]
        return x1 * x1 / (2 * self.a**2) + 0.5 * (x2 - self.b * (x1 * x1 - self.a**2)) ** 2

    def log_partition(self):
        return math.log(2 * math.pi * self.a)

    def sample(self, n, rng):
        bk = self._sample_backend(n, rng)
        z = bk.normal(rng, (n, 2))
        x1 = self.a * z[:, 0]
        x2 = z[:, 1] + self.b * (x1 * x1 - self.a**2)
        return bk.xp.stack([x1, x2], axis=1)


class NealsFunnel(Energy):
    r"""Neal's funnel (Neal 2003, §8): :math:`v\sim\mathcal N(0,s^2)`,
    :math:`x_i\mid v\sim\mathcal N(0,e^{v})`, :math:`i=2..d`, with :math:`v=x_1`:

    .. math:: E(x) = \frac{v^2}{2s^2} + \frac{d-1}{2}v + \frac{e^{-v}}{2}\sum_{i\ge2}x_i^2,
              \qquad \log Z = \tfrac12\log(2\pi s^2) + \tfrac{d-1}2\log 2\pi
    """

    def __init__(self, dim=2, scale=3.0):
        self.dim = check_positive_int(dim, "dim", minimum=2)
        self.scale = check_positive(scale, "scale")

    def energy_unchecked(self, x):
        r"""The energy of each row, unvalidated: the formula in the class docstring."""
        v = x[:, 0]
        rest = sqnorm(x) - v * v
        return v * v / (2 * self.scale**2) + 0.5 * (self.dim - 1) * v + 0.5 * anp.exp(-v) * rest

    def log_partition(self):
        return 0.5 * math.log(2 * math.pi * self.scale**2) + 0.5 * (self.dim - 1) * LOG_2PI

    def sample(self, n, rng):
        bk = self._sample_backend(n, rng)
        z = bk.normal(rng, (n, self.dim))
        v = self.scale * z[:, :1]
        return bk.xp.concatenate([v, z[:, 1:] * bk.xp.exp(0.5 * v)], axis=1)


class Ring(Energy):
    r"""Ring of radius :math:`r` and width :math:`w` in d = 2:

    .. math:: E(x) = \frac{(\|x\|-r)^2}{2w^2},\qquad
              Z = 2\pi\Big(w^2e^{-r^2/2w^2} + r\,w\sqrt{2\pi}\,\Phi(r/w)\Big)

    (:math:`Z=\int_0^\infty 2\pi\rho\,e^{-(\rho-r)^2/2w^2}d\rho` in polar coordinates.)
    """

    def __init__(self, radius=2.0, width=0.25):
        self.dim, self.radius, self.width = 2, check_positive(radius, "radius"), check_positive(width, "width")

    def energy_unchecked(self, x):
        r"""The energy of each row, unvalidated: the formula in the class docstring."""
        rho = anp.sqrt(sqnorm(x) + 1e-300)
        return (rho - self.radius) ** 2 / (2 * self.width**2)

    def log_partition(self):
        from scipy.special import ndtr

        r, w = self.radius, self.width
        return math.log(2 * math.pi * (w * w * math.exp(-r * r / (2 * w * w)) + r * w * math.sqrt(2 * math.pi) * ndtr(r / w)))
