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
nine taps at four times the pixels, 16/36 of the products, on the small map's shared-border grid
(:mod:`refscore.models.grid`) (the equivalence of resize-convolution
and sub-pixel convolution: Shi et al. 2016, §2.2; Odena, Dumoulin & Olah 2016). Each parity is the
nine-product form of :mod:`refscore.models.conv` with four row offsets; the backward pass is the
same with the offsets negated and the taps transposed (input), and the kernel gradient of each
parity summed back onto the taps :math:`K_{ab}` it combines.
"""
from __future__ import annotations

from .. import backends
from .grid import Grid

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
    r"""Writes :math:`k\star\mathrm{up}(h)` into ``out`` (n, 2H, 2W, C_out) (a view of the caller's
    grid, say), for ``h`` (n, H, W, C) and taps ``K9`` (9, C, C_out); returns the small map on its
    shared-border grid (:class:`refscore.models.grid.Grid`, kept for the gradients)."""
    n, H, W, C = h.shape
    if tuple(K9.shape[:2]) != (9, C) or K9.ndim != 3 or tuple(out.shape) != (n, 2 * H, 2 * W, K9.shape[-1]):
        raise ValueError(f"for h {tuple(h.shape)}: K9 must be (9, {C}, C_out) and out (n, 2H, 2W, C_out) = "
                         f"({n}, {2 * H}, {2 * W}, C_out), got {tuple(K9.shape)} and {tuple(out.shape)}")
    grid = Grid(n, H, W)
    Ph = grid.pad(h, xp)
    K9 = K9 if K9.dtype == out.dtype else K9.astype(out.dtype)  # taps summed in the output's precision
    res = grid.empty(K9.shape[2], out.dtype, xp)
    for r, t in PARITIES:
        grid.taps(Ph, parity_kernel(K9, r, t), res, xp, offs=parity_offsets(r, t, grid.Wp))
        out[:, r::2, t::2] = grid.interior(res)
    return Ph


def upsampled_correlation_grads(G, Ph, K9, want_h, want_K, xp):
    r"""From the gradient ``G`` (n, 2H, 2W, C_out) of :math:`k\star\mathrm{up}(h)` and the small map's
    grid ``Ph`` (from :func:`upsampled_correlation`): the gradient of ``h`` (n, H, W, C) and of the
    taps (9, C, C_out) (each None unless wanted). Per parity, :math:`\bar h_{pad}[s] = \sum_k
    \bar Y^{rt}[s - o_k] (K^{rt}_k)^\top` and :math:`\bar K^{rt}_k = \sum_s h_{pad}[s + o_k]^\top
    \bar Y^{rt}[s]`, the latter added onto every tap :math:`K_{ab}` that :math:`K^{rt}_k` sums."""
    n, C, Co = G.shape[0], Ph.shape[1], G.shape[3]
    grid = Grid(n, G.shape[1] // 2, G.shape[2] // 2)
    D = grid.empty(C, G.dtype, xp) if want_h else None
    dK9 = xp.zeros((9, C, Co), dtype=G.dtype) if want_K else None
    for i, (r, t) in enumerate(PARITIES):
        Gr = grid.pad(G[:, r::2, t::2], xp)  # this parity's gradient on the small map's grid
        offs = parity_offsets(r, t, grid.Wp)
        if want_K:
            dKp = grid.kernel_grad(Ph, Gr, xp, offs)
            for k, taps in enumerate(_combined(r, t)):
                for tap in taps:
                    dK9[tap] += dKp[k * C:(k + 1) * C]
        if want_h:
            Kp = parity_kernel(K9 if K9.dtype == G.dtype else K9.astype(G.dtype), r, t)
            grid.input_grad(Gr, Kp, C, xp, offs=offs, out=D, add=i > 0)
    return (grid.interior(D) if want_h else None), dK9
