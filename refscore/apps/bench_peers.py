r"""``refscore bench --peers``: ULA on :math:`\mathcal N(0, I)` in 2-D, refscore side by side with
the EBM libraries a user would otherwise pick, timed in one process (issue 25).

Every peer is optional: it is imported only here, timed where it is installed and skipped with
the reason (and the ``pip install`` line) where it is not; none is a refscore dependency. Each
runs the same chains (n × 2, T steps of size h, from the same kind of start) with its own
Langevin sampler and its own random numbers:

* PyTorch eager — the update written out, :math:`x \leftarrow x + h(-x) + \sqrt{2h}\,z`;
* ebmkit — ``ebm.samplers.LangevinDynamics(step_size=h)`` on :math:`E(x)=\tfrac12\|x\|^2`
  (its gradient by torch autograd, as its users run it);
* TorchEBM — ``torchebm.samplers.LangevinDynamics`` on ``torchebm.core.GaussianModel(0, I)``
  with ``noise_scale=1`` (noise :math:`\sqrt{2h}\,z`);
* blackjax — ``blackjax.mcmc.diffusions.overdamped_langevin`` vmapped over chains and scanned
  over steps under ``jax.jit`` (compiled once before timing).

Time ratio = peer time / refscore time, > 1 means refscore is faster. The "fastest peer" is the
fastest of the three libraries; PyTorch eager is the hand-written reference, not a peer.
"""
from __future__ import annotations

import json
import math
import os

H, D = 0.1, 2


def _torch(ctx):
    import torch

    dtype, dev = getattr(torch, ctx.dtype), ("cuda" if ctx.gpu else "cpu")
    gen = torch.Generator(device=dev).manual_seed(ctx.seed)
    return torch, dtype, dev, gen, torch.randn(ctx.n_chains, D, generator=gen, device=dev, dtype=dtype)


def pytorch_eager(ctx):
    r"""The ULA update written out in PyTorch eager."""
    torch, dtype, dev, gen, x0 = _torch(ctx)
    c = math.sqrt(2 * H)

    def run():
        x = x0
        for _ in range(ctx.ula_steps):
            x = x + H * (-x) + c * torch.randn(x.shape, generator=gen, device=dev, dtype=dtype)
        return x

    return run


def ebmkit(ctx):
    r"""ebmkit's unadjusted Langevin sampler on the energy ½||x||²."""
    from ebm.samplers import LangevinDynamics

    x0 = _torch(ctx)[-1]
    sampler = LangevinDynamics(step_size=H, steps=ctx.ula_steps)
    return lambda: sampler.sample(lambda x: 0.5 * (x * x).sum(1), x0)


def torchebm(ctx):
    r"""TorchEBM's LangevinDynamics on its GaussianModel(0, I)."""
    from torchebm.core import GaussianModel
    from torchebm.samplers import LangevinDynamics

    torch, dtype, dev, gen, x0 = _torch(ctx)
    model = GaussianModel(torch.zeros(D, dtype=dtype), torch.eye(D, dtype=dtype), dtype=dtype, device=dev)
    sampler = LangevinDynamics(model, step_size=H, noise_scale=1.0, dtype=dtype, device=dev)
    return lambda: sampler.sample(x=x0, n_steps=ctx.ula_steps, generator=gen)


def blackjax(ctx):
    r"""blackjax's overdamped Langevin diffusion, vmapped over chains, scanned, jitted."""
    import blackjax.mcmc.diffusions as diffusions
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", ctx.dtype == "float64")  # JAX computes in float32 unless told
    h = jnp.asarray(H, dtype=ctx.dtype)
    logdensity = lambda x: -0.5 * jnp.sum(x * x)  # noqa: E731
    step = diffusions.overdamped_langevin(jax.value_and_grad(logdensity))
    x0 = jax.random.normal(jax.random.PRNGKey(ctx.seed), (ctx.n_chains, D), dtype=ctx.dtype)
    init = jax.vmap(lambda x: diffusions.DiffusionState(x, *jax.value_and_grad(logdensity)(x)))(x0)

    @jax.jit
    def chains(state, key):
        def one(state, k):
            keys = jax.random.split(k, ctx.n_chains)
            return jax.vmap(lambda kk, s: step(kk, s, h))(keys, state), None

        return jax.lax.scan(one, state, jax.random.split(key, ctx.ula_steps))[0].position

    key = jax.random.PRNGKey(ctx.seed + 1)
    return lambda: chains(init, key).block_until_ready()


#: (name, builder, what to install)
PEERS = (("PyTorch eager", pytorch_eager, "torch"), ("ebmkit", ebmkit, "ebmkit"),
         ("TorchEBM", torchebm, "torchebm"), ("blackjax (jit)", blackjax, "blackjax"))


def run_peers(backend=None, seed=0, out="bench-output", quick=False, dtypes=("float64", "float32"), repeats=3,
              sizes=None):
    r"""Time refscore's ULA-2D workload and every installed peer in turn within each repeat; print
    the table (and the fastest peer per dtype), write ``peers.json``. Returns 0."""
    from .. import backends
    from . import bench_workloads as W
    from .bench import Context, best_times
    from .report import Table

    bk = backends.get(backend)
    rows, skipped = [], []
    for dt in dtypes:
        ctx = Context(bk, dt, quick, seed, None, sizes=sizes)
        state = W.gauss_ula_setup(ctx)
        runs, names = [(lambda: W.gauss_ula_run(state), ctx.sync)], ["refscore"]
        for name, build, pkg in PEERS:
            try:
                runs.append((build(ctx), _sync_for(ctx)))
                names.append(name)
            except ImportError as e:
                skipped.append(f"{name} ({dt}): not installed ({e.name or e}); pip install {pkg}")
        times = best_times(runs, repeats)
        fastest = min((t for n, t in zip(names, times) if n not in ("refscore", "PyTorch eager")), default=None)
        for name, t in zip(names, times):
            rows.append((dt, name, t * 1e3, t / times[0], "fastest peer" if t == fastest else ""))
    title = f"ULA, 2-D N(0, I), {ctx.n_chains} chains x {ctx.ula_steps} steps, h = {H} ({bk.name}, best of {repeats})"
    table = Table(title, ["dtype", "implementation", "ms", "time / refscore's", ""], rows,
                  note="A ratio > 1 means the peer is slower than refscore. " + "; ".join(skipped))
    print(table.markdown())
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "peers.json"), "w") as f:
        json.dump({**table.as_dict(), "skipped": skipped}, f, indent=1)
    return 0


def _sync_for(ctx):
    if not ctx.gpu:
        return lambda: None
    import torch

    return torch.cuda.synchronize
