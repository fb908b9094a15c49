r"""The ``images mnist`` U-Net in ``refscore bench``: one training step (batch 64) and one score
evaluation at batch 256 (the sampler's call), against the **same network in PyTorch eager**.

The torch twin (:func:`torch_twin`) is :class:`~refscore.models.ConvScoreNet` with the command's
defaults (C = 16, dense bottleneck 128, FiLM, swish) rebuilt in ``torch.nn.functional``
(NCHW, ``conv2d(padding=1)``, 2×2 mean pooling, nearest up-sampling), its parameters *copied*
from refscore's, and the EDM preconditioning and loss written out:

.. math:: D = \mu + c_{skip}(x-\mu) + c_{out}F(c_{in}(x-\mu), \log\sigma),\quad s = \frac{D - x}{\sigma^2},\quad
          L = \frac1n\sum_i \lambda(\sigma_i)\,\tfrac12\Big\|s(\tilde x_i) + \frac{z_i}{\sigma_i}\Big\|^2

(Karras et al. 2022, eq. 7 and Table 1; the loss of :func:`refscore.losses.ncsn` with fixed levels
and noise). Before anything is timed, :func:`check_parity` proves it is the same function:
equal parameter counts, and forward, loss and every gradient leaf within the dtype's round-off
(a ``ValueError`` naming the leaf otherwise). Without torch the reference is refscore's previous
im2col convolution, swapped in for the call. torch is never a refscore dependency.
"""
from __future__ import annotations

import math

import numpy as onp

from ..diffusion.edm import edm_coefficients, score_loss_weight

#: the ``images mnist`` network: side, channels, dense bottleneck, FiLM
SIDE, CHANNELS, GLOBAL, FILM = 28, 16, 128, True
_BLOCKS = ("e1a", "e1b", "e2a", "e2b", "m_a", "m_b", "d2", "d1")


def unet_setup(ctx, n=None):
    r"""The net (seeded), ``n`` rows x in [0, 1), fixed levels σ_i and noise z, refscore's
    ``value_and_grad`` of the NCSN loss and the torch twin (when torch is there)."""
    from autograd import value_and_grad

    from .. import losses
    from ..models import ConvScoreNet, lognormal_level_index

    bk, dt, n = ctx.bk, ctx.dtype, n or ctx.n_unet
    rng = bk.rng(ctx.seed)
    x = bk.uniform(rng, (n, SIDE * SIDE), dt)
    net = ConvScoreNet(SIDE, CHANNELS, rng=rng, data=x, global_width=GLOBAL, film=FILM, dtype=dt)
    _perturb(net, bk, rng)  # the output layer starts at zero: give every leaf a gradient
    sigmas = bk.asarray(onp.geomspace(16.0, 0.01, 95), dtype=dt)
    k = lognormal_level_index(sigmas, n, rng, math.log(net.sigma_data), 1.2)
    z = bk.normal(rng, (n, SIDE * SIDE), dt)
    loss = lambda p: losses.ncsn(net.score_fn(p), x, sigmas, levels="sample", weighting=net.loss_weight,
                                 level_index=k, z=z)
    state = {"net": net, "x": x, "z": z, "sigma": sigmas[k], "loss": loss, "vg": value_and_grad(loss)}
    if ctx.torch is not None:
        state["twin"] = torch_twin(ctx, state)
        check_parity(ctx, state)
    return state


def _perturb(net, bk, rng):
    q = net.params["out"]
    q["K"] = bk.normal(rng, q["K"].shape, net.dtype) * 0.05
    for name in _BLOCKS:
        if "S" in net.params[name]:
            net.params[name]["S"] = bk.normal(rng, net.params[name]["S"].shape, net.dtype) * 0.05


def forward_setup(ctx):
    r"""The same net on ``ctx.n_unet_fwd`` rows (256: the sampler's batch), forward only."""
    return unet_setup(ctx, ctx.n_unet_fwd)


def step_run(state):
    r"""One training step's loss and parameter gradient :math:`(L, \nabla_\theta L)`, whole batch, one call."""
    return state["vg"](state["net"].params)[0]


def forward_run(state):
    r"""One score evaluation :math:`s_\theta(x, \sigma_i)` of the batch."""
    return state["net"].apply(state["net"].params, state["x"], state["sigma"])


def step_references(ctx, state):
    """PyTorch eager's training step (torch installed), else refscore's im2col convolution."""
    if ctx.torch is not None:
        yield "PyTorch eager", lambda: state["twin"].step(), ctx.torch_sync
    else:
        yield "refscore, im2col convolution", lambda: _with_im2col(lambda: step_run(state)), ctx.sync


def forward_references(ctx, state):
    """PyTorch eager's forward (no graph), else refscore's im2col convolution."""
    if ctx.torch is not None:
        yield "PyTorch eager", lambda: state["twin"].forward(), ctx.torch_sync
    else:
        yield "refscore, im2col convolution", lambda: _with_im2col(lambda: forward_run(state)), ctx.sync


def im2col_conv3x3(h, K, b, skip=None):
    r"""The previous convolution: :math:`\mathrm{reshape}(\mathrm{im2col}(x), (nHW, 9C))\,K + b`,
    :math:`x = [\mathrm{upsample}(h), \mathrm{skip}]` concatenated when a skip is given."""
    import autograd.numpy as anp
    from autograd.tracer import getval

    from ..models.unet import im2col3x3, upsample

    if skip is not None:
        h = anp.concatenate([upsample(h), skip], axis=3)
    n, H, W, C = getval(h).shape
    return anp.reshape(anp.matmul(anp.reshape(im2col3x3(h), (n * H * W, 9 * C)), K) + b, (n, H, W, K.shape[1]))


def _with_im2col(f):
    from unittest import mock

    from ..models import unet

    with mock.patch.object(unet, "conv3x3", im2col_conv3x3):
        return f()


class _Twin:
    """The torch network, its inputs and the timed calls."""

    def __init__(self, torch, F, params, inputs, consts):
        self.torch, self.F, self.p = torch, F, params
        self.x, self.z, self.sig = inputs
        self.mean, self.sd, self.freqs = consts

    def features(self, u, log_s):
        F, p, torch = self.F, self.p, self.torch
        n = u.shape[0]
        ang = log_s * self.freqs  # (n, F)
        e = F.silu(torch.cat([torch.sin(ang), torch.cos(ang)], 1) @ p["emb/W"] + p["emb/b"])

        def block(name, h):
            out = F.conv2d(h, p[f"{name}/K"], p[f"{name}/b"], padding=1)
            out = out * (1.0 + (e @ p[f"{name}/S"])[:, :, None, None])
            return F.silu(out + (e @ p[f"{name}/E"])[:, :, None, None])

        h1 = block("e1b", block("e1a", u.reshape(n, 1, SIDE, SIDE)))
        h2 = block("e2b", block("e2a", F.avg_pool2d(h1, 2)))
        h3 = block("m_a", F.avg_pool2d(h2, 2))
        s, c = h3.shape[2], h3.shape[1]
        v = h3.permute(0, 2, 3, 1).reshape(n, s * s * c)  # refscore's (n, s, s, c) order
        g = F.silu(v @ p["global/W"] + p["global/b"] + e @ p["global/E"]) @ p["global/W2"] + p["global/b2"]
        h3 = block("m_b", h3 + g.reshape(n, s, s, c).permute(0, 3, 1, 2))
        up = lambda h: F.interpolate(h, scale_factor=2, mode="nearest")  # noqa: E731
        g2 = block("d2", torch.cat([up(h3), h2], 1))
        g1 = block("d1", torch.cat([up(g2), h1], 1))
        return F.conv2d(g1, p["out/K"], p["out/b"], padding=1).reshape(n, SIDE * SIDE)

    def score(self, x, sig):
        # the coefficients from refscore's one home (EDM, Table 1), on the host copy of the levels
        c_skip, c_out, c_in, _ = (self.torch.as_tensor(c, dtype=x.dtype)
                                  for c in edm_coefficients(sig.detach().numpy(), self.sd))
        xc = x - self.mean
        D = self.mean + c_skip * xc + c_out * self.features(xc * c_in, self.torch.log(sig))
        return (D - x) / (sig * sig)

    def loss(self):
        sig = self.sig
        s = self.score(self.x + sig * self.z, sig)
        lam = self.torch.as_tensor(score_loss_weight(sig.detach().numpy(), self.sd), dtype=sig.dtype)
        return (lam[:, 0] * 0.5 * ((s + self.z / sig) ** 2).sum(1)).mean()

    def step(self):
        """Loss and gradients of every parameter (``torch.autograd.grad``)."""
        L = self.loss()
        return L, self.torch.autograd.grad(L, list(self.p.values()))

    def forward(self):
        """One score evaluation of the batch, no graph."""
        with self.torch.no_grad():
            return self.score(self.x, self.sig)


def torch_twin(ctx, state):
    r"""The torch network with refscore's parameters copied in: conv taps
    :math:`K_{(3a+b)C+c,\,o}\mapsto W[o, c, a, b]`, every other leaf as it is."""
    from ..pytree import tree_leaves

    torch, bk, net = ctx.torch, ctx.bk, state["net"]
    dev = ctx.torch_device
    t = lambda a: torch.from_numpy(onp.array(bk.to_numpy(a))).to(dev)  # a copy: no memory shared  # noqa: E731
    params = {}
    for path, leaf in tree_leaves(net.params):
        a = t(leaf)
        if path.endswith("/K"):
            cin = a.shape[0] // 9
            a = a.reshape(3, 3, cin, a.shape[1]).permute(3, 2, 0, 1).contiguous()
        params[path] = a.requires_grad_()
    col = lambda a: t(a).reshape(-1, 1)  # noqa: E731
    return _Twin(torch, torch.nn.functional, params, (t(state["x"]), t(state["z"]), col(state["sigma"])),
                 (t(net.mean), float(net.sigma_data), t(net.freqs)))


def check_parity(ctx, state):
    r"""The twin is the same function: equal parameter counts; forward, loss and each gradient
    leaf within :math:`\tau\,(1 + \max|\cdot|)`, τ = 2e-4 (float32) or 1e-9 (float64)."""
    from ..pytree import tree_leaves

    bk, twin, net = ctx.bk, state["twin"], state["net"]
    tol = 2e-4 if ctx.dtype == "float32" else 1e-9
    leaves = dict(tree_leaves(net.params))
    n_ours, n_twin = sum(int(v.size) for v in leaves.values()), sum(int(v.numel()) for v in twin.p.values())
    if n_ours != n_twin:
        raise ValueError(f"the torch twin has {n_twin} parameters, refscore's net {n_ours}")
    L, grads = state["vg"](net.params)
    L_t, grads_t = twin.step()
    pairs = [("forward", forward_run(state), twin.forward()), ("loss", L, L_t)]
    pairs += [(f"gradient {path}", g, gt) for (path, g), gt in zip(tree_leaves(grads), grads_t)]
    for what, ours, theirs in pairs:
        a = onp.asarray(bk.to_numpy(ours), dtype="float64")
        b = theirs.detach().cpu().double().numpy()
        if a.ndim == 4 or b.ndim == 4:  # a conv kernel: compare in refscore's (9C, C_out) layout
            b = b.transpose(2, 3, 1, 0).reshape(a.shape)
        err = float(onp.max(onp.abs(a.reshape(b.shape) - b)))
        if not err <= tol * (1.0 + float(onp.max(onp.abs(b)))):
            raise ValueError(f"torch twin differs from refscore's net in the {what}: max |diff| = {err:.3g}")
    return {"parameters": n_ours}
