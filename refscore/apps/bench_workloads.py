r"""The workloads of ``refscore bench`` (registered in :mod:`refscore.apps.bench`): for each, a
``setup`` building inputs on the chosen backend and dtype, the timed ``run``, and the references
(PyTorch eager on the same device when asked, and refscore-internal baselines).

1. SSM-VR loss + parameter gradient of an MLP energy (d = 2, 128 softplus units), Song et al.
   (2019) eq. 8 with the variance-reduced term; reference PyTorch eager, else exact ISM.
2. ULA on a Gaussian mixture (K = 8, d = 64, 50 steps); references: the naive ``(n, K, d)``
   broadcast score in the same backend, and PyTorch eager.
3. ULA on :math:`\mathcal N(0, I)` in 2-D, 100 000 chains × 100 steps (the TorchEBM-sized
   sampler loop: per-step overhead dominates); reference PyTorch eager with the same update
   :math:`x \leftarrow x + h(-x) + \sqrt{2h}z`.
4. One training step of the MNIST U-Net (batch 64) cut into 2 shards on 2 threads
   (:mod:`refscore.training.shards`); reference: the whole batch in one call on one thread.
"""
from __future__ import annotations

import math
import os

import numpy as onp


# ----- 1. SSM-VR -----
def ssm_setup(ctx):
    """Inputs of the SSM-VR workload: an MLP energy, the data batch and fixed projections."""
    from autograd import grad

    from .. import losses
    from ..energies import MLPEnergy

    bk, dt = ctx.bk, ctx.dtype
    rng = bk.rng(ctx.seed)
    model = MLPEnergy(2, (128, 128), rng=rng, dtype=dt)
    x = bk.normal(rng, (ctx.n_ssm, 2), dt)
    v = bk.normal(rng, (1, ctx.n_ssm, 2), dt)
    g = grad(lambda p: losses.ssm(model.score_fn(p), x, v=v, variance_reduced=True))
    return {"grad": g, "model": model, "x": x}


def ssm_run(state):
    r"""SSM-VR loss and its parameter gradient, :math:`\nabla_\theta\,\mathbb E[v^\top\nabla s_\theta v + \tfrac12\|s_\theta\|^2]`."""
    return state["grad"](state["model"].params)[0]["W"]


def ssm_references(ctx, state):
    """The same loss and gradient in PyTorch eager (when installed), yielded as (name, run, sync)."""
    if ctx.torch is not None:
        yield "PyTorch eager", _torch_ssm(ctx), ctx.torch_sync
        return
    from autograd import grad

    from .. import losses

    m, x = state["model"], state["x"]
    g = grad(lambda p: losses.ism(m.score_fn(p), x))
    yield "refscore exact ISM (d passes)", lambda: g(m.params)[0]["W"], ctx.sync


def _torch_ssm(ctx):
    torch, dev, dtype, n, d, H = ctx.torch, ctx.torch_device, getattr(ctx.torch, ctx.dtype), ctx.n_ssm, 2, 128
    g = torch.Generator(device=dev).manual_seed(ctx.seed)
    Ws = [(torch.randn(a, b, generator=g, device=dev, dtype=dtype) / math.sqrt(a)).requires_grad_()
          for a, b in ((d, H), (H, H), (H, 1))]
    bs = [torch.zeros(b, device=dev, dtype=dtype, requires_grad=True) for b in (H, H, 1)]
    x = torch.randn(n, d, generator=g, device=dev, dtype=dtype)
    v = torch.randn(n, d, generator=g, device=dev, dtype=dtype)

    def run():
        xx = x.clone().requires_grad_()
        h = xx
        for W, b in zip(Ws[:-1], bs[:-1]):
            h = torch.nn.functional.softplus(h @ W + b)
        E = (h @ Ws[-1] + bs[-1])[:, 0]
        s = -torch.autograd.grad(E.sum(), xx, create_graph=True)[0]
        jv = torch.autograd.grad((s * v).sum(), xx, create_graph=True)[0]
        loss = ((jv * v).sum(1) + 0.5 * (s * s).sum(1)).mean()
        return torch.autograd.grad(loss, Ws + bs, allow_unused=True)[0]  # the output bias leaves s unchanged

    return run


# ----- 2. ULA on a Gaussian mixture -----
K, D_GMM, STEPS_GMM = 8, 64, 50


def gmm_ula_setup(ctx):
    """Inputs of the GMM ULA workload: the K=8, d=64 mixture, starting points and generator."""
    from ..energies import GaussianMixture

    bk, dt = ctx.bk, ctx.dtype
    hr = onp.random.default_rng(ctx.seed)
    gmm = GaussianMixture(onp.full(K, 1 / K), hr.normal(0, 3, (K, D_GMM)), onp.ones(K), backend=bk.name, dtype=dt)
    rng = bk.rng(ctx.seed)
    return {"gmm": gmm, "x0": bk.normal(rng, (ctx.n_gmm, D_GMM), dt), "rng": rng}


def gmm_ula_run(state):
    r"""ULA steps :math:`x' = x + h\,s(x) + \sqrt{2h}\,z` with the mixture's closed-form score."""
    from .. import samplers

    return samplers.langevin(state["gmm"].score, state["x0"], 0.01, STEPS_GMM, state["rng"])[0]


def gmm_ula_references(ctx, state):
    """References: the (n, K, d) broadcast score in NumPy, and PyTorch eager when installed."""
    from .. import samplers

    xp, gmm = ctx.bk.xp, state["gmm"]
    means, logw = gmm.means, xp.log(gmm.weights)

    def naive_score(y):  # the (n, K, d) broadcast the matrix-product form avoids
        diff = y[:, None, :] - means[None, :, :]
        logp = logw - 0.5 * xp.sum(diff * diff, axis=2)
        r = xp.exp(logp - logp.max(1, keepdims=True))
        r = r / r.sum(1, keepdims=True)
        return -xp.sum(r[:, :, None] * diff, axis=1)

    yield ("(n,K,d) broadcast score", lambda: samplers.langevin(naive_score, state["x0"], 0.01, STEPS_GMM,
                                                                 state["rng"])[0], ctx.sync)
    if ctx.torch is not None:
        yield "PyTorch eager", _torch_gmm_ula(ctx), ctx.torch_sync


def _torch_gmm_ula(ctx):
    torch, dev, dtype, n = ctx.torch, ctx.torch_device, getattr(ctx.torch, ctx.dtype), ctx.n_gmm
    g = torch.Generator(device=dev).manual_seed(ctx.seed)
    mu = torch.randn(K, D_GMM, generator=g, device=dev, dtype=dtype) * 3
    prec = torch.ones(K, D_GMM, device=dev, dtype=dtype)
    logw = torch.full((K,), -math.log(K), device=dev, dtype=dtype)
    x0 = torch.randn(n, D_GMM, generator=g, device=dev, dtype=dtype)
    pm, mpm = prec * mu, (mu * mu * prec).sum(1)

    def run():
        x = x0
        for _ in range(STEPS_GMM):
            quad = (x * x) @ prec.T - 2 * x @ pm.T + mpm
            r = torch.softmax(logw - 0.5 * quad, dim=1)
            s = r @ pm - x * (r @ prec)
            x = x + 0.01 * s + math.sqrt(0.02) * torch.randn(n, D_GMM, generator=g, device=dev, dtype=dtype)
        return x

    return run


# ----- 3. ULA on N(0, I), many chains -----
H_GAUSS = 0.1


def gauss_ula_setup(ctx):
    """Inputs of the 2-D N(0, I) ULA workload: 100 000 chains and their generator."""
    from ..energies import Gaussian

    bk, dt = ctx.bk, ctx.dtype
    g = Gaussian([0.0, 0.0], onp.eye(2), backend=bk.name, dtype=dt)
    rng = bk.rng(ctx.seed)
    return {"g": g, "x0": bk.normal(rng, (ctx.n_chains, 2), dt), "rng": rng, "steps": ctx.ula_steps}


def gauss_ula_run(state):
    r"""ULA on :math:`\mathcal N(0, I)`: :math:`x' = (1-h)x + \sqrt{2h}\,z` via ``samplers.langevin``."""
    from .. import samplers

    return samplers.langevin(state["g"].score, state["x0"], H_GAUSS, state["steps"], state["rng"])[0]


def gauss_ula_references(ctx, state):
    """The same chains in PyTorch eager (when installed): the TorchEBM-sized reference."""
    if ctx.torch is None:
        return
    torch, dev, dtype = ctx.torch, ctx.torch_device, getattr(ctx.torch, ctx.dtype)
    gen = torch.Generator(device=dev).manual_seed(ctx.seed)
    x0 = torch.randn(ctx.n_chains, 2, generator=gen, device=dev, dtype=dtype)
    c = math.sqrt(2 * H_GAUSS)

    def run():
        x = x0
        for _ in range(ctx.ula_steps):
            s = -x  # the score of N(0, I)
            x = x + H_GAUSS * s + c * torch.randn(x.shape, generator=gen, device=dev, dtype=dtype)
        return x

    yield "PyTorch eager", run, ctx.torch_sync


# ----- 4. the MNIST U-Net's training step on the host's cores -----
def unet_step_setup(ctx):
    r"""Inputs of the U-Net step: the MNIST command's :class:`~refscore.models.ConvScoreNet`
    (C = 16, dense bottleneck 128, FiLM) and its NCSN loss with log-normal levels on a batch of
    ``ctx.n_unet`` random 28×28 rows; the sharded gradient uses 2 shards on up to 2 threads
    (``refscore images mnist``'s setting)."""
    from .. import losses
    from ..models import ConvScoreNet, lognormal_level_index
    from ..training.shards import ShardedValueAndGrad

    bk, dt = ctx.bk, ctx.dtype
    rng = bk.rng(ctx.seed)
    x = bk.uniform(rng, (ctx.n_unet, 784), dt)
    net = ConvScoreNet(28, 16, rng=rng, data=x, global_width=128, film=True, dtype=dt)
    sigmas = bk.asarray(onp.geomspace(16.0, 0.01, 95), dtype=dt)

    def loss(p, b, r):
        k = lognormal_level_index(sigmas, b.shape[0], r, math.log(net.sigma_data), 1.2)
        return losses.ncsn(net.score_fn(p), b, sigmas, r, levels="sample", weighting=net.loss_weight, level_index=k)

    threads = 1 if ctx.gpu else min(2, os.cpu_count() or 1)
    return {"net": net, "x": x, "rng": rng, "whole": ShardedValueAndGrad(loss, bk),
            "sharded": ShardedValueAndGrad(loss, bk, 1 if ctx.gpu else 2, threads)}


def unet_step_run(state):
    r"""One sharded gradient of the batch: :math:`\sum_s \tfrac{|B_s|}{|B|}\nabla_\theta L(x_{B_s})`
    (:mod:`refscore.training.shards`)."""
    return state["sharded"](state["net"].params, state["x"], state["rng"])[0]


def unet_step_references(ctx, state):
    """The same gradient of the whole batch in one call on one thread (``shards=1``); with torch on
    the host, also the same network's step in PyTorch eager on as many threads as the shards use
    (:func:`refscore.apps.bench_unet.torch_twin`, parity checked first)."""
    yield "whole batch, one thread", lambda: state["whole"](state["net"].params, state["x"], state["rng"])[0], ctx.sync
    if ctx.torch is not None and not ctx.gpu:
        from .bench_unet import unet_setup

        torch, twin, threads = ctx.torch, unet_setup(ctx)["twin"], state["sharded"].threads

        def on_threads():
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                return twin.step()
            finally:
                torch.set_num_threads(before)

        yield f"PyTorch eager, {threads} threads", on_threads, ctx.torch_sync
