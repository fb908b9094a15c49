r"""``refscore bench``: throughput of the main losses and samplers on the chosen backend, each as
a ratio against a reference measured in the same process (never an absolute timing test).

Workloads (issue 6):

1. SSM-VR loss + parameter gradient of an MLP energy (d = 2, 128 hidden units); reference:
   the same computation in PyTorch eager on the same device when ``--torch`` and PyTorch is
   installed, else exact ISM (d reverse passes) in refscore.
2. ULA on a Gaussian-mixture energy (K = 8, d = 64, 50 steps); reference: PyTorch eager
   (``--torch``), and always the naive ``(n, K, d)`` broadcast score in the same backend.

The table is printed and written as ``bench.json`` in ``--out``.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time

import numpy as onp


def _time(f, sync, repeats=3):
    f()
    sync()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _torch_device(bk_name):
    import torch

    return torch, torch.device("cuda" if bk_name == "cupy" else "cpu")


def _torch_ssm(torch, dev, dtype, n, d, H, seed):
    g = torch.Generator(device=dev).manual_seed(seed)
    Ws = [torch.randn(a, b, generator=g, device=dev, dtype=dtype) / math.sqrt(a) for a, b in ((d, H), (H, H), (H, 1))]
    Ws = [w.requires_grad_() for w in Ws]
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
        grads = torch.autograd.grad(loss, Ws + bs, allow_unused=True)  # the output bias leaves the score unchanged
        return grads[0]

    return run


def _torch_ula(torch, dev, dtype, n, K, d, steps, seed):
    g = torch.Generator(device=dev).manual_seed(seed)
    mu = torch.randn(K, d, generator=g, device=dev, dtype=dtype) * 3
    prec = torch.ones(K, d, device=dev, dtype=dtype)
    logw = torch.full((K,), -math.log(K), device=dev, dtype=dtype)
    x0 = torch.randn(n, d, generator=g, device=dev, dtype=dtype)
    pm, mpm = prec * mu, (mu * mu * prec).sum(1)

    def run():
        x = x0
        for _ in range(steps):
            quad = (x * x) @ prec.T - 2 * x @ pm.T + mpm
            r = torch.softmax(logw - 0.5 * quad, dim=1)
            s = r @ pm - x * (r @ prec)
            x = x + 0.01 * s + math.sqrt(0.02) * torch.randn(n, d, generator=g, device=dev, dtype=dtype)
        return x

    return run


def run_bench(backend=None, seed=0, out="bench-output", quick=False, torch=False, dtypes=("float64", "float32")):
    from .. import backends, losses, samplers
    from ..energies import GaussianMixture, MLPEnergy

    bk = backends.get(backend)
    xp = bk.xp
    sync = (lambda: xp.cuda.Stream.null.synchronize()) if bk.name == "cupy" else (lambda: None)
    gpu = bk.name == "cupy"
    n_ssm = 2**20 if gpu else (2**12 if quick else 2**14)
    n_ula = 2**18 if gpu else (2**10 if quick else 2**12)
    K, d, steps, H = 8, 64, 50, 128
    rows = []
    have_torch = False
    if torch:
        try:
            tmod, tdev = _torch_device(bk.name)
            have_torch = True
        except ImportError:
            print("PyTorch is not installed: torch references skipped (pip install torch)")
    for dt in dtypes:
        rng = bk.rng(seed)
        model = MLPEnergy(2, (H, H), rng=rng, dtype=dt)
        x = bk.normal(rng, (n_ssm, 2), dt)
        v = bk.normal(rng, (1, n_ssm, 2), dt)
        from autograd import grad

        f_ssm = lambda: grad(lambda p: losses.ssm(model.score_fn(p), x, v=v, variance_reduced=True))(model.params)[0]["W"]
        t_ssm = _time(f_ssm, sync)
        if have_torch:
            t_ref = _time(_torch_ssm(tmod, tdev, getattr(tmod, dt), n_ssm, 2, H, seed), sync if not gpu else tmod.cuda.synchronize)
            ref = "PyTorch eager"
        else:
            t_ref = _time(lambda: grad(lambda p: losses.ism(model.score_fn(p), x))(model.params)[0]["W"], sync)
            ref = "refscore exact ISM (d passes)"
        rows.append(("SSM-VR loss + grad, MLP d=2 H=128", dt, n_ssm, t_ssm * 1e3, n_ssm / t_ssm, ref, t_ref * 1e3, t_ref / t_ssm))

        hr = onp.random.default_rng(seed)
        gmm = GaussianMixture(onp.full(K, 1 / K), hr.normal(0, 3, (K, d)), onp.ones(K), backend=bk.name)
        for attr in ("_prec_diag", "_prec_mu", "_mu_prec_mu", "_const", "means"):
            setattr(gmm, attr, getattr(gmm, attr).astype(dt))
        x0 = bk.normal(rng, (n_ula, d), dt)
        t_ula = _time(lambda: samplers.langevin(gmm.score, x0, 0.01, steps, rng)[0], sync, repeats=2)
        means, logw = gmm.means, xp.log(gmm.weights.astype(dt))

        def naive_score(y):  # the (n, K, d) broadcast the issue warns about
            diff = y[:, None, :] - means[None, :, :]
            logp = logw - 0.5 * xp.sum(diff * diff, axis=2)
            r = xp.exp(logp - logp.max(1, keepdims=True))
            r = r / r.sum(1, keepdims=True)
            return -xp.sum(r[:, :, None] * diff, axis=1)

        t_naive = _time(lambda: samplers.langevin(naive_score, x0, 0.01, steps, rng)[0], sync, repeats=2)
        rows.append((f"ULA on GMM K={K} d={d}, {steps} steps", dt, n_ula, t_ula * 1e3, n_ula * steps / t_ula,
                     "(n,K,d) broadcast score", t_naive * 1e3, t_naive / t_ula))
        if have_torch:
            t_tu = _time(_torch_ula(tmod, tdev, getattr(tmod, dt), n_ula, K, d, steps, seed),
                         sync if not gpu else tmod.cuda.synchronize, repeats=2)
            rows.append((f"ULA on GMM K={K} d={d}, {steps} steps", dt, n_ula, t_ula * 1e3, n_ula * steps / t_ula,
                         "PyTorch eager", t_tu * 1e3, t_tu / t_ula))
    from .report import Table

    device = f"{bk.name} on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    if gpu:
        device = f"cupy on {xp.cuda.runtime.getDeviceProperties(0)['name'].decode()}"
    t = Table(f"refscore bench ({device})", ["workload", "dtype", "n", "ms", "throughput /s", "reference",
                                             "reference ms", "speed ratio (ref time / ours)"], rows,
              note="A ratio > 1 means refscore is faster than the reference measured in the same process.")
    print(t.markdown())
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "bench.json"), "w") as f:
        json.dump({"device": device, **t.as_dict()}, f, indent=1)
    return 0
