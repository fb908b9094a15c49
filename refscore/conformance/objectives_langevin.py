r"""Langevin: one unadjusted Langevin step and the MALA log acceptance ratio, each a record with its
cases, its reference (:mod:`refscore.samplers`) and its known faults.

.. math::
   \texttt{langevin\_step}: x'_i = x_i + h\,s(x_i) + \sqrt{2h}\,z_i,\qquad
   \texttt{mala\_log\_ratio}_i = \log\tilde p(y_i)-\log\tilde p(x_i) + \log q(x_i\mid y_i)
                      - \log q(y_i\mid x_i),\quad \log q(y\mid x) = -\frac{\|y-x-h s(x)\|^2}{4h}

(seed ``001_…`` (Langevin); Roberts & Tweedie 1996 and seed ``003_…`` §11.2.1 (MALA).)
"""
from __future__ import annotations

import math

import numpy as onp

from .. import samplers
from .models import flat, log_prob_fn, score_fn
from .objective import Fault, Objective, case
from .objectives_score import dim, points_and_model, sq

__all__ = ["RECORDS"]


# ---- langevin_step: a map objective -------------------------------------------------------------
def _langevin_inputs(o, n, shape, rng):
    return {**points_and_model(o, n, shape, rng), "h": o["h"], "z": rng.standard_normal((n, *shape))}


def _langevin(c):
    x = flat(c["x"])
    return samplers.langevin_move(x, score_fn(c["model"])(x), float(c["h"]), flat(c["z"]))


def _step_as_code(c, drift=1.0, noise_var=None, noise_std=None):
    r""":math:`x + \text{drift}\cdot h\,s(x) + \text{std}\cdot z`, std :math:`\sqrt{2h}` unless changed."""
    X, h = flat(c["x"]), float(c["h"])
    std = noise_std if noise_std is not None else math.sqrt(2 * h if noise_var is None else noise_var)
    return X + drift * h * score_fn(c["model"])(X) + std * flat(c["z"])


LANGEVIN_STEP = Objective(
    name="langevin_step", fields="`h`, `z` (n, *shape)", text="x′ = x + h s(x) + √(2h) z",
    equation=r"$x'=x+h\,s(x)+\sqrt{2h}\,z$", source="seed 001 (Langevin dynamics); Roberts & Tweedie 1996",
    is_map=True, inputs=_langevin_inputs, reference=_langevin,
    cases=(case("quadratic-flat", "flat", model="quadratic", h=0.1), case("mlp-img", "img", model="mlp", h=0.03)),
    faults=(Fault("NCSN α read as h", "x + (h/2)s + √h z: NCSN Algorithm 1's α taken for our h (their α is our 2h)",
                  lambda c: _step_as_code(c, drift=0.5, noise_var=float(c["h"]))),
            Fault("noise √h", "x + h s + √h z: the noise variance h where 2h belongs",
                  lambda c: _step_as_code(c, noise_var=float(c["h"]))),
            Fault("variance as std", "x + h s + 2h z: the noise variance 2h used as its std",
                  lambda c: _step_as_code(c, noise_std=2.0 * float(c["h"]))),
            Fault("drift sign (+∇E)", "x − h s + √(2h) z: a step up the energy",
                  lambda c: _step_as_code(c, drift=-1.0)),
            Fault("noise std h", "x + h s + h z: the noise std proportional to the step where √(2h) belongs "
                  "(blei-lab/edward #722; google-research/ibc #6)",
                  lambda c: _step_as_code(c, noise_std=float(c["h"])))))


# ---- mala_log_ratio -------------------------------------------------------------------------------
def _mala_inputs(o, n, shape, rng):
    """y: a Langevin proposal from x (the realistic input), then frozen as data."""
    c = points_and_model(o, n, shape, rng)
    h = o["h"]
    s = score_fn(c["model"])(flat(c["x"])).reshape(c["x"].shape)
    return {**c, "h": h, "y": c["x"] + h * s + onp.sqrt(2 * h) * rng.standard_normal((n, *shape))}


def _mala(c):
    x, lp, s, h, y = flat(c["x"]), log_prob_fn(c["model"]), score_fn(c["model"]), float(c["h"]), flat(c["y"])
    return (lp(y) - lp(x) + samplers.langevin_log_q(to=x, given=y, score_given=s(y), h=h)
            - samplers.langevin_log_q(to=y, given=x, score_given=s(x), h=h))


def _mala_ratio(c, p_sign=1.0, q_sign=1.0, q_scale=1.0, reverse_score_at="y", denom=4.0, drift=1.0, p_scale=1.0,
                sign=1.0):
    r"""A MALA log ratio with one thing changed: the correct one is
    :math:`\log p(y)-\log p(x)+\log q(x|y)-\log q(y|x)`, :math:`\log q(a|b)=-\|a-b-hs(b)\|^2/(4h)`."""
    X, Y, h = flat(c["x"]), flat(c["y"]), float(c["h"])
    s, lp = score_fn(c["model"]), log_prob_fn(c["model"])
    s_rev = s(Y) if reverse_score_at == "y" else s(X)
    log_q = lambda to, frm, s_frm: -sq(to - frm - drift * h * s_frm) / (denom * h)  # noqa: E731
    return sign * (p_sign * p_scale * (lp(Y) - lp(X)) + q_sign * q_scale * (log_q(X, Y, s_rev) - log_q(Y, X, s(X))))


MALA_LOG_RATIO = Objective(
    name="mala_log_ratio", fields="`y` (n, *shape), `h`",
    text="log p(y) − log p(x) + log q(x|y) − log q(y|x), log p = −E, log q(y|x) = −‖y − x − h s(x)‖² / (4h)",
    equation=r"$\log\tilde p(y)-\log\tilde p(x)+\log q(x\mid y)-\log q(y\mid x)$, "
             r"$\log q(y\mid x)=-\lVert y-x-hs(x)\rVert^2/(4h)$",
    source="Roberts & Tweedie 1996; seed 003, §11.2.1", inputs=_mala_inputs, reference=_mala,
    cases=(case("quadratic-flat", "flat", model="quadratic", h=0.2), case("mlp-img", "img", model="mlp", h=0.6)),
    faults=(Fault("swapped proposal densities", "log q(y|x) − log q(x|y) where log q(x|y) − log q(y|x) belongs "
                  "(blackjax #653): breaks detailed balance", lambda c: _mala_ratio(c, q_sign=-1.0)),
            Fault("no MH correction", "log p(y) − log p(x) only: a \"MALA\" without the proposal densities "
                  "(Metropolis, not MALA)", lambda c: _mala_ratio(c, q_scale=0.0)),
            Fault("reverse density with s(x)", "q(x|y) built with the score at x instead of at y: the proposal "
                  "treated as symmetric", lambda c: _mala_ratio(c, reverse_score_at="x")),
            Fault("proposal variance h", "log q = −‖y−x−hs‖²/(2h): variance h where 2h belongs",
                  lambda c: _mala_ratio(c, denom=2.0)),
            Fault("energy for log-density", "E(y) − E(x) where log p(y) − log p(x) = −(E(y) − E(x))",
                  lambda c: _mala_ratio(c, p_sign=-1.0)),
            Fault("last-axis-only sum", "‖·‖² in log q summed over the last axis only (x.sum(-1)) on image-shaped "
                  "input, the rest averaged", lambda c: _mala_ratio(c, q_scale=c["x"].shape[-1] / dim(c))),
            Fault("τ∇ drift with a 4τ denominator", "the correction of step τ = 2h, −‖a − b − 2h s(b)‖²/(8h), for a "
                  "proposal of step h, x + h s + √(2h) z (bat/BAT.jl #532)",
                  lambda c: _mala_ratio(c, drift=2.0, denom=8.0)),
            Fault("logp_new − logp_new", "the target term log p(y) − log p(y) = 0: only the proposal densities "
                  "remain (bob-carpenter/walnuts #27)", lambda c: _mala_ratio(c, p_scale=0.0)),
            Fault("ratio sign", "−(log p(y) − log p(x) + log q(x|y) − log q(y|x)): the acceptance test's sign "
                  "reversed, log u < −log α (lollcat/fab-jax PR #14)", lambda c: _mala_ratio(c, sign=-1.0))))

RECORDS = (LANGEVIN_STEP, MALA_LOG_RATIO)
