"""Small differentiable helpers that work on every backend (autograd + array protocols)."""
from __future__ import annotations

import math

import autograd.numpy as anp
from autograd.tracer import getval

LOG_2PI = math.log(2 * math.pi)


def logsumexp(a, axis=-1):
    r"""Stable :math:`\log\sum_k e^{a_k}` along ``axis``.

    The shift :math:`m=\max_k a_k` is taken outside autograd (``getval``): the result does not
    depend on it mathematically, so its gradient is the softmax either way, and no gradient of
    ``max`` (host-bound in autograd) is needed on device backends.
    """
    m = anp.max(getval(a), axis=axis, keepdims=True)
    out = anp.log(anp.sum(anp.exp(a - m), axis=axis, keepdims=True)) + m
    return anp.squeeze(out, axis=axis)


def softmax(a, axis=-1):
    r"""Softmax along ``axis``, shifted by the maximum so that no exponent overflows:

    .. math:: \mathrm{softmax}(a)_k = \frac{e^{a_k - m}}{\sum_j e^{a_j - m}},\quad m = \max_j a_j

    (the mixture responsibilities :math:`r_k(x)` of seed 003_…, eq. 11.9's posterior weights)."""
    m = anp.max(getval(a), axis=axis, keepdims=True)
    e = anp.exp(a - m)
    return e / anp.sum(e, axis=axis, keepdims=True)


def sqnorm(x):
    r"""Row-wise squared Euclidean norm :math:`\|x_i\|^2 = \sum_j x_{ij}^2`: (n, d) -> (n,)."""
    return anp.sum(x * x, axis=1)

