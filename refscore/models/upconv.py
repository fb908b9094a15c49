r"""A 3×3 correlation of a nearest-up-sampled map, computed on the small map: four 2×2
correlations, one per output parity.

With :math:`\mathrm{up}(h)[I, J] = h[\lfloor I/2\rfloor, \lfloor J/2\rfloor]` and zero padding, the
output pixel :math:`(2p + r,\ 2q + t)` reads rows :math:`2p + r + a - 1` (a = 0, 1, 2) of up(h), that
is rows :math:`p + \lfloor (r + a - 1)/2 \rfloor` of h: for r = 0, a = 0 reads row p − 1 and a = 1, 2
read row p; for r = 1, a = 0, 1 read row p and a = 2 reads row p + 1 (columns alike). So

.. math:: (k \star \mathrm{up}(h))[2p+r,\ 2q+t] = \sum_{u\in U_r}\sum_{v\in U_t} h_{pad}[p+u,\ q+v]\,K^{rt}_{uv},
          \qquad K^{rt}_{uv} = \sum_{a\in A_r(u)}\sum_{b\in A_t(v)} K_{ab},

:math:`U_0 = \{-1, 0\}`, :math:`U_1 = \{0, 1\}`, :math:`A_0(-1) = \{0\}`, :math:`A_0(0) = \{1, 2\}`,
:math:`A_1(0) = \{0, 1\}`, :math:`A_1(1) = \{2\}`: four taps on the small map per parity instead of
nine taps at four times the pixels, 16/36 of the products (the equivalence of resize-convolution
and sub-pixel convolution: Shi et al. 2016, §2.2; Odena, Dumoulin & Olah 2016). Each parity is the
nine-product form of :mod:`refscore.models.conv` with four row offsets; the backward pass is the
same with the offsets negated and the taps transposed (input), and the kernel gradient of each
parity summed back onto the taps :math:`K_{ab}` it combines.
"""
from __future__ import annotations

from .. import backends
from .conv import accumulate_taps, kernel_grad, pad1

__all__ = ["PARITIES", "parity_offsets", "parity_kernel", "upsampled_correlation", "upsampled_correlation_grads"]

#: for each output parity r: the small-map row offsets u and the taps a that read them
_GROUPS = {0: ((-1, (0,)), (0, (1, 2))), 1: ((0, (0, 1)), (1, (2,)))}
PARITIES = ((0, 0), (0, 1), (1, 0), (1, 1))


def parity_offsets(r, t, Wp):
    r"""The four row offsets :math:`u W_p + v`, :math:`u\in U_r, v\in U_t`, on a padded small map of width ``Wp``."""
    return [u * Wp + v for u, _ in _GROUPS[r] for v, _ in _GROUPS[t]]


def _combined(r, t):
    """For each of the four taps of parity (r, t): the original taps 3a + b it sums."""
    return [[3 * a + b for a in As for b in Bs] for _, As in _GROUPS[r] for _, Bs in _GROUPS[t]]


def parity_kernel(K9, r, t):
    r""":math:`K^{rt}_{uv} = \sum_{a\in A_r(u)}\sum_{b\in A_t(v)} K_{ab}` stacked (4 C, C_out), from
    the taps ``K9`` (9, C, C_out), in the order of :func:`parity_offsets`."""
    blocks = []
    for taps in _combined(r, t):
        block = K9[taps[0]]
        for k in taps[1:]:
            block = block + K9[k]
        blocks.append(block)
    return backends.of(K9).xp.concatenate(blocks, axis=0)


def upsampled_correlation(h, K9, out, xp):
    r"""Writes :math:`k\star\mathrm{up}(h)` into the interior of ``out`` (n, 2H+2, 2W+2, C_out), a padded
    grid (its border untouched), for ``h`` (n, H, W, C) and taps ``K9`` (9, C, C_out); returns the
    padded small map (kept for the gradients)."""
    n, H, W, C = h.shape
    if tuple(K9.shape[:2]) != (9, C) or K9.ndim != 3 or tuple(out.shape) != (n, 2 * H + 2, 2 * W + 2, K9.shape[-1]):
        raise ValueError(f"for h {tuple(h.shape)}: K9 must be (9, {C}, C_out) and out (n, 2H+2, 2W+2, C_out) = "
                         f"({n}, {2 * H + 2}, {2 * W + 2}, C_out), got {tuple(K9.shape)} and {tuple(out.shape)}")
    Ph = pad1(h, xp)
    n, Hp, Wp, C = Ph.shape
    rows, Co, H, W = n * Hp * Wp, K9.shape[2], Hp - 2, Wp - 2
    K9 = K9 if K9.dtype == out.dtype else K9.astype(out.dtype)  # taps summed in the output's precision
    res = xp.empty((rows, Co), dtype=out.dtype)
    s, e = Wp + 1, rows - Wp - 1
    for r, t in PARITIES:
        accumulate_taps(Ph.reshape(rows, C), parity_kernel(K9, r, t), Wp, s, e, res[s:e], xp,
                        offs=parity_offsets(r, t, Wp))
        out[:, 1 + r:2 * H + 1:2, 1 + t:2 * W + 1:2] = res.reshape(n, Hp, Wp, Co)[:, 1:H + 1, 1:W + 1]
    return Ph


def upsampled_correlation_grads(Gp, Ph, K9, want_h, want_K, xp):
    r"""From the zero-bordered padded gradient ``Gp`` (n, 2H+2, 2W+2, C_out) of
    :math:`k\star\mathrm{up}(h)`: the gradient of ``h`` (n, H, W, C) and of the taps (9, C, C_out)
    (each None unless wanted). Per parity, :math:`\bar h_{pad}[s] = \sum_k \bar Y^{rt}[s - o_k]
    (K^{rt}_k)^\top` and :math:`\bar K^{rt}_k = \sum_s h_{pad}[s + o_k]^\top \bar Y^{rt}[s]`, the latter
    added onto every tap :math:`K_{ab}` that :math:`K^{rt}_k` sums."""
    n, Hp, Wp, C = Ph.shape
    rows, Co, H, W = n * Hp * Wp, Gp.shape[3], Hp - 2, Wp - 2
    s, e = Wp + 1, rows - Wp - 1
    D = xp.empty((rows, C), dtype=Gp.dtype) if want_h else None
    dK9 = xp.zeros((9, C, Co), dtype=Gp.dtype) if want_K else None
    for i, (r, t) in enumerate(PARITIES):
        G = pad1(Gp[:, 1 + r:2 * H + 1:2, 1 + t:2 * W + 1:2], xp)  # this parity's gradient, (n, Hp, Wp, C_out)
        offs = parity_offsets(r, t, Wp)
        if want_K:
            dKp = kernel_grad(Ph, G, xp, offs)
            for k, taps in enumerate(_combined(r, t)):
                for tap in taps:
                    dK9[tap] += dKp[k * C:(k + 1) * C]
        if want_h:
            Kp = parity_kernel(K9 if K9.dtype == Gp.dtype else K9.astype(Gp.dtype), r, t)
            adj = xp.concatenate([Kp[k * C:(k + 1) * C].T for k in range(4)], axis=0)  # (4 C_out, C)
            accumulate_taps(G.reshape(rows, Co), adj, Wp, s, e, D[s:e], xp, offs=[-o for o in offs], add=i > 0)
    gh = D.reshape(n, Hp, Wp, C)[:, 1:H + 1, 1:W + 1] if want_h else None
    return gh, dK9
