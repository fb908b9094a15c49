r"""Training: Adam and SGD on pytrees, :func:`fit` with a progress bar, checkpoints that resume
bit-for-bit, and a NaN guard; contrastive divergence (seed 003_…, §11.1: KL → MLE → CD).
"""
from __future__ import annotations

import json
import math
import os
import time

import autograd.numpy as anp
from autograd import value_and_grad
from autograd.tracer import getval

from . import backends
from ._progress import progress
from ._validation import check_points, check_positive, check_positive_int, hot_loop

__all__ = ["adam", "sgd", "fit", "tree_map", "tree_leaves", "cd_loss", "fit_cd", "ema_update", "cosine_schedule"]


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
        checkpoint_every=100, resume=True, progress_bar=True, log_every=25, desc="fit", ema=None,
        lr_schedule=None, eval_data=None, callback=None, eval_seed=0):
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

    Extras (see :class:`_FitExtras`): ``ema=decay`` keeps an exponential moving average of the
    parameters (Song & Ermon 2020, technique 5), returned as ``history["ema_params"]`` — sample from
    those; ``lr_schedule`` is a callable ``step -> lr`` (0-based step; e.g. :func:`cosine_schedule`)
    that sets the optimiser's ``lr`` before each step; ``eval_data`` gives a held-out loss
    ``loss_fn(params, eval_data, rng_eval)`` at every log step, with ``rng_eval`` a fresh
    ``backend.rng(eval_seed)`` each time (the same noise at every evaluation, so the curve shows
    the parameters changing, not the noise), in ``history["eval_loss"]`` (and
    ``history["eval_loss_ema"]`` with ``ema``) at the steps ``history["eval_step"]``;
    ``callback(step, params, info)`` is called at every log step with ``info`` holding ``loss``,
    ``lr``, ``seconds_per_step``, and ``eval_loss`` / ``ema_params`` where set. The progress bar
    shows the loss and the seconds per step. The EMA is not part of checkpoints: on resume it
    restarts from the resumed parameters.

    Returns
    -------
    params, history : the last iterate (not the EMA) and ``history["loss"]``, the per-step loss
        (host floats), plus the extras above.
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
    extras = _FitExtras(loss_fn, optimizer, params, bk, ema, lr_schedule, eval_data, callback, eval_seed)

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

    with hot_loop():
        for step in range(start, n_steps):
            extras.before_step(step)
            idx = bk.choice(rng, n, batch_size, bk.xp.ones(n, dtype=data.dtype))
            value, grads = vg(params, data[idx], rng)
            params, opt_state = optimizer.update(grads, opt_state, params)
            extras.after_step(params)
            pending.append(value)
            bar.update()
            if (step + 1) % log_every == 0 or step + 1 == n_steps:
                flush(step + 1)
                extras.at_log(step + 1, params, history, bar)
            if ckpt and (step + 1) % checkpoint_every == 0:
                flush(step + 1)
                _save_checkpoint(ckpt, step + 1, params, opt_state, rng, history, bk)
    flush(n_steps)
    bar.close()
    extras.finish(history)
    return params, history


# ----- what fit grows for users: EMA, lr schedules, held-out loss, callbacks, timing -----
def ema_update(avg, params, decay):
    r"""One step of the exponential moving average of parameters (Song & Ermon 2020, technique 5):

    .. math:: \bar\theta \leftarrow m\,\bar\theta + (1-m)\,\theta
    """
    return tree_map(lambda a, p: decay * a + (1.0 - decay) * getval(p), avg, params)


def cosine_schedule(lr, n_steps, warmup=0, lr_min=0.0):
    r"""A learning-rate schedule ``step -> lr``: linear warm-up over ``warmup`` steps, then cosine
    decay from ``lr`` to ``lr_min`` at ``n_steps`` (Loshchilov & Hutter 2017, eq. 5, one cycle):

    .. math:: \eta_t = \eta_{min} + \tfrac12(\eta-\eta_{min})\Big(1+\cos\frac{\pi(t-t_w)}{T-t_w}\Big)
    """
    lr, n_steps = check_positive(lr, "lr"), check_positive_int(n_steps, "n_steps")
    warmup = check_positive_int(warmup, "warmup", minimum=0)
    if not 0.0 <= lr_min < lr:
        raise ValueError(f"lr_min must lie in [0, lr={lr}), got {lr_min!r}")

    def schedule(step):
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = min((step - warmup) / max(n_steps - warmup, 1), 1.0)
        return max(lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * frac)), lr_min or 1e-12 * lr)

    return schedule


class _FitExtras:
    r"""The optional parts of :func:`fit`, kept apart from its loop. EMA decay warms up as
    :math:`m_t=\min(m, (1+t)/(10+t))` after t updates, so early averages are not dominated by the
    random initialisation (the ``num_updates`` rule of TensorFlow's ExponentialMovingAverage)."""

    def __init__(self, loss_fn, optimizer, params, bk, ema, lr_schedule, eval_data, callback, eval_seed):
        if ema is not None and not 0.0 < ema < 1.0:
            raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.999; got {ema!r}")
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError(f"lr_schedule must be a callable step -> lr, got {type(lr_schedule).__name__}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be a callable (step, params, info), got {type(callback).__name__}")
        if eval_data is not None:
            check_points(eval_data, name="eval_data")
        self.loss_fn, self.optimizer, self.bk, self.eval_seed = loss_fn, optimizer, bk, eval_seed
        self.decay, self.schedule, self.eval_data, self.callback = ema, lr_schedule, eval_data, callback
        self.base_lr = self.lr = getattr(optimizer, "lr", None)
        if lr_schedule is not None and self.base_lr is None:
            raise TypeError(f"lr_schedule needs an optimizer with an `lr` attribute, got {type(optimizer).__name__}")
        self.avg = tree_map(getval, params) if ema is not None else None
        self.t, self.clock, self.steps_since = 0, time.perf_counter(), 0

    def before_step(self, step):
        if self.schedule is not None:
            self.lr = self.optimizer.lr = check_positive(self.schedule(step), f"lr_schedule({step})")

    def after_step(self, params):
        self.steps_since += 1
        if self.avg is not None:
            self.t += 1
            self.avg = ema_update(self.avg, params, min(self.decay, (1.0 + self.t) / (10.0 + self.t)))

    def _eval(self, params):
        return float(self.loss_fn(params, self.eval_data, self.bk.rng(self.eval_seed)))

    def at_log(self, step, params, history, bar):
        now = time.perf_counter()
        info = {"loss": history["loss"][-1] if history["loss"] else math.nan, "lr": self.lr,
                "seconds_per_step": (now - self.clock) / max(self.steps_since, 1)}
        self.clock, self.steps_since = now, 0
        if self.eval_data is not None:
            info["eval_loss"] = self._eval(params)
            history.setdefault("eval_step", []).append(step)
            history.setdefault("eval_loss", []).append(info["eval_loss"])
            if self.avg is not None:
                info["eval_loss_ema"] = self._eval(self.avg)
                history.setdefault("eval_loss_ema", []).append(info["eval_loss_ema"])
        post = {"loss": f"{info['loss']:.4g}", "s/step": f"{info['seconds_per_step']:.3g}"}
        if "eval_loss" in info:
            post["eval"] = f"{info['eval_loss']:.4g}"
        bar.set_postfix(**post)
        if self.callback is not None:
            if self.avg is not None:
                info["ema_params"] = self.avg
            self.callback(step, params, info)
        self.clock = time.perf_counter()  # the callback's own time is not a training step's

    def finish(self, history):
        if self.schedule is not None:
            self.optimizer.lr = self.base_lr
        if self.avg is not None:
            history["ema_params"] = self.avg


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
