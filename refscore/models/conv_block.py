r"""A U-Net block as one autograd primitive: 3×3 convolution, bias, FiLM and SiLU, computed in place
in pieces of whole examples.

.. math:: y = \mathrm{SiLU}\big(\gamma \odot (k \star x + b) + \beta\big),\qquad
          \mathrm{SiLU}(z) = z\,\sigma(z),\quad \sigma(z) = \frac{1}{1+e^{-z}}

with :math:`x = [\,\mathrm{up}(h),\ \mathrm{skip}\,]` (:meth:`refscore.models.grid.Grid.pad`),
:math:`\gamma, \beta` per example and channel (FiLM, Perez et al. 2018; :math:`\gamma = 1` without
it) and SiLU as in Elfwing et al. (2018, eq. 3). Written as separate operations, each of the
bias, the scale, the shift, the logistic and the product is a fresh feature map and a pass over it
(12.8 MB each at batch 256 on a 28×28×16 map). Here the nine shifted products of
:mod:`refscore.models.conv` are accumulated on the shared-border grid of
:mod:`refscore.models.grid` for a piece of whole examples (:data:`CHUNK_BYTES`), and every
elementwise step runs on that piece in place, a line (image row) at a time
(:meth:`~refscore.models.grid.Grid.lines`); without a trace (sampling) the only arrays made are the
input's grid, the convolution, the output and one piece of scratch. The backward pass uses

.. math:: \bar z = \bar y\,\sigma(z)\big(1 + z\,(1-\sigma(z))\big),\qquad
          \bar\beta = \textstyle\sum_{ij}\bar z,\quad \bar\gamma = \sum_{ij}\bar z\,(k\star x + b),\quad
          \overline{k\star x} = \gamma\,\bar z

(SiLU's derivative :math:`\sigma + z\sigma(1-\sigma)`, from the :math:`\sigma(z)` the forward pass
kept: no exponential in the backward pass. Where :math:`1-\sigma(z)` loses its relative accuracy
(large positive :math:`z`) its absolute error, half an ulp of :math:`\sigma\approx1`, times
:math:`z` is a few ulps of the 1 it is added to (:math:`z(1-\sigma)\to0` beyond), so the
derivative stays within a few ulps of float64's, tested from :math:`z=-80` to 80; the step
measured 2 ms faster than with :math:`\sigma(-z)`), and the convolution's own adjoint
(:func:`~refscore.models.conv.input_grad_grid`, :func:`~refscore.models.conv.kernel_grad`).
Every value equals :func:`refscore.models.conv.conv3x3` followed by the FiLM and
:func:`~refscore.models.activations.silu` to round-off (tests/test_conv_block.py). First order,
reverse mode, like :func:`~refscore.models.conv.conv3x3`.
"""
from __future__ import annotations

import numpy as onp
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import getval

from .. import backends
from .conv import assembly_adjoint
from .grid import Grid
from .upconv import upsampled_correlation, upsampled_correlation_grads

__all__ = ["conv_film_silu", "CHUNK_BYTES"]

#: on the host, each piece of a feature map is about this many bytes (whole examples). Measured on the
#: MNIST U-Net (batch 64 step / batch 256 forward, one thread, freed memory kept): 256 KiB 151 / 206 ms,
#: 1-4 MiB 148 / 193-195, 16 MiB 146 / 202, one piece 146 / 200
CHUNK_BYTES = 1 << 22


def _pieces(n, per_example_bytes, host):
    """``(e0, e1)`` ranges of whole examples, about :data:`CHUNK_BYTES` each (one range off the host)."""
    step = max(1, CHUNK_BYTES // max(1, per_example_bytes)) if host else n
    return [(e0, min(n, e0 + step)) for e0 in range(0, n, step)]


def _rows(m, e0, e1):
    """Examples ``e0:e1`` of a per-example array with ``m`` rows (1: shared by every example)."""
    return m[e0:e1] if m.shape[0] > 1 else m


def _logistic(z, out, xp):
    r""":math:`\sigma(z) = 1/(1+e^{-z})` into ``out``: full relative accuracy, 0 once :math:`e^{-z}`
    overflows (below the smallest normal number)."""
    with onp.errstate(over="ignore"):
        xp.exp(xp.negative(z, out=out), out=out)
    out += 1.0
    return xp.reciprocal(out, out=out)


class _Saved:
    """What a traced forward pass keeps for the VJP: the grid and the input on it, and on it as lines the
    convolution, the pre-activation and its logistic (made again in the backward pass instead, the
    step measured 3% slower with freed memory kept by :mod:`refscore.host_memory`)."""

    def __init__(self, keep):
        self.keep, self.grid, self.P, self.raw, self.pre, self.sig = keep, None, None, None, None, None
        self.Ph, self.Kc = None, None  # an up-sampled input's small map on its grid; the skip's taps


def _pre(raw, gam, shift, e0, e1, out, xp):
    r"""The pre-activation :math:`z = \gamma\,\mathrm{raw} + (\gamma b + \beta)` of examples ``e0:e1`` into ``out``."""
    if gam is None:
        return xp.add(raw[e0:e1], _rows(shift, e0, e1), out=out)
    xp.multiply(raw[e0:e1], _rows(gam, e0, e1), out=out)
    out += _rows(shift, e0, e1)
    return out


def _taps_into(raw, grid, h, K, skip, up, xp, saved):
    r"""Prepares the convolution on the flat grid ``raw`` (rows, C_out) (:class:`~refscore.models.grid.Grid`):
    for an up-sampled ``h`` (:mod:`refscore.models.upconv`) writes :math:`k_h\star\mathrm{up}(h)` with a
    zero border now, and returns the skip's grid, its taps and True (the piece loop adds them); else
    the input's grid, ``K`` and False (the piece loop writes them; the rows no tap writes zeroed)."""
    Co = K.shape[1]
    if not up:
        grid.zero_outside(raw)
        return grid.pad(h, xp, skip), K, False
    Ch, K9 = h.shape[3], K.reshape(9, K.shape[0] // 9, Co)
    saved.Ph = upsampled_correlation(h, K9[:, :Ch], grid.interior(grid.zero_border(raw)), xp)
    if skip is None:
        return None, None, True
    return grid.pad(skip, xp), K9[:, Ch:].reshape(-1, Co), True  # the skip's taps: a contiguous copy


@primitive
def _block(h, K, b, gamma, beta, skip, up, saved):
    bk = backends.of(h, K)
    xp = bk.xp
    n, Co = h.shape[0], K.shape[1]
    grid = Grid(n, *((2 * h.shape[1], 2 * h.shape[2]) if up else h.shape[1:3]))
    R, dt = grid.R, onp.result_type(h.dtype, K.dtype)  # the composed operations' dtype
    raw, Y = grid.empty(Co, dt, xp), grid.empty(Co, dt, xp)
    pieces = _pieces(n, R * Co * dt.itemsize, bk.host_memory)
    pre = grid.lines(grid.empty(Co, dt, xp)) if saved.keep else None
    # σ(z) for the whole map when a VJP will need it, else one piece's scratch
    scratch = (pieces[0][1], grid.H + 1, grid.Wp * Co)  # one piece, as lines
    sig = grid.lines(grid.empty(Co, dt, xp)) if saved.keep else xp.empty(scratch, dtype=dt)
    wide = lambda a: a if a.dtype == dt else a.astype(dt)  # noqa: E731  small arrays, in the output's precision
    gam = None if gamma is None else wide(gamma).reshape(gamma.shape[0], 1, Co)
    shift = (wide(b) if gam is None else wide(b) * gam) + wide(beta).reshape(beta.shape[0], 1, Co)
    gam_l, shift_l = (None if gam is None else grid.per_line(gam, xp)), grid.per_line(shift, xp)
    P, Kc, add = _taps_into(raw, grid, h, K, skip, up, xp, saved)
    raw_l, Y_l = grid.lines(raw), grid.lines(Y)
    for e0, e1 in pieces:
        if P is not None:
            grid.taps(P, Kc, raw, xp, add=add, e0=e0, e1=e1)
        if saved.keep:
            z = _pre(raw_l, gam_l, shift_l, e0, e1, pre[e0:e1], xp)
            xp.multiply(z, _logistic(z, sig[e0:e1], xp), out=Y_l[e0:e1])
        else:
            z = _pre(raw_l, gam_l, shift_l, e0, e1, Y_l[e0:e1], xp)  # z made in the output, then y = z σ(z) in place
            z *= _logistic(z, sig[:e1 - e0], xp)
    if saved.keep:
        saved.grid, saved.P, saved.Kc, saved.raw, saved.pre, saved.sig = grid, P, Kc, raw_l, pre, sig
    return grid.interior(Y)


def _sum_to(a, shape):
    """``a`` (n, C_out) summed to a per-example (n, 1, 1, C_out) or shared (1, 1, 1, C_out) shape."""
    return (a if shape[0] == a.shape[0] else a.sum(axis=0, keepdims=True)).reshape(shape)


def _grid_grads(g, gam, saved, xp, host):
    r"""From the output gradient ``g`` (n, H, W, C_out): the zero-bordered gradient of the
    convolution on the flat grid (:math:`\gamma\bar z`, made in place), :math:`\sum_{ij}\bar z` and
    :math:`\sum_{ij}\bar z\,(k\star x)` per example, (n, C_out) each (the second None without FiLM)."""
    raw, grid = saved.raw, saved.grid  # raw, pre and sig as lines (n, H+1, W_p C_out): Grid.lines
    n, R, Co = g.shape[0], grid.R, g.shape[3]
    Gp = grid.pad(g, xp)
    G = grid.lines(Gp)
    zsum = xp.empty((n, Co), dtype=g.dtype)
    zdot = None if gam is None else xp.empty((n, Co), dtype=g.dtype)
    gam_l = None if gam is None else grid.per_line(gam, xp)
    pieces = _pieces(n, R * Co * g.dtype.itemsize, host)
    scratch = xp.empty((pieces[0][1],) + raw.shape[1:], dtype=g.dtype)
    ones = xp.ones((R,), dtype=g.dtype)
    for e0, e1 in pieces:
        Gc, z = G[e0:e1], saved.pre[e0:e1]
        sg = saved.sig[e0:e1]
        t = xp.subtract(1.0, sg, out=scratch[:e1 - e0])  # 1 - σ(z): no exponential (module docstring)
        t *= z
        t += 1.0
        t *= sg  # SiLU'(z) = σ(z)(1 + z (1 - σ(z)))
        Gc *= t  # z̄
        # sums over the grid as products with a vector of ones: BLAS, ~15x numpy's middle-axis sum
        xp.matmul(ones, Gc.reshape(e1 - e0, R, Co), out=zsum[e0:e1])
        if gam is not None:
            xp.multiply(Gc, raw[e0:e1], out=t)
            xp.matmul(ones, t.reshape(e1 - e0, R, Co), out=zdot[e0:e1])
            Gc *= _rows(gam_l, e0, e1)
    return Gp, zsum, zdot


def _conv_grads(Gp, h, K, skip, up, saved, argnums, xp):
    r"""The gradients of the convolution's inputs from its zero-bordered gradient ``Gp`` on the flat
    grid: ``{0: h̄, 5: skip̄, 1: K̄}`` for the wanted argument numbers."""
    Ch, Co, grid, out = h.shape[3], K.shape[1], saved.grid, {}
    if not up:
        if 0 in argnums or 5 in argnums:
            D = grid.input_grad(Gp, K, saved.P.shape[1], xp)
            out[0], out[5] = assembly_adjoint(grid.interior(D), Ch, False)
        if 1 in argnums:
            out[1] = grid.kernel_grad(saved.P, Gp, xp)
        return out
    K9 = K.reshape(9, K.shape[0] // 9, Co)
    out[0], dKh = upsampled_correlation_grads(grid.interior(Gp), saved.Ph, K9[:, :Ch], 0 in argnums, 1 in argnums,
                                              xp)
    if 5 in argnums:
        out[5] = grid.interior(grid.input_grad(Gp, saved.Kc, skip.shape[3], xp))
    if 1 in argnums:
        dK = xp.empty(K9.shape, dtype=K.dtype)
        dK[:, :Ch] = dKh
        if skip is not None:
            dK[:, Ch:] = grid.kernel_grad(saved.P, Gp, xp).reshape(9, skip.shape[3], Co)
        out[1] = dK.reshape(K.shape)
    return out


def _block_vjp(argnums, ans, args, kwargs):
    h, K, b, gamma, beta, skip, up, saved = args
    bk = backends.of(h, K)
    xp, Co = bk.xp, K.shape[1]
    gam = None if gamma is None else gamma.reshape(gamma.shape[0], 1, Co)

    def vjp(g):
        Gp, zsum, zdot = _grid_grads(g, gam, saved, xp, bk.host_memory)
        conv = _conv_grads(Gp, h, K, skip, up, saved, argnums, xp)
        out = []
        for k in argnums:
            if k in (0, 1, 5):
                out.append(conv[k])
            elif k == 2:
                out.append((zsum if gam is None else zsum * gam.reshape(-1, Co)).sum(axis=0))
            elif k == 3:
                out.append(_sum_to(zdot + b * zsum, gamma.shape))
            else:
                out.append(_sum_to(zsum, beta.shape))
        return tuple(out)

    return vjp


defvjp_argnums(_block, _block_vjp)


def _check_arguments(h, K, b, gamma, beta, skip, upsample):
    """Every bad argument named before any work: arrays of the backend, 4-d maps, one float dtype,
    shapes that fit together."""
    vals = {"h": getval(h), "K": getval(K), "b": getval(b), "gamma": getval(gamma), "beta": getval(beta),
            "skip": getval(skip)}
    for name, v in vals.items():
        if v is None and name in ("h", "K", "b"):
            raise TypeError(f"{name} must be an array, got None")
        if v is not None and not (hasattr(v, "shape") and hasattr(v, "dtype")):
            raise TypeError(f"{name} must be an array of the backend (numpy.asarray or backend.asarray it), "
                            f"got {type(v).__name__}")
    hv, sv = vals["h"], vals["skip"]
    for name, v in vals.items():  # mixed float dtypes compute in the wider one, as the operations composed
        if v is not None and str(v.dtype) not in ("float32", "float64"):
            raise TypeError(f"{name} must be float32 or float64, got {v.dtype}")
    if hv.ndim != 4 or (sv is not None and sv.ndim != 4):
        raise ValueError(f"h and skip must be maps (n, H, W, C), got h {tuple(hv.shape)}"
                         + ("" if sv is None else f" and skip {tuple(sv.shape)}"))
    side = (2 * hv.shape[1], 2 * hv.shape[2]) if upsample else tuple(hv.shape[1:3])
    C, Co = hv.shape[3] + (0 if sv is None else sv.shape[3]), vals["K"].shape[-1]
    if sv is not None and tuple(sv.shape[:3]) != (hv.shape[0], *side):
        raise ValueError(f"skip must have shape ({hv.shape[0]}, {side[0]}, {side[1]}, C_s), got {tuple(sv.shape)}")
    if tuple(vals["K"].shape) != (9 * C, Co) or tuple(vals["b"].shape) != (Co,):
        raise ValueError(f"K must be (9C, C_out) = ({9 * C}, {Co}) and b ({Co},), got {tuple(vals['K'].shape)} "
                         f"and {tuple(vals['b'].shape)}")
    for name in ("gamma", "beta"):
        v = vals[name]
        if v is not None and (v.ndim != 4 or tuple(v.shape[1:]) != (1, 1, Co) or v.shape[0] not in (1, hv.shape[0])):
            raise ValueError(f"{name} must have shape (n, 1, 1, {Co}) or (1, 1, 1, {Co}), got {tuple(v.shape)}")


def conv_film_silu(h, K, b, gamma, beta, skip=None, upsample=False):
    r""":math:`\mathrm{SiLU}\big(\gamma\odot(k\star x + b) + \beta\big)`, :math:`x = [\,\mathrm{up}(h),\
    \mathrm{skip}\,]` (the module docstring): the values of
    ``silu((conv3x3(h, K, b, skip=skip, upsample=upsample)) * gamma + beta)`` in one primitive.

    ``h`` (n, H, W, C_h), ``K`` (9C, C_out) and ``b`` (C_out,) as in
    :func:`refscore.models.conv.conv3x3` (stride 1); ``gamma`` (None for 1) and ``beta`` (None for 0)
    of shape (n, 1, 1, C_out) or (1, 1, 1, C_out); float32 or float64 (mixed: the wider). Returns
    (n, H', W', C_out); differentiable (reverse mode, first order) in every array argument."""
    from autograd.tracer import isbox

    _check_arguments(h, K, b, gamma, beta, skip, upsample)
    if beta is None:
        beta = backends.of(getval(h)).xp.zeros((1, 1, 1, getval(K).shape[1]), dtype=getval(h).dtype)
    keep = any(isbox(a) for a in (h, K, b, gamma, beta, skip))
    return _block(h, K, b, gamma, beta, skip, bool(upsample), _Saved(keep))
