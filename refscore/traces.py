r"""Trace estimators for :math:`\operatorname{tr}\nabla_x s(x)`: exact (d reverse passes) and
Hutchinson's (M reverse passes). Implicit and sliced score matching (:mod:`refscore.losses`) and
the probability-flow likelihood (:mod:`refscore.sde`) all take the divergence of a score from
here (seed 002_…, "Second term is nasty", "Hutchinson trace estimator").
"""
from __future__ import annotations

import autograd.numpy as anp
from autograd import make_vjp
from autograd.tracer import getval

from . import backends

__all__ = ["jacobian_trace", "hutchinson_trace", "check_score_shape"]

_UNTRACEABLE = ("{who} cannot be differentiated by autograd: {why}. Write it with autograd.numpy "
                "(`import autograd.numpy as anp`, then anp.exp, anp.sum, ...), not numpy/np.asarray, "
                "which turn autograd's traced arrays into object arrays")


def check_score_shape(s, x, who="score_fn"):
    """``s`` if it has the shape of ``x`` (a score maps (n, d) to (n, d)), else a ``ValueError``
    naming ``who`` and both shapes (never a silent broadcast)."""
    if tuple(getval(s).shape) != tuple(getval(x).shape):
        raise ValueError(f"{who} must map (n, d) to (n, d); got {tuple(getval(s).shape)} "
                         f"for input {tuple(getval(x).shape)}")
    return s


def _traced(score_fn, who="score_fn"):
    """``score_fn`` for :func:`autograd.make_vjp`, refusing with a clear TypeError what plain NumPy
    does to autograd's traced arrays (an object array, or "setting an array element with a
    sequence") instead of letting it fail far away or give a zero derivative."""
    def f(x):
        try:
            out = score_fn(x)
        except ValueError as e:
            if "setting an array element with a sequence" in str(e):
                raise TypeError(_UNTRACEABLE.format(who=who, why=f"NumPy failed on a traced array ({e})")) from None
            raise
        if getattr(getval(out), "dtype", None) == object:
            raise TypeError(_UNTRACEABLE.format(who=who, why="it returned an array of dtype object"))
        return out
    return f


def jacobian_trace(score_fn, x, chunk=None):
    r"""Exact :math:`\operatorname{tr}\nabla_x s(x)` of every row, with its value :math:`s(x)`.

    .. math:: \operatorname{tr}\nabla_x s(x) = \sum_{i=1}^d e_i^\top\big(\nabla_x s(x)\big)^\top e_i

    ``chunk=None``: one forward pass and **d reverse passes** (vector–Jacobian products with the
    basis vectors :math:`e_i`, each over the whole batch at once: rows do not interact). This is
    the cost that sliced score matching avoids (seed 002_…, "Second term is nasty").

    ``chunk=c``: the same sum with the d passes batched: each row is replicated c times, the
    copies take one VJP with c rows of the identity as cotangent, and the diagonal entries are
    summed (:func:`_replicated_trace`). Exact for any ``score_fn`` whose rows do not interact
    (every network here); for a small batch it is several times faster (one 784-pixel MNIST row
    through :class:`refscore.models.ConvScoreNet`: 6.4 s against 17 s on 2 CPU cores), at the
    memory of c rows per pass.

    ``score_fn`` must be written with ``autograd.numpy``: one written with plain NumPy (for
    instance ``np.asarray(x)``) is refused with a ``TypeError`` that says so.

    Returns
    -------
    s : (n, d), trace : (n,)
    """
    if chunk is not None:
        return _replicated_trace(score_fn, x, int(chunk))
    vjp, s = make_vjp(_traced(score_fn))(x)
    check_score_shape(s, x)
    n, d = getval(x).shape
    xp = backends.of(getval(x)).xp
    eye = xp.eye(d, dtype=getval(x).dtype)
    trace = 0.0
    for i in range(d):
        e_i = xp.zeros((n, d), dtype=getval(x).dtype) + eye[i]  # (n, d), every row e_i
        trace = trace + vjp(e_i)[:, i]
    return s, trace


def _replicated_trace(score_fn, x, chunk):
    r""":func:`jacobian_trace` by replicated rows. The n·d pairs (row r, coordinate i) are taken
    ``chunk`` at a time: the block's copies :math:`X_j = x_{r_j}` (m, d) take one VJP with cotangent
    rows :math:`e_{i_j}^\top`, whose :math:`(j, i_j)` entries are :math:`\partial_{i_j}s_{i_j}(x_{r_j})`;
    they are summed per row. Not for differentiating through (the values are detached)."""
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of replicated rows, got {chunk}")
    xv = getval(x)
    n, d = xv.shape
    xp = backends.of(xv).xp
    s = check_score_shape(_traced(score_fn)(xv), xv)
    trace = xp.zeros((n,), dtype=xv.dtype)
    for a in range(0, n * d, chunk):
        pair = xp.arange(a, min(a + chunk, n * d))
        rows, cols, j = pair // d, pair % d, xp.arange(pair.shape[0])
        cot = xp.zeros((pair.shape[0], d), dtype=xv.dtype)
        cot[j, cols] = 1.0  # (m, d): row j is e_{i_j}
        vjp, _ = make_vjp(_traced(score_fn))(xv[rows])  # (m, d) copies of the rows
        diag = vjp(cot)[j, cols]  # (m,)
        trace = trace + (rows[None, :] == xp.arange(n)[:, None]).astype(xv.dtype) @ diag  # per-row sums
    return s, trace


def hutchinson_trace(score_fn, x, v):
    r"""Hutchinson's estimate of :math:`\operatorname{tr}\nabla_x s(x)` per row, with :math:`s(x)`:

    .. math:: \widehat{\operatorname{tr}} = \frac1M\sum_{m=1}^M v_m^\top\nabla_x s(x)\,v_m,
              \qquad \mathbb E[v v^\top] = I \Rightarrow \mathbb E\,\widehat{\operatorname{tr}} = \operatorname{tr}\nabla_x s

    (Hutchinson 1990; seed 002_…, "Hutchinson trace estimator"). One forward pass and M reverse
    passes for probes ``v`` of shape (M, n, d). Returns ``s`` (n, d) and the estimate (n,).
    """
    vjp, s = make_vjp(_traced(score_fn))(x)
    check_score_shape(s, x)
    quad = sum(anp.sum(vjp(vm) * vm, axis=1) for vm in v)  # vᵀ (∇s)ᵀ v = vᵀ ∇s v
    return s, quad / getval(v).shape[0]
