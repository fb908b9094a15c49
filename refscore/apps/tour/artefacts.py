r"""The tour's shared artefacts on the 8-Gaussian ring: its exact law, its data, MLP energies
trained by DSM, SSM-VR and persistent CD, and a noise-conditional score network trained the NCSN
way. Each is asked for through :meth:`TourContext.once`, so it is computed once, on first use."""
from __future__ import annotations

from ... import datasets, losses
from ...models import nn
from ...training import train
from ...energies import MLPEnergy
from ..._deprecation import moved
from .. import digits_common

__all__ = ["ring", "ring_data", "energy_model", "ncsn_model"]

HIDDEN, NCSN_HIDDEN = (64, 64), (128, 128)
# the noise-conditional net's activation. With softplus, only 75% of the annealed-Langevin samples
# (seed 0) lay within 3 std of a mode, while the same sampler with the exact perturbed scores put
# 99.2% there (97.2% without the final Tweedie step): the sampler, σ_L and the denoise were sound,
# the net's score at the small levels was not. Softplus units bend once, smoothly; swish units can
# bump, which the sharp per-mode fields at small σ need: 94.5% in-mode at the same 3000 steps and
# rate, SW2 0.101 vs ULA-exact's 0.123 (a cosine-decayed rate did worse for both: 65% and 86%)
NCSN_ACTIVATION = "swish"


def ring(ctx):
    r"""The exact law of the data: :func:`refscore.datasets.gaussian_mixture_law`, eight Gaussians
    on a circle,

    .. math:: p(x) = \tfrac18\sum_k\mathcal N(x;\ \mu_k,\ 0.15^2 I),\quad |\mu_k| = 2
    """
    return ctx.once("ring", lambda c: datasets.gaussian_mixture_law(backend=c.bk.name))


def ring_data(ctx):
    r"""The training sample :math:`x^{(i)}\sim p`, ``(n_data, 2)``, from ``datasets.make``."""
    return ctx.once("ring data", lambda c: datasets.make("gaussian_mixture", c.size("n_data"), c.rng("data")))


def _train_energy(ctx, name):
    model = MLPEnergy(2, HIDDEN, rng=ctx.rng(f"init {name}"))
    data, rng, steps = ring_data(ctx), ctx.rng(f"train {name}"), ctx.size("steps")
    opt = train.adam(3e-3)
    if name == "DSM":
        loss = lambda p, b, r: losses.dsm(model.score_fn(p), b, 0.15, r)
    elif name == "SSM-VR":
        loss = lambda p, b, r: losses.ssm(model.score_fn(p), b, r, variance_reduced=True)
    else:
        ctx.log("  training by persistent CD")
        model.params, hist = train.fit_cd(model, data, rng, k=20, step_size=0.005, persistent=True,
                                          n_steps=steps // 2, batch_size=128, optimizer=opt)
        return model, hist["loss"]
    ctx.log(f"  training by {name}")
    model.params, hist = train.fit(loss, model.params, data, rng, n_steps=steps, batch_size=128, desc=name,
                                   optimizer=opt)
    return model, hist["loss"]


def energy_model(ctx, name):
    r"""An MLP energy :math:`E_\theta` trained on the ring by ``name`` in {"DSM", "SSM-VR", "CD"}:
    DSM at σ = 0.15 (Vincent 2011, eq. 11), sliced SM with variance reduction (Song et al. 2019,
    eq. 8), or persistent contrastive divergence with 20 Langevin steps (seed 002_…, CD).
    Returns ``(model, losses per step)``.

    .. math:: \mathrm{DSM}_\sigma(\theta) = \tfrac12\mathbb E\big\|s_\theta(x+\sigma z) + z/\sigma\big\|^2
    """
    return ctx.once(f"energy {name}", lambda c: _train_energy(c, name))


def _train_ncsn(ctx):
    data = ring_data(ctx)
    # d = 2 is below technique 2's rule (it needs d >= 9), so L is given; σ_L = 0.05 is a third of
    # the modes' width 0.15 (smaller levels only spend training on noise the data already has)
    schedule = nn.ncsnv2_schedule(ctx.host(data), sigma_min=0.05, L=ctx.size("ncsn_levels"),
                                  T=ctx.size("ncsn_steps_each"))
    sigmas = schedule.sigmas
    net = nn.NoiseConditionalScoreNet(2, NCSN_HIDDEN, rng=ctx.rng("init NCSN"), data=ctx.host(data),
                                      activation=NCSN_ACTIVATION)
    loss = lambda p, b, r: losses.ncsn(net.score_fn(p), b, sigmas, r, levels="sample")
    steps = ctx.size("ncsn_steps")
    ctx.log(f"  training the noise-conditional net ({len(sigmas)} levels, {steps} steps)")
    params, hist = train.fit(loss, net.params, data, ctx.rng("train NCSN"), n_steps=steps, batch_size=256,
                             desc="NCSN", optimizer=train.adam(3e-3), ema=digits_common.ema_decay(steps))
    net.params = hist.get("ema_params", params)
    return net, schedule, hist["loss"]


def ncsn_model(ctx):
    r"""A :class:`~refscore.models.nn.NoiseConditionalScoreNet` trained on the ring the NCSN way: σ
    levels from :func:`refscore.models.schedules.ncsnv2_schedule` (Song & Ermon 2020, techniques 1–2), one
    level per example (``losses.ncsn(levels="sample")``), λ(σ) = σ², EMA of the parameters
    (technique 5). Returns ``(net, schedule, losses per step)``.

    .. math:: \mathcal L(\theta) = \frac1L\sum_{i=1}^L \sigma_i^2\,\mathrm{DSM}_{\sigma_i}(\theta)
              \quad\text{(Song \& Ermon 2019, eq. 6)}
    """
    return ctx.once("NCSN", _train_ncsn)


__getattr__ = moved(__name__, {"ema_decay": ("refscore.apps.digits_common.ema_decay", digits_common.ema_decay)})
