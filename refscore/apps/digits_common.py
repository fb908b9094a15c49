r"""What the digits applications share: the tour's section 9 (:mod:`refscore.apps.tour.images`),
``refscore images mnist`` (:mod:`refscore.apps.images_cli`) and the bits/dim tables
(:mod:`refscore.apps.bits_per_dim`) — the EMA decay rule, one BLAS thread for small matrices, and
the 8×8 digits net's recipe (its width, rate, warm-up and batch, and :func:`fit_digits_net`).

One home, so the tour and the tables train the same net, and no app reaches into another's
modules for them.

.. math:: \beta = \min(0.999,\ 1 - 10/n)
"""
from __future__ import annotations

import contextlib

__all__ = ["ema_decay", "one_blas_thread", "fit_digits_net", "DIGITS_HIDDEN", "DIGITS_LR", "DIGITS_WARMUP",
           "DIGITS_BATCH", "DIGITS_SIGMA_MIN"]

#: the digits net's two swish hidden layers
DIGITS_HIDDEN = (384, 384)
# Adam's peak rate under a cosine decay with a short linear warm-up: the decay to zero lets the
# last thousand steps settle, which raised the classifier's confidence of the samples from 0.83
# (a constant 2e-3) to 0.87 at the same cost, with the tour's sampler, over several sampling seeds
DIGITS_LR, DIGITS_WARMUP = 3e-3, 200
# examples per step: 256 instead of 128 halves the variance of the one-level-per-example gradient;
# over 10 sampling seeds of one trained net, the classifier's confidence went from mean 0.851 (min 0.818)
# to 0.863 (min 0.848) at the same 6000 steps (10000 steps at 128 gave 0.864, min 0.821; 4000 at 256
# with the tour's 4x step 0.856, min 0.832). It costs CPU: the section took 63 s instead of 38 s
DIGITS_BATCH = 256
#: σ_L of the digits net's NCSNv2 levels (pixels in units of 1/16)
DIGITS_SIGMA_MIN = 0.02


def ema_decay(n_steps):
    r"""EMA decay for a run of ``n_steps``: averages over about the last tenth of the run, at most
    1000 steps (Song & Ermon 2020, technique 5, use 0.999):

    .. math:: \beta = \min(0.999,\ 1 - 10/n)
    """
    return min(0.999, 1.0 - 10.0 / max(n_steps, 20))


@contextlib.contextmanager
def one_blas_thread():
    r"""The apps' matrices are small (batches of 64-256 rows, widths <= 384): one BLAS thread
    does them faster than several threads spinning for work, and halves the CPU time on 2 cores.
    Uses threadpoolctl where installed (scikit-learn brings it), else changes nothing.

    .. math:: n_{\text{BLAS threads}} = 1
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


def fit_digits_net(xtr, schedule, init_rng, fit_rng, steps, data=None, progress_bar=True):
    r"""The digits net of the tour's section 9, trained: a
    :class:`refscore.models.nn.NoiseConditionalScoreNet` (64 → 384 → 384, swish) on the host rows
    ``xtr`` (:math:`k/16`) at the levels ``schedule.sigmas``, one level per example
    (``ncsn(levels="sample")``, Song & Ermon 2019, eq. 6), ``steps`` steps of :data:`DIGITS_BATCH`
    rows, Adam at :data:`DIGITS_LR` with a cosine decay and warm-up, EMA of the parameters
    (:func:`ema_decay`). ``init_rng`` draws the initial weights, ``fit_rng`` the batches; ``data``
    is ``xtr`` on the training backend (default ``xtr``). Returns ``(net, history)``, the net
    holding the EMA parameters.

    .. math:: \mathcal L(\theta) = \frac1n\sum_{i=1}^n \tfrac12\,\sigma_{l_i}^2
              \Big\|s_\theta(x_i+\sigma_{l_i} z_i,\sigma_{l_i})+\frac{z_i}{\sigma_{l_i}}\Big\|^2
    """
    from .. import losses
    from ..models import nn
    from ..training import fit_extras, train

    net = nn.NoiseConditionalScoreNet(64, DIGITS_HIDDEN, rng=init_rng, activation="swish", data=xtr)
    loss = lambda p, b, r: losses.ncsn(net.score_fn(p), b, schedule.sigmas, r, levels="sample")  # noqa: E731
    params, hist = train.fit(loss, net.params, xtr if data is None else data, fit_rng, n_steps=steps,
                             batch_size=DIGITS_BATCH, desc="digits", optimizer=train.adam(DIGITS_LR),
                             ema=ema_decay(steps), progress_bar=progress_bar,
                             lr_schedule=fit_extras.cosine_schedule(DIGITS_LR, steps,
                                                                    warmup=min(DIGITS_WARMUP, steps // 10)))
    net.params = hist.get("ema_params", params)
    return net, hist
