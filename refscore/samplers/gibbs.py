r"""Block Gibbs sampling for the Gaussian–Bernoulli RBM (seed 003_…, §11.1: "Gibbs, Langevin,
and Metropolis–Hastings"; Hinton 2010, §13.2):

.. math:: h\mid x \sim \mathrm{Bernoulli}\big(\sigma(c + W^\top x)\big),\qquad
          x\mid h \sim \mathcal N(b + W h,\ I)
"""
from __future__ import annotations


from .. import backends
from ..models.activations import sigmoid
from .._validation import check_points, check_positive_int
from .chain import Divergence, report_divergence, run_chain, runaway_radius, sampler_info


def rbm_gibbs_step(rbm, x, rng):
    r"""One sweep :math:`h\mid x`, then :math:`x\mid h` (unvalidated, no host sync). Returns ``(x, h)``.

    .. math:: h\sim\mathrm{Bernoulli}(\sigma(c+W^\top x)),\qquad x\sim\mathcal N(b+Wh, I)
    """
    bk = backends.of(x)
    p_h = sigmoid(x @ rbm.W + rbm.c)  # (n, m)
    h = (bk.uniform(rng, p_h.shape, x.dtype) < p_h).astype(x.dtype)
    x = rbm.b + h @ rbm.W.T + bk.normal(rng, x.shape, x.dtype)
    return x, h


def rbm_gibbs(rbm, x0, n_steps, rng, keep_every=None, progress=False):
    r"""Run block Gibbs chains on an :class:`~refscore.energies.GaussianBernoulliRBM`:

    .. math:: h\mid x \sim \mathrm{Bernoulli}\big(\sigma(c + W^\top x)\big),\quad
              x\mid h \sim \mathcal N(b + W h, I)\qquad\text{(Hinton 2010, §13.2)}

    Returns ``(x, info)``: the sampler record (:data:`refscore.samplers.SAMPLER_INFO`) plus ``hidden``
    (the last h). A chain diverges when a coordinate is non-finite or exceeds
    :math:`R = 10^6\max(1, \max_{ij}|x^{(0)}_{ij}|, \max_i |b_i| + \sum_{ij}|W_{ij}|)`.
    """
    x0 = check_points(x0, rbm.dim, "x0")
    n_steps = check_positive_int(n_steps, "n_steps")
    bk = backends.of(x0, rbm.W)
    bk.check_rng(rng)
    xp = bk.xp
    radius = runaway_radius(x0, 1.0 + float(xp.max(xp.abs(rbm.b)) + xp.sum(xp.abs(rbm.W))))

    watch = Divergence(x0, radius, n_steps)

    def step(carry):
        x, h = rbm_gibbs_step(rbm, carry[0], rng)
        return watch.update(x), h

    (x, h), traj, _ = run_chain(step, (x0, None), n_steps, keep_every, "Gibbs", progress, position=lambda c: c[0])
    info = sampler_info(n_steps, watch.bad, traj, hidden=h)
    report_divergence(info, "Gibbs", "check the RBM parameters")
    return x, info
