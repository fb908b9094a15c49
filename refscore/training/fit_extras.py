r"""What :func:`refscore.training.train.fit` grows for users: an exponential moving average of the
parameters, learning-rate schedules, a held-out loss, callbacks and time per step — kept apart from
the training loop so that the loop reads like the update rule."""
from __future__ import annotations

import copy
import math
import time

from autograd.tracer import getval

from .._validation import check_fraction, check_points, check_positive, check_positive_int, check_real
from ..pytree import tree_map

__all__ = ["ema_update", "cosine_schedule", "FitExtras"]


# ----- what fit grows for users: EMA, lr schedules, held-out loss, callbacks, timing -----
def ema_update(avg, params, decay):
    r"""One step of the exponential moving average of parameters (Song & Ermon 2020, technique 5):

    .. math:: \bar\theta \leftarrow m\,\bar\theta + (1-m)\,\theta

    ``decay`` :math:`m` must lie in [0, 1] (1 keeps the average, 0 copies the parameters); ``avg``
    and ``params`` must be trees of the same structure.
    """
    decay = check_fraction(decay, "decay")
    return tree_map(lambda a, p: decay * a + (1.0 - decay) * getval(p), avg, params)


def cosine_schedule(lr, n_steps, warmup=0, lr_min=0.0):
    r"""A learning-rate schedule ``step -> lr``: linear warm-up over ``warmup`` steps, then cosine
    decay from ``lr`` to ``lr_min`` at ``n_steps`` (Loshchilov & Hutter 2017, eq. 5, one cycle):

    .. math:: \eta_t = \eta_{min} + \tfrac12(\eta-\eta_{min})\Big(1+\cos\frac{\pi(t-t_w)}{T-t_w}\Big)
    """
    lr, n_steps = check_positive(lr, "lr"), check_positive_int(n_steps, "n_steps")
    warmup = check_positive_int(warmup, "warmup", minimum=0)
    if warmup > n_steps:
        raise ValueError(f"warmup must be <= n_steps={n_steps} (the warm-up is part of the run), got {warmup}")
    if not 0.0 <= check_real(lr_min, "lr_min") < lr:
        raise ValueError(f"lr_min must lie in [0, lr={lr}), got {lr_min!r}")

    def schedule(step):
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = min((step - warmup) / max(n_steps - warmup, 1), 1.0)
        return max(lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * frac)), lr_min or 1e-12 * lr)

    return schedule


class FitExtras:
    r"""The optional parts of :func:`fit`, kept apart from its loop. EMA decay warms up as
    :math:`m_t=\min(m, (1+t)/(10+t))` after t updates, so early averages are not dominated by the
    random initialisation (the ``num_updates`` rule of TensorFlow's ExponentialMovingAverage).
    With ``lr_schedule``, :attr:`optimizer` is a shallow copy of the caller's whose ``lr`` the
    schedule sets before each step; fit steps with it, so the caller's optimizer keeps its ``lr``."""

    def __init__(self, loss_fn, optimizer, params, bk, ema, lr_schedule, eval_data, callback, eval_seed):
        if ema is not None and not 0.0 < ema < 1.0:
            raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.999; got {ema!r}")
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError(f"lr_schedule must be a callable step -> lr, got {type(lr_schedule).__name__}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be a callable (step, params, info), got {type(callback).__name__}")
        if eval_data is not None:
            eval_data = check_points(eval_data, name="eval_data")  # integers -> float64, as for data
        self.lr = getattr(optimizer, "lr", None)
        if lr_schedule is not None and self.lr is None:
            raise TypeError(f"lr_schedule needs an optimizer with an `lr` attribute, got {type(optimizer).__name__}")
        # a schedule writes the rate of a private copy: the caller's optimizer is never changed,
        # whether fit returns or raises (a FloatingPointError included)
        self.optimizer = copy.copy(optimizer) if lr_schedule is not None else optimizer
        self.loss_fn, self.bk, self.eval_seed = loss_fn, bk, eval_seed
        self.decay, self.schedule, self.eval_data, self.callback = ema, lr_schedule, eval_data, callback
        self.avg = tree_map(getval, params) if ema is not None else None
        self.t, self.clock, self.steps_since = 0, time.perf_counter(), 0

    def state_trees(self):
        """What a checkpoint must hold to resume the extras bit for bit: with ``ema``, the tree
        ``{"ema": {"average": θ̄, "updates": t}}`` (the update count sets the warm-up decay)."""
        return {} if self.avg is None else {"ema": {"average": self.avg, "updates": self.t}}

    def restore(self, trees):
        """Take back what :meth:`state_trees` saved (the trees of a loaded checkpoint, or the
        initial ones: then nothing changes)."""
        if self.avg is not None:
            self.avg, self.t = trees["ema"]["average"], int(trees["ema"]["updates"])

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
        if self.avg is not None:
            history["ema_params"] = self.avg
