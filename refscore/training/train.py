r"""Training: Adam and SGD on pytrees, :func:`fit` with a progress bar, checkpoints that resume
bit-for-bit, and a NaN guard; contrastive divergence (seed 003_…, §11.1: KL → MLE → CD).
"""
from __future__ import annotations

import math
import numbers
import os

import autograd.numpy as anp
from autograd.tracer import getval

from .. import backends
from . import checkpoint
from . import fit_extras
from .fit_extras import FitExtras
from .shards import ShardedValueAndGrad
from .. import pytree
from .._deprecation import moved
from .._progress import progress
from .._validation import check_choice, check_points, check_positive, check_positive_int

__all__ = ["adam", "sgd", "fit", "cd_loss", "fit_cd"]

# deprecated re-exports: the pytree helpers and fit's extras live in their own modules
__getattr__ = moved(__name__, {"tree_map": ("refscore.pytree.tree_map", pytree.tree_map),
                               "tree_leaves": ("refscore.pytree.tree_leaves", pytree.tree_leaves),
                               "ema_update": ("refscore.training.fit_extras.ema_update", fit_extras.ema_update),
                               "cosine_schedule": ("refscore.training.fit_extras.cosine_schedule",
                                                   fit_extras.cosine_schedule)})


# ----- optimisers -----
def _check_rate(value, name):
    """A positive finite number; a boolean is refused (``True`` would pass as 1.0)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    return check_positive(value, name)


def _check_fraction(value, name):
    """A number in [0, 1) (Adam's decay rates, SGD's momentum); booleans and strings refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


class adam:
    r"""Adam (Kingma & Ba 2015, Algorithm 1):

    .. math:: m\leftarrow\beta_1m+(1-\beta_1)g,\ v\leftarrow\beta_2v+(1-\beta_2)g^2,\
              \theta\leftarrow\theta-\eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)}+\epsilon}

    ``lr`` :math:`=\eta>0`, ``b1``, ``b2`` :math:`\in[0,1)`, ``eps`` :math:`=\epsilon>0`;
    :meth:`config` (kind and hyper-parameters) is recorded in checkpoints and checked on resume.
    """

    def __init__(self, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.eps = _check_rate(lr, "lr"), _check_rate(eps, "eps")
        self.b1, self.b2 = _check_fraction(b1, "b1"), _check_fraction(b2, "b2")

    def config(self):
        """``{"kind": "adam", "lr", "b1", "b2", "eps"}``: what a checkpoint records and resume checks."""
        return {"kind": "adam", "lr": self.lr, "b1": self.b1, "b2": self.b2, "eps": self.eps}

    def init(self, params):
        zeros = pytree.tree_map(lambda p: 0.0 * p, params)
        return {"m": zeros, "v": pytree.tree_map(lambda p: 0.0 * p, params), "t": 0}

    def update(self, grads, state, params):
        t = state["t"] + 1
        m = pytree.tree_map(lambda m, g: self.b1 * m + (1 - self.b1) * g, state["m"], grads)
        v = pytree.tree_map(lambda v, g: self.b2 * v + (1 - self.b2) * g * g, state["v"], grads)
        c1, c2 = 1 - self.b1**t, 1 - self.b2**t
        new = pytree.tree_map(lambda p, m_, v_: p - self.lr * (m_ / c1) / (anp.sqrt(v_ / c2) + self.eps), params, m, v)
        return new, {"m": m, "v": v, "t": t}


class sgd:
    r"""SGD with momentum (Polyak 1964; Sutskever et al. 2013, eq. 1, with their velocity
    :math:`v=-\eta u` for a constant :math:`\eta`):

    .. math:: u\leftarrow\mu u + g,\quad \theta\leftarrow\theta-\eta u

    ``lr`` :math:`=\eta>0`, ``momentum`` :math:`=\mu\in[0,1)`.
    """

    def __init__(self, lr=1e-2, momentum=0.0):
        self.lr, self.momentum = _check_rate(lr, "lr"), _check_fraction(momentum, "momentum")

    def config(self):
        """``{"kind": "sgd", "lr", "momentum"}``: what a checkpoint records and resume checks."""
        return {"kind": "sgd", "lr": self.lr, "momentum": self.momentum}

    def init(self, params):
        return {"u": pytree.tree_map(lambda p: 0.0 * p, params), "t": 0}

    def update(self, grads, state, params):
        u = pytree.tree_map(lambda u, g: self.momentum * u + g, state["u"], grads)
        return pytree.tree_map(lambda p, u_: p - self.lr * u_, params, u), {"u": u, "t": state["t"] + 1}


def _check_optimizer(optimizer):
    if optimizer is None:
        return adam()
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"optimizer must have init(params) and update(grads, state, params) (like adam()), "
                        f"got {optimizer!r}")
    return optimizer


def _optimizer_config(optimizer):
    # a user optimizer without config() is identified by its class only
    if callable(getattr(optimizer, "config", None)):
        return optimizer.config()
    return {"kind": f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"}


# ----- the NaN guard: per-step flags stay on the device until a log or save point -----
class _Guard:
    def __init__(self, bk, leaf_paths, history, bar, ckpt, saved_step):
        self.xp, self.bk, self.paths, self.history, self.bar = bk.xp, bk, leaf_paths, history, bar
        self.ckpt, self.saved_step = ckpt, saved_step
        self.rows = []

    def record(self, value, grads):
        """Queue one row per step: the loss, then one all-finite flag per gradient leaf (1.0/0.0,
        in the loss's dtype) — device ops only, no host sync."""
        xp = self.xp
        value = xp.asarray(value)
        flags = xp.stack([xp.all(xp.isfinite(g)) for _, g in pytree.tree_leaves(grads)]).astype(value.dtype)
        self.rows.append(xp.concatenate([value.reshape(1), flags]))

    def kept(self):
        if self.ckpt is None:
            return "no checkpoint (checkpoint_dir=None)"
        if self.saved_step is None:
            return f"no checkpoint of this run was written yet ({self.ckpt} untouched)"
        return f"the last good checkpoint {self.ckpt} (step {self.saved_step}) is kept"

    def flush(self, step):
        """Move the queued rows to the host (one transfer) and stop at the first bad step."""
        if not self.rows:
            return
        rows = self.bk.to_numpy(self.xp.stack(self.rows))  # (k, 1 + n_leaves)
        vals, flags = rows[:, 0].tolist(), rows[:, 1:] == 1.0
        self.rows = []
        first = step - len(vals) + 1
        for i, (v, ok) in enumerate(zip(vals, flags)):
            if not math.isfinite(v):
                what = f"the loss is non-finite ({v})"
            elif not ok.all():
                what = (f"the gradient of params leaf {self.paths[int(ok.argmin())]!r} is non-finite "
                        f"(the loss was finite, {v:.6g})")
            else:
                continue
            self.history["loss"].extend(vals[:i + 1])
            raise FloatingPointError(f"fit stopped at step {first + i}: {what}; {self.kept()}; lower the "
                                     "learning rate or check the data and loss_fn")
        self.history["loss"].extend(vals)
        self.bar.set_postfix(loss=f"{vals[-1]:.4g}")


# ----- fit -----
def _check_fit_args(n_steps, batch_size, log_every, checkpoint_every, resume, checkpoint_dir):
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"checkpoint_dir must be a path or None, got {checkpoint_dir!r}")
    return (check_positive_int(n_steps, "n_steps", minimum=0), check_positive_int(batch_size, "batch_size"),
            check_positive_int(log_every, "log_every"), check_positive_int(checkpoint_every, "checkpoint_every"))


def _open_checkpoint(checkpoint_dir, resume, state, bk, rng):
    """The checkpoint path (or None) and the state to start from (resumed when a file exists)."""
    if checkpoint_dir is None:
        return None, state
    bk.rng_state(rng)  # a backend that cannot save its generator refuses before any work
    path = checkpoint.prepare(checkpoint_dir)
    if resume and os.path.exists(path):
        return path, checkpoint.load(path, expect=state, rng=rng)
    return path, state


def fit(loss_fn, params, data, rng, optimizer=None, n_steps=1000, batch_size=256, checkpoint_dir=None,
        checkpoint_every=100, resume=True, progress_bar=True, log_every=25, desc="fit", ema=None,
        lr_schedule=None, eval_data=None, callback=None, eval_seed=0, shards=1, threads=1):
    r"""Minimise ``loss_fn(params, batch, rng)`` by stochastic gradient steps.

    Each step draws a minibatch of ``batch_size`` rows of ``data`` (with replacement) from
    ``rng``, takes :math:`\nabla_\theta` of the loss by autograd, and applies ``optimizer``
    (default :class:`adam`):

    .. math:: \theta_{t+1} = \mathrm{update}\big(\theta_t,\ \nabla_\theta\,
              \mathcal L(\theta_t; x_{B_t}, \xi_t)\big), \quad B_t \sim \mathrm{Unif}\{1..n\}^{b}

    **Checkpoints.** With ``checkpoint_dir``, one file ``checkpoint_dir/checkpoint.npz`` is
    replaced atomically (:mod:`refscore.training.checkpoint`) every ``checkpoint_every`` steps and at the
    end of the run. It holds the parameters, optimizer state, optimizer kind and
    hyper-parameters, random-generator state, step, ``n_steps``, the backend, the data dtype,
    the EMA of the parameters and its decay (with ``ema``),
    each leaf's shape and dtype, the loss history and a content hash. With ``resume=True``
    (default) a later call continues from it, and the same seed gives the same parameters as an
    uninterrupted run, bit for bit. A checkpoint written by a different run (other shapes,
    dtypes, optimizer, backend, or a step beyond ``n_steps``) raises
    :class:`~refscore.training.checkpoint.CheckpointMismatch`; an unreadable file raises
    :class:`~refscore.training.checkpoint.CheckpointCorrupt` (both ``ValueError``; pass ``resume=False``
    to start afresh). A larger ``n_steps`` than the checkpoint's extends a finished run.
    ``checkpoint_dir`` is checked writable before any work.

    **NaN guard.** Every step queues, on the device, the loss and one all-finite flag per
    gradient leaf; they are read on the host only at log points (every ``log_every`` steps and
    the last step) and before every save, so the guard adds no host synchronisation per step.
    A non-finite loss or gradient raises ``FloatingPointError`` naming the first bad step, what
    was non-finite (the loss, or the gradient of which parameter leaf) and the checkpoint kept.
    Before a save the parameters and optimizer state are checked too: a non-finite state is
    never written, so the file on disk is always the last good state.

    Extras (see :class:`~refscore.training.fit_extras.FitExtras`): ``ema=decay`` keeps an exponential moving average of the
    parameters (Song & Ermon 2020, technique 5), returned as ``history["ema_params"]`` — sample from
    those; ``lr_schedule`` is a callable ``step -> lr`` (0-based step; e.g.
    :func:`~refscore.training.fit_extras.cosine_schedule`) that sets the ``lr`` of fit's own copy of the optimiser before each step (the caller's
    ``optimizer`` is never changed, also when fit raises); ``eval_data`` gives a held-out loss
    ``loss_fn(params, eval_data, rng_eval)`` at every log step, with ``rng_eval`` a fresh
    ``backend.rng(eval_seed)`` each time (the same noise at every evaluation, so the curve shows
    the parameters changing, not the noise), in ``history["eval_loss"]`` (and
    ``history["eval_loss_ema"]`` with ``ema``) at the steps ``history["eval_step"]``;
    ``callback(step, params, info)`` is called at every log step with ``info`` holding ``loss``,
    ``lr``, ``seconds_per_step``, and ``eval_loss`` / ``ema_params`` where set. The progress bar
    shows the loss and the seconds per step. The EMA (its average and update count) is part of
    checkpoints, so a resumed run returns the same ``ema_params`` as an uninterrupted one, bit for
    bit; the decay is recorded and checked on resume.

    **Several cores.** ``shards=S`` cuts each minibatch into S pieces whose gradients ``threads``
    threads compute and :class:`~refscore.training.shards.ShardedValueAndGrad` averages with their
    shares of the batch — the whole batch's gradient when ``loss_fn`` is a mean over its rows, as
    every loss here is. Each shard draws its noise from a generator seeded from ``rng``, so runs
    still resume bit for bit. On 2 cores, 2 shards on 2 threads take the MNIST U-Net's step about
    1.5× faster than the whole batch on one thread, and 1.25× faster than 4 shards, whose batches of
    16 make smaller products (``refscore bench``, docs/benchmarks.md).

    Returns
    -------
    params, history : the last iterate (not the EMA) and ``history["loss"]``, the per-step loss
        (host floats, from step 0 when resumed), plus the extras above.

    Raises
    ------
    FloatingPointError
        A non-finite loss, gradient, parameter or optimizer state (the NaN guard above).
    refscore.training.checkpoint.CheckpointMismatch, refscore.training.checkpoint.CheckpointCorrupt
        On resume, a checkpoint of another run, or an unreadable one (``ValueError`` subclasses).
    ValueError, TypeError
        A bad argument (named with its value), or a ``checkpoint_dir`` that cannot be written.
    """
    data = check_points(data, name="data")  # integer data -> float64, as the losses expect
    n_steps, batch_size, log_every, checkpoint_every = _check_fit_args(
        n_steps, batch_size, log_every, checkpoint_every, resume, checkpoint_dir)
    bk = backends.of(data)
    bk.check_rng(rng)
    optimizer = _check_optimizer(optimizer)
    extras = FitExtras(loss_fn, optimizer, params, bk, ema, lr_schedule, eval_data, callback, eval_seed)
    optimizer = extras.optimizer  # with a schedule, a copy: the caller's object is never written
    state = {"step": 0, "n_steps": n_steps,
             "trees": {"params": params, "opt_state": optimizer.init(params), **extras.state_trees()},
             "history": {"loss": []}, "rng": None,
             "config": {"backend": bk.name, "optimizer": _optimizer_config(optimizer), "data_dtype": str(data.dtype),
                        "ema": ema}}
    ckpt, state = _open_checkpoint(checkpoint_dir, resume, state, bk, rng)
    params, opt_state = state["trees"]["params"], state["trees"]["opt_state"]
    extras.restore(state["trees"])
    start, history = state["step"], state["history"]
    vg = ShardedValueAndGrad(loss_fn, bk, shards, threads)
    n = data.shape[0]
    bar = progress(n_steps - start, desc, progress_bar)
    guard = _Guard(bk, [p for p, _ in pytree.tree_leaves(params)], history, bar, ckpt, start if start else None)
    try:
        for step in range(start, n_steps):
            extras.before_step(step)
            idx = bk.choice(rng, n, batch_size, bk.xp.ones(n, dtype=data.dtype))
            value, grads = vg(params, data[idx], rng)
            params, opt_state = optimizer.update(grads, opt_state, params)
            extras.after_step(params)
            guard.record(value, grads)
            bar.update()
            if (step + 1) % log_every == 0 or step + 1 == n_steps:
                guard.flush(step + 1)
                extras.at_log(step + 1, params, history, bar)
            if ckpt and ((step + 1) % checkpoint_every == 0 or step + 1 == n_steps):
                guard.flush(step + 1)
                trees = {"params": params, "opt_state": opt_state, **extras.state_trees()}
                _save(ckpt, guard, dict(state, step=step + 1, trees=trees, rng=bk.rng_state(rng)))
    finally:
        bar.close()
        vg.close()
    extras.finish(history)
    return params, history


def _save(path, guard, state):
    try:
        checkpoint.save(path, state)
    except FloatingPointError as e:
        raise FloatingPointError(f"{e}; {guard.kept()}; lower the learning rate") from None
    guard.saved_step = state["step"]


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


def _check_cd_args(sampler, k, step_size, persistent, checkpoint_dir, shards):
    """``(k, step_size)`` checked; refuses what persistent chains cannot do (checkpoint, shard)."""
    check_choice(sampler, "sampler", ("langevin", "mala"))
    k, step_size = check_positive_int(k, "k"), check_positive(step_size, "step_size")
    if not isinstance(persistent, bool):
        raise TypeError(f"persistent must be True or False, got {persistent!r}")
    if persistent and checkpoint_dir is not None:
        raise ValueError(f"persistent=True with checkpoint_dir={os.fspath(checkpoint_dir)!r}: the persistent "
                         "chains are not checkpointed, so a resumed run would not continue the same training; "
                         "use persistent=False (CD-k) to checkpoint, or checkpoint_dir=None")
    if persistent and check_positive_int(shards, "shards") > 1:
        raise ValueError(f"persistent=True with shards={shards}: the persistent chains are one buffer for the "
                         "whole batch, which shards cannot share; use shards=1, or persistent=False (CD-k)")
    return k, step_size


def fit_cd(model, data, rng, k=20, step_size=0.01, persistent=False, sampler="langevin", n_steps=500,
           batch_size=256, optimizer=None, alpha=0.1, progress_bar=True, buffer_size=None, checkpoint_dir=None,
           checkpoint_every=100, resume=True, shards=1, threads=1):
    r"""Train an :class:`~refscore.energies.MLPEnergy` by CD-k (chains start at the data batch) or
    persistent CD (Tieleman 2008; chains persist across steps), negatives drawn with ``k`` steps
    of ``"langevin"`` (ULA) or ``"mala"`` at ``step_size`` on the current model; the gradient is
    that of :func:`cd_loss`:

    .. math:: \nabla_\theta \approx \overline{\nabla_\theta E_\theta(x^+)}
              - \overline{\nabla_\theta E_\theta(x^-)},\quad x^- = \mathrm{sampler}^k(x_0)

    Checkpoints (``checkpoint_dir``, see :func:`fit`) resume CD-k bit for bit: its whole state
    is the parameters, the optimizer and the random generator. Persistent CD also carries the
    chains' buffer, which is **not** checkpointed, so ``persistent=True`` with a
    ``checkpoint_dir`` is refused (a resumed PCD run would silently restart its chains).

    ``shards``/``threads`` are :func:`fit`'s: the negatives of each shard are drawn from that
    shard's own generator (seeded from ``rng``), never from ``rng`` itself, so a sharded run is a
    function of the seed alone, whatever the thread count. Persistent CD keeps one buffer of
    chains for the whole batch, so ``persistent=True`` with ``shards > 1`` is refused.

    Returns ``(params, history)``; ``history["loss"]`` is the CD surrogate per step.
    """
    from ..samplers import langevin, mala

    k, step_size = _check_cd_args(sampler, k, step_size, persistent, checkpoint_dir, shards)
    bk = backends.of(data)
    buffer = {"x": None}
    if persistent:
        m = batch_size if buffer_size is None else check_positive_int(buffer_size, "buffer_size")
        buffer["x"] = data[bk.choice(rng, data.shape[0], m, bk.xp.ones(data.shape[0], dtype=data.dtype))]

    def negatives(params, x_pos, rng):
        p = pytree.tree_map(getval, params)
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
        # the shard's generator (rng itself when shards=1), never the rng closed over above
        return cd_loss(model.apply, params, batch, negatives(params, batch, rng_), alpha)

    return fit(loss, model.params, data, rng, optimizer=optimizer or adam(1e-3), n_steps=n_steps,
               batch_size=batch_size, progress_bar=progress_bar, desc="CD" if not persistent else "PCD",
               checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume, shards=shards,
               threads=threads)
