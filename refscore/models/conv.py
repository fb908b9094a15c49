r"""The 3×3 convolution as nine shifted matrix products: an autograd primitive with its own VJP.

A 3×3 cross-correlation with zero padding 1 of ``h`` (n, H, W, C) by taps :math:`K_{ab}` (C, C_out),

.. math:: \mathrm{out}[i, j] = b + \sum_{a,b=0}^{2} h_{pad}[s i+a,\; s j+b]\,K_{ab},

is computed without an im2col copy (stride s = 1): the padded map is flattened to rows
:math:`P` ((n(H+2)(W+2)), C); padded position r's neighbour (a, b) is row
:math:`r + o_{ab}`, :math:`o_{ab} = (a-1)(W+2) + (b-1)`, so each tap is one matrix product of a
**contiguous row slice** of :math:`P` (a view, no copy) accumulated in place into one buffer
(on the host by BLAS ``gemm`` with :math:`\beta = 1`, so no product is written twice).
Rows at the padding positions come out too and are dropped when the interior is read with the bias.

The backward pass is the same shape of computation (the adjoint of a 'same' correlation is a
'same' correlation with the taps mirrored and transposed, :math:`\bar h = \bar y \star
\tilde K`, :math:`\tilde K_{ab} = K_{2-a,2-b}^\top`), and the kernel gradient is nine products
:math:`\bar K_{ab} = P[\,\cdot + o_{ab}]^\top \bar Y_{pad}` of the same row slices with the
zero-padded output gradient (whose padding rows are zero, so the wrapped rows contribute
nothing). Stride > 1 takes the plainer route: one strided view per tap.

Works on every backend through the array namespace (``xp.matmul(..., out=)``, in-place add).
"""
from __future__ import annotations

import numpy as onp
from autograd.extend import defvjp, primitive
from autograd.tracer import getval

from .. import backends
from ._gemm import accumulating_gemm

__all__ = ["conv3x3", "pad1", "padded_input", "conv_output_side", "accumulate_taps", "tap_offsets", "input_grad_grid", "kernel_grad",
           "assembly_adjoint", "FEW_CHANNELS", "row_kernel_grad", "mirrored_taps"]

#: below this many input channels the taps are gathered side by side (9C columns, a small copy)
#: and multiplied once: nine products with an inner dimension of 1-3 run far below BLAS speed
FEW_CHANNELS = 3
#: from this many output channels the host accumulates the nine products in place with BLAS
#: ``gemm`` (β = 1); below, ``gemm`` on a one-column output is slower than ``matmul`` plus an add
GEMM_MIN_OUT = 4


def conv_output_side(n, stride):
    r"""Output side of a 3×3 correlation with padding 1: :math:`\lfloor (n + 2 - 3)/s \rfloor + 1`."""
    return (n - 1) // stride + 1


def pad1(h, xp):
    r"""``h`` (n, H, W, C) inside a zero border of width one, (n, H+2, W+2, C):
    :math:`h_{pad}[i+1, j+1] = h[i, j]`, zero on the border. Only the border is zeroed (the
    interior is written once), so no fully zero-filled temporary is made."""
    n, H, W, C = h.shape
    P = xp.empty((n, H + 2, W + 2, C), dtype=h.dtype)
    P[:, 0] = 0
    P[:, H + 1] = 0
    P[:, 1:H + 1, 0] = 0
    P[:, 1:H + 1, W + 1] = 0
    P[:, 1:H + 1, 1:W + 1] = h
    return P


def _shifted_products(P, K, xp):
    r"""Rows :math:`r\in[s, e)` of :math:`\sum_{ab} P[r + o_{ab}]\,K_{ab}` for the padded map
    ``P`` (n, H+2, W+2, C), as an (n, H+2, W+2, C_out) array whose interior holds the
    correlation (its border rows are unspecified)."""
    n, Hp, Wp, C = P.shape
    rows = n * Hp * Wp
    full = xp.empty((rows, K.shape[1]), dtype=P.dtype)
    accumulate_taps(P.reshape(rows, C), K, Wp, Wp + 1, rows - Wp - 1, full[Wp + 1:rows - Wp - 1], xp)
    return full.reshape(n, Hp, Wp, K.shape[1])


def tap_offsets(Wp):
    r"""The row offsets :math:`o_{ab} = (a-1)W_p + (b-1)` of the nine taps on a padded grid of width ``Wp``."""
    return [(k // 3 - 1) * Wp + (k % 3 - 1) for k in range(9)]


def accumulate_taps(Pf, K, Wp, lo, hi, out, xp, offs=None, add=False):
    r"""Rows :math:`r\in[lo, hi)` of :math:`\sum_{k} P_f[r + o_k]\,K_k` written into ``out``
    (hi - lo, C_out), or added to it (``add``): the products of contiguous row slices of the
    flattened padded map ``Pf`` (rows, C) (module docstring). The offsets ``offs`` default to the
    nine taps' :math:`o_{ab} = (a-1)W_p + (b-1)`, and ``K`` stacks one (C, C_out) block per offset.
    Every slice :math:`[lo + o_k, hi + o_k)` must lie inside ``Pf``."""
    C, Co = Pf.shape[1], K.shape[1]
    offs = tap_offsets(Wp) if offs is None else offs
    if C < FEW_CHANNELS and not add:  # a product over C < 4 channels is slow: gather the taps, one product
        cols = xp.empty((hi - lo, len(offs) * C), dtype=Pf.dtype)
        for k, off in enumerate(offs):
            cols[:, k * C:(k + 1) * C] = Pf[lo + off:hi + off]
        xp.matmul(cols, K, out=out)
        return out
    gemm = _accumulating_gemm(Pf, K, out)
    if gemm is not None:  # C ← A B + C in place (BLAS β = 1): no scratch product, no pass to add it
        for k, off in enumerate(offs):
            gemm(Pf[lo + off:hi + off], K[k * C:(k + 1) * C], out, float(k > 0 or add))
        return out
    tmp = xp.empty((hi - lo, Co), dtype=Pf.dtype)
    for k, off in enumerate(offs):
        first = k == 0 and not add
        xp.matmul(Pf[lo + off:hi + off], K[k * C:(k + 1) * C], out=out if first else tmp)
        if not first:
            out += tmp
    return out


def _accumulating_gemm(Pf, K, out):
    r"""An in-place ``f(A, B, C, beta)``: :math:`C \leftarrow AB + \beta C`
    (:func:`refscore.models._gemm.accumulating_gemm`: NumPy's OpenBLAS with the GIL released, else
    SciPy's ``?gemm``) for C-contiguous host arrays of one float dtype with at least
    :data:`GEMM_MIN_OUT` output channels, else None (a device array, or a product too narrow for
    ``gemm`` to beat ``matmul``)."""
    if (not backends.of(Pf).host_memory or K.shape[1] < GEMM_MIN_OUT or not Pf.dtype == K.dtype == out.dtype
            or not (Pf.flags.c_contiguous and K.flags.c_contiguous and out.flags.c_contiguous)):
        return None
    return accumulating_gemm(Pf.dtype)


def _tap(P, k, Ho, Wo, stride):
    """The strided view of padded ``P`` that tap k reads for every output pixel, (n, Ho, Wo, C)."""
    a, b = divmod(k, 3)
    return P[:, a:a + stride * (Ho - 1) + 1:stride, b:b + stride * (Wo - 1) + 1:stride]


def padded_input(h, skip, up, xp):
    r"""The zero-bordered map the taps read, (n, H+2, W+2, C_h + C_skip): the interior holds
    :math:`[\,\mathrm{up}(h),\ \mathrm{skip}\,]` (channels side by side), with
    :math:`\mathrm{up}(h)[i, j] = h[\lfloor i/2\rfloor, \lfloor j/2\rfloor]` when ``up`` (nearest
    2× up-sampling) else :math:`h`; so a U-Net decoder's up-sampling and skip concatenation cost
    no pass of their own: they are the padding copy."""
    if not up and skip is None:
        return pad1(h, xp)
    n, Hh, Wh, Ch = h.shape
    H, W = (2 * Hh, 2 * Wh) if up else (Hh, Wh)
    C = Ch + (0 if skip is None else skip.shape[3])
    P = xp.empty((n, H + 2, W + 2, C), dtype=h.dtype)
    P[:, 0] = 0
    P[:, H + 1] = 0
    P[:, 1:H + 1, 0] = 0
    P[:, 1:H + 1, W + 1] = 0
    if up:
        for di in (0, 1):
            for dj in (0, 1):
                P[:, 1 + di:H + 1:2, 1 + dj:W + 1:2, :Ch] = h
    else:
        P[:, 1:H + 1, 1:W + 1, :Ch] = h
    if skip is not None:
        P[:, 1:H + 1, 1:W + 1, Ch:] = skip
    return P


class _Saved:
    """What one forward pass keeps for its VJPs: the padded input, and per output gradient the
    padded gradient and the input gradient (each made once, shared by the VJPs that need it)."""

    def __init__(self):
        self.P, self.g, self.Gp, self.D = None, None, None, None

    def padded_grad(self, g, xp):
        if self.g is not g:
            self.g, self.Gp, self.D = g, pad1(g, xp), None
        return self.Gp

    def input_grad(self, g, K, stride, xp):
        r"""The gradient of the interior of the padded map, (n, H, W, C) (a view)."""
        Gp = self.padded_grad(g, xp)
        if self.D is None:
            n, Hp, Wp, C = self.P.shape
            if stride == 1:
                full = input_grad_grid(Gp, K, C, xp)
            else:
                full = xp.zeros(self.P.shape, dtype=g.dtype)
                for k in range(9):
                    view = _tap(full, k, g.shape[1], g.shape[2], stride)
                    view += xp.matmul(g, K[k * C:(k + 1) * C].T)
            self.D = full[:, 1:Hp - 1, 1:Wp - 1]
        return self.D


@primitive
def _conv(h, K, b, skip, stride, up, saved):
    xp = backends.of(h, K).xp
    P = padded_input(h, skip, up, xp)
    saved.P = P
    n, Hp, Wp, C = P.shape
    H, W = Hp - 2, Wp - 2
    Ho, Wo = conv_output_side(H, stride), conv_output_side(W, stride)
    if stride == 1:
        inner = _shifted_products(P, K, xp)[:, 1:H + 1, 1:W + 1]
        return xp.add(inner, b) if b is not None else inner.copy()
    out = None
    for k in range(9):
        term = xp.matmul(_tap(P, k, Ho, Wo, stride), K[k * C:(k + 1) * C])
        out = term if out is None else xp.add(out, term, out=out)
    return out if b is None else xp.add(out, b, out=out)


def mirrored_taps(K, C):
    r""":math:`\tilde K_{ab} = K_{2-a,2-b}^\top`, stacked like ``K``: (9 C_out, C), the taps of the
    adjoint correlation (module docstring)."""
    xp = backends.of(K).xp
    # C-ordered: NumPy concatenates transposed blocks in Fortran order (accumulate_taps needs C order for BLAS)
    return xp.concatenate([K[(8 - k) * C:(9 - k) * C].T for k in range(9)], axis=0).copy()


def input_grad_grid(Gp, K, C, xp):
    r"""The gradient of a stride-1 correlation's padded input from the zero-bordered padded output
    gradient ``Gp`` (n, H+2, W+2, C_out): :math:`\bar h = \bar y \star \tilde K` (module
    docstring), on the padded grid (n, H+2, W+2, C); its interior is the input's gradient."""
    return _shifted_products(Gp, mirrored_taps(K, C), xp)


def kernel_grad(P, Gp, xp, offs=None):
    r""":math:`\bar K_k = P[\,\cdot + o_k]^\top \bar Y_{pad}` stacked like ``K`` (len(offs) C, C_out): the
    kernel gradient of a stride-1 correlation from its padded input ``P`` and the zero-bordered
    padded output gradient ``Gp`` (whose zero border makes the wrapped rows contribute nothing);
    ``offs`` as in :func:`accumulate_taps` (default: the nine taps)."""
    n, Hp, Wp, C = P.shape
    rows = n * Hp * Wp
    return row_kernel_grad(P.reshape(rows, C), Gp.reshape(rows, Gp.shape[-1]), Wp, Wp + 1, rows - Wp - 1, xp, offs)


def row_kernel_grad(Pf, Gf, Wp, lo, hi, xp, offs=None):
    r""":math:`\bar K_k = \sum_{r=lo}^{hi-1} P_f[r + o_k]^\top G_f[r]` stacked like ``K``
    (len(offs) C, C_out), for flattened grids of row width ``Wp`` (input ``Pf`` (rows, C), output
    gradient ``Gf`` (rows, C_out), zero wherever ``r`` is not an output pixel): the kernel gradient
    of the taps of :func:`accumulate_taps` on any zero-bordered layout."""
    C, Co = Pf.shape[1], Gf.shape[1]
    offs = tap_offsets(Wp) if offs is None else offs
    dK = xp.empty((len(offs) * C, Co), dtype=Gf.dtype)
    gemm = _accumulating_gemm(Pf, Gf, dK)  # on the host through BLAS with the GIL released: matmul(A.T, B) holds it
    for k, off in enumerate(offs):
        if gemm is not None:
            gemm(Pf[lo + off:hi + off], Gf[lo:hi], dK[k * C:(k + 1) * C], 0.0, trans_a=True)
        else:
            xp.matmul(Pf[lo + off:hi + off].T, Gf[lo:hi], out=dK[k * C:(k + 1) * C])
    return dK


def assembly_adjoint(D, Ch, up):
    r"""The adjoint of assembling :math:`[\,\mathrm{up}(h),\ \mathrm{skip}\,]`: from the gradient
    ``D`` (n, H, W, C) of the assembled map, the pair (:math:`\bar h`, :math:`\bar{skip}` or None);
    nearest up-sampling's adjoint sums the four copies of each cell."""
    skip = D[..., Ch:].copy() if D.shape[3] > Ch else None
    D = D[..., :Ch]
    if not up:
        return D.copy(), skip
    out = D[:, 0::2, 0::2] + D[:, 0::2, 1::2]
    out += D[:, 1::2, 0::2]
    out += D[:, 1::2, 1::2]
    return out, skip


def _vjp_h(ans, h, K, b, skip, stride, up, saved):
    xp = backends.of(h, K).xp
    Ch = h.shape[3]
    return lambda g: assembly_adjoint(saved.input_grad(g, K, stride, xp)[..., :Ch], Ch, up)[0]


def _vjp_skip(ans, h, K, b, skip, stride, up, saved):
    xp = backends.of(h, K).xp
    return lambda g: saved.input_grad(g, K, stride, xp)[..., h.shape[3]:].copy()


def _vjp_K(ans, h, K, b, skip, stride, up, saved):
    xp = backends.of(h, K).xp
    P = saved.P
    C, Co = P.shape[3], K.shape[1]

    def vjp(g):
        if stride == 1:
            return kernel_grad(P, saved.padded_grad(g, xp), xp)
        dK = xp.empty(K.shape, dtype=K.dtype)
        g2 = g.reshape(-1, Co)
        for k in range(9):
            tap = _tap(P, k, g.shape[1], g.shape[2], stride).copy().reshape(-1, C)
            xp.matmul(tap.T, g2, out=dK[k * C:(k + 1) * C])
        return dK

    return vjp


def _vjp_b(ans, h, K, b, skip, stride, up, saved):
    return lambda g: g.sum(axis=(0, 1, 2))


defvjp(_conv, _vjp_h, _vjp_K, _vjp_b, _vjp_skip)


def conv3x3(h, K, b=None, stride=1, skip=None, upsample=False):
    r"""3×3 correlation with zero padding 1 and stride ``stride`` (1: 'same' size) of the map
    :math:`x = [\,\mathrm{up}(h),\ \mathrm{skip}\,]`: ``h`` (n, H, W, C_h), nearest-up-sampled 2×
    first when ``upsample``, with the optional ``skip`` (n, H', W', C_s) beside it along channels
    (a U-Net decoder's input, without the two copies); ``K`` (9C, C_out), C = C_h + C_s, block
    :math:`3a+b` the tap (a, b); ``b`` (C_out,) or None.

    .. math:: \mathrm{out}[i, j] = b + \sum_{a,b=0}^{2} x_{pad}[s i+a,\; s j+b]\,K_{(3a+b)C:(3a+b+1)C}

    (the module docstring: nine shifted matrix products, no im2col; cross-correlation, as every
    deep-learning "convolution"). Returns (n, ⌊(H'-1)/s⌋+1, ⌊(W'-1)/s⌋+1, C_out); differentiable in
    ``h``, ``K``, ``b`` and ``skip`` (reverse mode, first order).
    """
    hv, stride = getval(h), int(stride)
    if stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    side = (2 * hv.shape[1], 2 * hv.shape[2]) if upsample else tuple(hv.shape[1:3])
    C = hv.shape[3]
    if skip is not None:
        sv = getval(skip)
        if tuple(sv.shape[:3]) != (hv.shape[0], *side):
            raise ValueError(f"skip must have shape ({hv.shape[0]}, {side[0]}, {side[1]}, C_s) to sit beside "
                             f"{'up-sampled ' if upsample else ''}h, got {tuple(sv.shape)}")
        C += sv.shape[3]
    if tuple(getval(K).shape[:1]) != (9 * C,):
        raise ValueError(f"K must have 9 * C = {9 * C} rows for an input of {C} channels, got shape {tuple(getval(K).shape)}")
    return _conv(h, K, b, skip, stride, bool(upsample), _Saved())
