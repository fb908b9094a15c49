r"""Data-parallel gradients on the host's cores: each minibatch is cut into shards, a pool of
threads takes the gradient of each, and the shards' gradients are averaged with their shares of
the batch. For a loss that is a mean over the batch's rows this is the whole batch's gradient,

.. math:: L(\theta; x_B) = \sum_{s=1}^{S}\frac{|B_s|}{|B|}\,L(\theta; x_{B_s}),\qquad
          \nabla_\theta L(\theta; x_B) = \sum_{s=1}^{S}\frac{|B_s|}{|B|}\,\nabla_\theta L(\theta; x_{B_s}),

(linearity of the gradient; the "synchronous data parallelism" of Dean et al. 2012, on one
machine). NumPy's matrix products and array copies release the GIL, so two threads keep two
cores busy while autograd's Python bookkeeping takes turns; small shards also keep each
thread's working set in cache. Each shard draws its noise from its own generator, seeded by one
draw per shard from the run's generator, so a run is reproducible and resumes bit for bit.

Nested derivatives on threads need autograd's trace stack replaced
(:class:`~refscore.backends.autograd_patches.UniqueTraceStack`, installed with the other autograd
patches when refscore is imported; :mod:`refscore.backends.autograd_patches` says why).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from autograd import value_and_grad

from .._deprecation import moved
from .._validation import check_positive_int
from ..backends import autograd_patches
from ..pytree import tree_map

__all__ = ["ShardedValueAndGrad", "RowThreads", "shard_bounds"]


# deprecated: the trace stack is one of the autograd patches, installed by `import refscore`
__getattr__ = moved(__name__, {
    "UniqueTraceStack": ("refscore.backends.autograd_patches.UniqueTraceStack", autograd_patches.UniqueTraceStack),
    "thread_safe_traces": ("refscore.backends.autograd_patches.install", autograd_patches.install)})


def shard_bounds(n, shards):
    r"""Row boundaries of ``min(shards, n)`` contiguous shards of ``n`` rows, sizes differing by at
    most one: :math:`b_s = \mathrm{round}(s\,n/S)`, :math:`s = 0..S`."""
    k = min(check_positive_int(shards, "shards"), check_positive_int(n, "n"))
    return [(s * n + k // 2) // k for s in range(k + 1)]


class _ThreadPoolOwner:
    """Holds ``self.pool`` (a ``ThreadPoolExecutor`` or None): :meth:`close` and the context manager."""

    pool = None

    def close(self):
        """Stop the worker threads (idempotent)."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ShardedValueAndGrad(_ThreadPoolOwner):
    r"""``(params, batch, rng) -> (value, grads)`` of ``loss_fn`` — a mean over the batch's rows
    — computed shard by shard on ``threads`` threads and combined as in the module docstring.

    With ``shards=1`` it is autograd's ``value_and_grad(loss_fn)`` called on the whole batch with
    ``rng`` itself (no extra draw), so existing runs are unchanged. Use it as a context manager
    or call :meth:`close` to stop the threads.
    """

    def __init__(self, loss_fn, bk, shards=1, threads=1):
        self.vg, self.bk = value_and_grad(loss_fn), bk
        self.shards, self.threads = check_positive_int(shards, "shards"), check_positive_int(threads, "threads")
        self.pool = None
        if self.threads > 1 and self.shards > 1:
            if not autograd_patches.check()["trace_stack"]:
                raise RuntimeError("autograd's trace stack is not refscore's thread-safe one (something replaced "
                                   "autograd.tracer.trace_stack after import refscore); nested derivatives on "
                                   "threads would mix levels: call refscore.backends.autograd_patches.install()")
            self.pool = ThreadPoolExecutor(self.threads)

    def __call__(self, params, batch, rng):
        if self.shards == 1:
            return self.vg(params, batch, rng)
        bounds = shard_bounds(batch.shape[0], self.shards)
        draws = self.bk.to_numpy(self.bk.uniform(rng, (len(bounds) - 1,), "float64"))
        jobs = [(batch[a:b], self.bk.rng(int(u * 2**53)), (b - a) / batch.shape[0])
                for a, b, u in zip(bounds[:-1], bounds[1:], draws)]
        run = lambda job: self.vg(params, job[0], job[1])
        parts = list(self.pool.map(run, jobs) if self.pool else map(run, jobs))
        weights = [w for _, _, w in jobs]
        value = sum(w * v for w, (v, _) in zip(weights, parts))
        grads = tree_map(lambda *gs: sum(w * g for w, g in zip(weights, gs)), *[g for _, g in parts])
        return value, grads


class RowThreads(_ThreadPoolOwner):
    r"""``f(x, c)`` for a function whose rows do not interact (a score network at levels ``c``: a
    float, or an ``(n,)`` array of per-row levels), evaluated as ``threads`` contiguous blocks of
    rows on threads and put back together: the sampler's batch on the host's cores.

    .. math:: f(x, c) = \big[f(x_{B_1}, c_{B_1});\ \dots;\ f(x_{B_S}, c_{B_S})\big]

    Each row's value is the one the whole batch gives, up to the rounding of matrix products of
    another width. ``per_example_sigma`` is passed on from ``f``. With ``threads=1`` it calls ``f``.
    Use it as a context manager or call :meth:`close` to stop the threads.
    """

    def __init__(self, fn, bk, threads=1):
        self.fn, self.bk, self.threads = fn, bk, check_positive_int(threads, "threads")
        self.per_example_sigma = bool(getattr(fn, "per_example_sigma", False))
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def __call__(self, x, c):
        n = x.shape[0]
        if self.pool is None or n < 2:
            return self.fn(x, c)
        per_row = getattr(c, "ndim", 0) == 1
        bounds = shard_bounds(n, self.threads)
        run = lambda ab: self.fn(x[ab[0]:ab[1]], c[ab[0]:ab[1]] if per_row else c)  # noqa: E731
        return self.bk.xp.concatenate(list(self.pool.map(run, zip(bounds[:-1], bounds[1:]))), axis=0)
