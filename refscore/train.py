r"""Training: Adam and SGD on pytrees, :func:`fit` with a progress bar, checkpoints that resume
bit-for-bit, and a NaN guard; contrastive divergence (seed 003_…, §11.1: KL → MLE → CD).
"""
from __future__ import annotations

import json
import math
import os

import autograd.numpy as anp
from autograd import value_and_grad
from autograd.tracer import getval

from . import backends
from ._progress import progress
from ._validation import check_points, check_positive, check_positive_int

__all__ = ["adam", "sgd", "fit", "tree_map", "tree_leaves", "cd_loss", "fit_cd"]


# ----- pytrees: nested lists/tuples/dicts of arrays -----
def tree_map(f, *trees):
    t = trees[0]
    if isinstance(t, dict):
        return {k: tree_map(f, *[tr[k] for tr in trees]) for k in t}
    if isinstance(t, (list, tuple)):
        return type(t)(tree_map(f, *parts) for parts in zip(*trees))
    return f(*trees)


def tree_leaves(t, prefix=""):
    """``[(path, leaf)]`` in a fixed order (dict keys sorted)."""
    if isinstance(t, dict):
        return [x for k in sorted(t) for x in tree_leaves(t[k], f"{prefix}{k}/")]
    if isinstance(t, (list, tuple)):
        return [x for i, v in enumerate(t) for x in tree_leaves(v, f"{prefix}{i}/")]
    return [(prefix.rstrip("/"), t)]


def _tree_from_leaves(template, leaves):
    it = iter(leaves)
    return tree_map(lambda _: next(it), _ordered(template))


def _ordered(t):
    if isinstance(t, dict):
        return {k: _ordered(t[k]) for k in sorted(t)}
    if isinstance(t, (list, tuple)):
        return type(t)(_ordered(v) for v in t)
    return t


# ----- optimisers -----
class adam:
    r"""Adam (Kingma & Ba 2015, Algorithm 1):

    .. math:: m\leftarrow\beta_1m+(1-\beta_1)g,\ v\leftarrow\beta_2v+(1-\beta_2)g^2,\
              \theta\leftarrow\theta-\eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)}+\epsilon}
    """

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = check_positive(lr, "lr"), b1, b2, eps

    def init(self, params):
        zeros = tree_map(lambda p: 0.0 * p, params)
        return {"m": zeros, "v": tree_map(lambda p: 0.0 * p, params), "t": 0}

    def update(self, grads, state, params):
        t = state["t"] + 1
        m = tree_map(lambda m, g: self.b1 * m + (1 - self.b1) * g, state["m"], grads)
        v = tree_map(lambda v, g: self.b2 * v + (1 - self.b2) * g * g, state["v"], grads)
        c1, c2 = 1 - self.b1**t, 1 - self.b2**t
        new = tree_map(lambda p, m_, v_: p - self.lr * (m_ / c1) / (anp.sqrt(v_ / c2) + self.eps), params, m, v)
        return new, {"m": m, "v": v, "t": t}


class sgd:
    r"""SGD with momentum: :math:`u\leftarrow\mu u + g,\ \theta\leftarrow\theta-\eta u`."""

    def __init__(self, lr=1e-2, momentum=0.0):
        self.lr, self.momentum = check_positive(lr, "lr"), momentum

    def init(self, params):
        return {"u": tree_map(lambda p: 0.0 * p, params), "t": 0}

    def update(self, grads, state, params):
        u = tree_map(lambda u, g: self.momentum * u + g, state["u"], grads)
        return tree_map(lambda p, u_: p - self.lr * u_, params, u), {"u": u, "t": state["t"] + 1}


# ----- random-generator state (bit-for-bit resume) -----
def _save_checkpoint(path, step, params, opt_state, rng, history, bk):
    import numpy

    arrays = {f"params/{k}": bk.to_numpy(v) for k, v in tree_leaves(params)}
    arrays.update({f"opt/{k}": bk.to_numpy(v) for k, v in tree_leaves({"m": opt_state.get("m"), "v": opt_state.get("v"),
                                                                       "u": opt_state.get("u")}) if v is not None})
    arrays["history/loss"] = numpy.asarray(history["loss"], dtype=float)
    tmp = path + ".tmp.npz"
    numpy.savez(tmp, **arrays)
    os.replace(tmp, path + ".npz")
    meta = {"step": step, "opt_t": opt_state["t"], "rng_state": bk.rng_state(rng), "backend": bk.name}
    with open(path + ".json.tmp", "w") as f:
        json.dump(meta, f, default=int)
    os.replace(path + ".json.tmp", path + ".json")


def _load_checkpoint(path, params, opt_state, rng, bk):
    import numpy

    with open(path + ".json") as f:
        meta = json.load(f)
    z = numpy.load(path + ".npz")
    leaves = [bk.asarray(z[f"params/{k}"]) for k, _ in tree_leaves(params)]
    params = _tree_from_leaves(params, leaves)
    for key in ("m", "v", "u"):
        if key in opt_state:
            opt_state[key] = _tree_from_leaves(opt_state[key], [bk.asarray(z[f"opt/{key}/{k}" if k else f"opt/{key}"])
                                                                for k, _ in tree_leaves(opt_state[key])])
    opt_state["t"] = meta["opt_t"]
    bk.set_rng_state(rng, meta["rng_state"])
    return params, opt_state, meta["step"], {"loss": list(z["history/loss"])}


def fit(loss_fn, params, data, rng, optimizer=None, n_steps=1000, batch_size=256, checkpoint_dir=None,
        checkpoint_every=100, resume=True, progress_bar=True, log_every=25, desc="fit"):
    r"""Minimise ``loss_fn(params, batch, rng)`` by stochastic gradient steps.

    Each step draws a minibatch of ``batch_size`` rows of ``data`` (with replacement) from
    ``rng``, takes :math:`\nabla_\theta` of the loss by autograd, and applies ``optimizer``
    (default :class:`adam`). With ``checkpoint_dir`` the parameters, optimiser state, random
    state and loss history are saved every ``checkpoint_every`` steps (``.npz`` + ``.json``), and
    a later call with ``resume=True`` continues from the latest one: same seed ⇒ the same
    parameters as an uninterrupted run, bit for bit.

    NaN guard: the loss is checked every ``log_every`` steps (one host sync); a non-finite loss
    raises ``FloatingPointError`` naming the step, and the last good checkpoint is kept (a
    checkpoint is only written from finite parameters).

    Returns
    -------
    params, history : ``history["loss"]`` is the per-step loss (host floats).
    """
    check_points(data, name="data")
    n_steps = check_positive_int(n_steps, "n_steps", minimum=0)
    batch_size = check_positive_int(batch_size, "batch_size")
    bk = backends.of(data)
    bk.check_rng(rng)
    optimizer = optimizer or adam()
    opt_state = optimizer.init(params)
    history = {"loss": []}
    start = 0
    ckpt = None
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        ckpt = os.path.join(checkpoint_dir, "checkpoint")
        if resume and os.path.exists(ckpt + ".json"):
            params, opt_state, start, history = _load_checkpoint(ckpt, params, opt_state, rng, bk)
    vg = value_and_grad(loss_fn)
    n = data.shape[0]
    pending = []
    bar = progress(n_steps - start, desc, progress_bar)

    def flush(step):
        vals = [float(v) for v in pending]
        pending.clear()
        history["loss"].extend(vals)
        if vals and not all(math.isfinite(v) for v in vals):
            bad = step - len(vals) + next(i for i, v in enumerate(vals) if not math.isfinite(v)) + 1
            where = f"; the last good checkpoint is kept at {ckpt}.npz" if ckpt else ""
            raise FloatingPointError(f"non-finite loss ({vals[-1]}) at step {bad}{where}; "
                                     "lower the learning rate or check the data")
        if vals:
            bar.set_postfix(loss=f"{vals[-1]:.4g}")

    for step in range(start, n_steps):
        idx = bk.choice(rng, n, batch_size, bk.xp.ones(n, dtype=data.dtype))
        value, grads = vg(params, data[idx], rng)
        params, opt_state = optimizer.update(grads, opt_state, params)
        pending.append(value)
        bar.update()
        if (step + 1) % log_every == 0 or step + 1 == n_steps:
            flush(step + 1)
        if ckpt and (step + 1) % checkpoint_every == 0:
            flush(step + 1)
            _save_checkpoint(ckpt, step + 1, params, opt_state, rng, history, bk)
    flush(n_steps)
    bar.close()
    return params, history


# ----- contrastive divergence -----
def cd_loss(energy_apply, params, x_pos, x_neg, alpha=0.1):
    r"""Contrastive-divergence surrogate whose gradient is the MLE gradient with model samples
    in place of the intractable expectation (Hinton 2002; seed 003_…, §11.1, KL → MLE → CD):

    .. math:: \nabla_\theta\,\mathrm{KL}(p^*\|p_\theta) = \mathbb E_{p^*}[\nabla_\theta E_\theta]
              - \mathbb E_{p_\theta}[\nabla_\theta E_\theta]
              \;\approx\; \nabla_\theta\Big(\overline{E_\theta(x^+)} - \overline{E_\theta(x^-)}\Big)

    ``x_neg`` are treated as constants. ``alpha`` adds :math:`\alpha(\overline{E(x^+)^2}+\overline{E(x^-)^2})`
    to keep energies bounded (Du & Mordatch 2019, §3.3).
    """
    e_pos, e_neg = energy_apply(params, x_pos), energy_apply(params, getval(x_neg))
    return anp.mean(e_pos) - anp.mean(e_neg) + alpha * (anp.mean(e_pos**2) + anp.mean(e_neg**2))


def fit_cd(model, data, rng, k=20, step_size=0.01, persistent=False, sampler="langevin", n_steps=500,
           batch_size=256, optimizer=None, alpha=0.1, progress_bar=True, buffer_size=None):
    r"""Train an :class:`~refscore.energies.MLPEnergy` by CD-k (chains start at the data batch) or
    persistent CD (Tieleman 2008; chains persist across steps), negatives drawn with ``k`` steps
    of ``"langevin"`` (ULA) or ``"mala"`` at ``step_size`` on the current model.

    Returns ``(params, history)``; ``history["loss"]`` is the CD surrogate per step.
    """
    from .samplers import langevin, mala

    if sampler not in ("langevin", "mala"):
        raise ValueError(f"sampler must be 'langevin' or 'mala', got {sampler!r}")
    bk = backends.of(data)
    buffer = {"x": None}
    if persistent:
        m = buffer_size or batch_size
        buffer["x"] = data[bk.choice(rng, data.shape[0], m, bk.xp.ones(data.shape[0], dtype=data.dtype))]

    def negatives(params, x_pos):
        p = tree_map(getval, params)
        score = model.score_fn(p)
        start = buffer["x"] if persistent else getval(x_pos)
        if sampler == "langevin":
            x, _ = langevin(score, start, step_size, k, rng)
        else:
            x, _ = mala(lambda y: -model.apply(p, y), start, step_size, k, rng, score_fn=score)
        if persistent:
            buffer["x"] = x
        return x

    def loss(params, batch, rng_):
        return cd_loss(model.apply, params, batch, negatives(params, batch), alpha)

    return fit(loss, model.params, data, rng, optimizer=optimizer or adam(1e-3), n_steps=n_steps,
               batch_size=batch_size, progress_bar=progress_bar, desc="CD" if not persistent else "PCD")
