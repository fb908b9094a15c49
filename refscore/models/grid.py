r"""The shared-border grid: ``n`` maps of :math:`H\times W` pixels flattened for the tap products of
:mod:`refscore.models.conv`, with **one** zero row between examples and **one** zero column between
image rows.

A 3×3 tap reads a pixel's eight neighbours, so a map needs a zero border; but neighbouring maps
can share it. Example e's pixel (i, j) sits at row

.. math:: r(e, i, j) = e\,R + (i+1)\,W_p + (j+1),\qquad W_p = W + 1,\quad R = (H+1)\,W_p,

of a flat array :math:`(nR + W_p + 1,\ C)`; row 0 of each example's :math:`(H+1)\times W_p` block,
column 0 of every image row and a tail of :math:`W_p + 1` rows are zero. The tap (a, b) of the pixel
at row r is row :math:`r + o_{ab}`, :math:`o_{ab} = (a-1)W_p + (b-1)` (as in
:mod:`refscore.models.conv`): the left neighbour of column 0 is its own row's zero column, the
right neighbour of column W − 1 is the next image row's zero column, the row above the first
image row is the example's zero row, and the row below the last image row is the next example's
zero row (or the tail). So every tap is still one contiguous row slice, and against a border of its
own for each map (:math:`(H+2)(W+2)` rows an example) the products run over
:math:`(H+1)(W+1)/((H+2)(W+2))` of the rows: 93% at 28², 88% at 14², 79% at 7². The elementwise
passes of :mod:`refscore.models.conv_block` shrink alike.
"""
from __future__ import annotations

from .._validation import check_positive_int
from .conv import accumulate_taps, row_kernel_grad, tap_offsets

__all__ = ["Grid"]


class Grid:
    r"""The shared-border layout of ``n`` maps of ``H`` × ``W`` pixels (module docstring).

    ``Wp`` = W + 1 (the row width), ``R`` = (H + 1) Wp (rows an example), ``rows`` = n R + Wp + 1
    (in all), and ``[lo, hi)`` = [Wp + 1, n R): the rows the taps write, every pixel and the zero
    rows and columns between them (the rows outside are border only).
    """

    def __init__(self, n, H, W):
        self.n, self.H, self.W = (check_positive_int(v, name) for v, name in ((n, "n"), (H, "H"), (W, "W")))
        self.Wp = self.W + 1
        self.R = (self.H + 1) * self.Wp
        self.lo, self.hi = self.Wp + 1, self.n * self.R
        self.rows = self.hi + self.Wp + 1

    def empty(self, C, dtype, xp):
        r"""A fresh flat grid (rows, C), nothing written."""
        return xp.empty((self.rows, C), dtype=dtype)

    def examples(self, F):
        r"""The examples of the flat grid ``F`` as (n, R, C) (a view)."""
        return F[:self.hi].reshape(self.n, self.R, F.shape[-1])

    def lines(self, F):
        r"""The flat grid ``F`` as (n, H+1, W_p C) (a view): each image row with the zero column before
        it as one line, so that a per-example, per-channel factor tiled along it (:meth:`per_line`)
        multiplies with a long inner loop (NumPy's broadcast over a C-long inner loop measured 2× slower)."""
        return F[:self.hi].reshape(self.n, self.H + 1, self.Wp * F.shape[-1])

    def per_line(self, a, xp):
        r"""A per-example, per-channel factor ``a`` (m, 1, C) tiled to (m, 1, W_p C), to broadcast over
        :meth:`lines`."""
        return xp.tile(a, (1, 1, self.Wp))

    def interior(self, F):
        r"""The pixels of the flat grid ``F``, (n, H, W, C) (a view)."""
        return F[:self.hi].reshape(self.n, self.H + 1, self.Wp, F.shape[-1])[:, 1:, 1:]

    def zero_border(self, F):
        r"""Zeroes every row of ``F`` that is not a pixel (the zero rows, columns and tail); returns ``F``."""
        blocks = F[:self.hi].reshape(self.n, self.H + 1, self.Wp, F.shape[-1])
        blocks[:, 0] = 0
        blocks[:, 1:, 0] = 0
        F[self.hi:] = 0
        return F

    def zero_outside(self, F):
        r"""Zeroes the rows of ``F`` outside ``[lo, hi)``, which no tap writes; returns ``F``."""
        F[:self.lo] = 0
        F[self.hi:] = 0
        return F

    def pad(self, h, xp, skip=None):
        r"""A fresh zero-bordered grid whose pixels hold ``h`` (n, H, W, C_h), with ``skip`` (n, H, W, C_s)
        beside it along channels when given: :math:`[\,h,\ \mathrm{skip}\,]` (a U-Net decoder's input,
        its concatenation done by this copy)."""
        for name, a in (("h", h), ("skip", skip)):
            if a is not None and (a.ndim != 4 or tuple(a.shape[:3]) != (self.n, self.H, self.W)):
                raise ValueError(f"{name} must be ({self.n}, {self.H}, {self.W}, C) to go on this grid, got {tuple(a.shape)}")
        C = h.shape[3] + (0 if skip is None else skip.shape[3])
        F = self.zero_border(self.empty(C, h.dtype, xp))
        pixels = self.interior(F)
        pixels[..., :h.shape[3]] = h
        if skip is not None:
            pixels[..., h.shape[3]:] = skip
        return F

    def piece(self, e0, e1):
        r"""The rows of ``[lo, hi)`` that belong to examples ``e0:e1``."""
        return max(e0 * self.R, self.lo), min(e1 * self.R, self.hi)

    def taps(self, P, K, out, xp, offs=None, add=False, e0=0, e1=None):
        r"""Rows ``[lo, hi)`` of examples ``e0:e1`` of :math:`\sum_k P[r + o_k]\,K_k` written into the
        flat grid ``out`` (rows, C_out), or added to it (``add``):
        :func:`refscore.models.conv.accumulate_taps` on this layout (``offs`` its offsets, default the
        nine taps'). Returns ``out``."""
        self._check_rows(P=P, out=out)
        lo, hi = self.piece(e0, self.n if e1 is None else e1)
        if lo < hi:
            accumulate_taps(P, K, self.Wp, lo, hi, out[lo:hi], xp, offs=offs, add=add)
        return out

    def input_grad(self, G, K, C, xp, offs=None, out=None, add=False):
        r"""The adjoint of :meth:`taps`: :math:`\bar P[r] = \sum_k G[r - o_k]\,K_k^\top` on rows
        ``[lo, hi)`` (every pixel) of a flat grid (rows, C), from the zero-bordered output gradient
        ``G`` (rows, C_out); ``K`` stacks one (C, C_out) block per offset. Written into ``out`` (fresh
        when None) or added to it; its pixels (:meth:`interior`) are the input's gradient."""
        offs = tap_offsets(self.Wp) if offs is None else offs
        # (len(offs) C_out, C), C-ordered: NumPy concatenates transposed blocks in Fortran order, and
        # accumulate_taps then left BLAS for a matmul into scratch and an add (4.4 ms a product, not 3.5)
        Kt = xp.concatenate([K[k * C:(k + 1) * C].T for k in range(len(offs))], axis=0).copy()
        out = self.empty(C, G.dtype, xp) if out is None else out
        return self.taps(G, Kt, out, xp, offs=[-o for o in offs], add=add)

    def kernel_grad(self, P, G, xp, offs=None):
        r""":math:`\bar K_k = \sum_{r\in[lo, hi)} P[r + o_k]^\top G[r]` stacked like ``K``
        (:func:`refscore.models.conv.row_kernel_grad`), ``G`` the zero-bordered output gradient."""
        self._check_rows(P=P, G=G)
        return row_kernel_grad(P, G, self.Wp, self.lo, self.hi, xp, offs)

    def _check_rows(self, **flat):
        for name, F in flat.items():
            if F.ndim != 2 or F.shape[0] != self.rows:
                raise ValueError(f"{name} must be a flat grid ({self.rows}, C) of {self.n} maps {self.H}×{self.W} "
                                 f"(Grid.pad or Grid.empty), got {tuple(F.shape)}")
