r"""Respaced (strided) DDPM sampling: the posterior between two kept steps and the learned-range
log-variance, each a record with its cases, its reference and its known faults. A sampler that
keeps only some steps uses, between step ``t`` and the previous kept step ``t_prev``, the
respaced :math:`\beta'_t = 1-\bar\alpha_t/\bar\alpha_{t'}` (Nichol & Dhariwal 2021, §4). The
references are written here (:mod:`refscore.diffusion` has no respacing yet).

.. math:: \beta' = 1-\frac{\bar\alpha_t}{\bar\alpha_{t'}},\quad
          \tilde\beta' = \frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\beta',\quad
          \log\Sigma = v\log\beta' + (1-v)\log\tilde\beta'\quad(\text{Nichol \& Dhariwal 2021, eq. 15})
"""
from __future__ import annotations

import numpy as onp

from .objective import Fault, Objective, case
from .objectives_ddpm import BETAS

__all__ = ["RECORDS", "strided_posterior", "learned_range_log_variance"]


def _ab(c):
    return onp.cumprod(1.0 - onp.asarray(c["betas"], dtype=float))


def _pair(c, unstrided=False):
    r""":math:`(\bar\alpha_t, \bar\alpha_{t'}, \beta')` of each example; ``unstrided``: the neighbour
    :math:`t-1` and :math:`\beta_t` of the full schedule, whatever ``t_prev`` is."""
    ab, t, tp = _ab(c), onp.asarray(c["t"]), onp.asarray(c["t_prev"])
    if unstrided:
        tp = t - 1
    a_t = ab[t]
    a_p = onp.where(tp >= 0, ab[onp.maximum(tp, 0)], 1.0)
    return a_t, a_p, 1.0 - a_t / a_p


def strided_posterior(c, at_t_minus_one=False, beta_unstrided=False, alpha_unstrided=False):
    r"""The posterior :math:`q(x_{t'}\mid x_t, x_0)` between kept steps: ``(coef x0, coef x_t,
    variance)``; the knobs are the known faults.

    .. math:: \frac{\sqrt{\bar\alpha_{t'}}\beta'}{1-\bar\alpha_t},\
              \frac{\sqrt{1-\beta'}(1-\bar\alpha_{t'})}{1-\bar\alpha_t},\
              \frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\beta'
    """
    a_t, a_p, beta = _pair(c, unstrided=at_t_minus_one)
    b_full = onp.asarray(c["betas"], dtype=float)[onp.asarray(c["t"])]
    if beta_unstrided:
        beta = b_full
    alpha = 1.0 - (b_full if alpha_unstrided else beta)
    return onp.stack([onp.sqrt(a_p) * beta / (1 - a_t), onp.sqrt(alpha) * (1 - a_p) / (1 - a_t),
                      (1 - a_p) / (1 - a_t) * beta], 1)


def _strided_inputs(o, n, shape, rng):
    T = len(BETAS)
    first = o.get("first", 0)  # the learned range needs t ≥ 1 (β̃ > 0)
    t = onp.concatenate([[first, T - 1], rng.integers(1, T, n - 2)]).astype(onp.int64)
    stride = rng.integers(o["min_stride"], o["max_stride"] + 1, n)
    t_prev = onp.maximum(t - stride, o["lowest"])
    return {"betas": BETAS.copy(), "t": t, "t_prev": t_prev.astype(onp.int64)}


STRIDED_POSTERIOR = Objective(
    name="ddpm_strided_posterior", fields="`betas`, `t`, `t_prev` (the previous kept step; −1: the end, ᾱ = 1)",
    columns=("coef x0", "coef x_t", "variance"),
    text="β' = 1 − ᾱ_t/ᾱ_{t'}: √ᾱ_{t'}β'/(1−ᾱ_t), √(1−β')(1−ᾱ_{t'})/(1−ᾱ_t), (1−ᾱ_{t'})β'/(1−ᾱ_t)",
    equation=r"$\beta'=1-\bar\alpha_t/\bar\alpha_{t'}$: $\frac{\sqrt{\bar\alpha_{t'}}\beta'}{1-\bar\alpha_t}$, "
             r"$\frac{\sqrt{1-\beta'}(1-\bar\alpha_{t'})}{1-\bar\alpha_t}$, $\frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\beta'$",
    source="Ho et al. 2020, eqs. 6–7; Nichol & Dhariwal 2021, §4", inputs=_strided_inputs, reference=strided_posterior,
    cases=(case("stride2-3", min_stride=2, max_stride=3, lowest=-1), case("stride1-3", min_stride=1, max_stride=3,
                                                                          lowest=-1)),
    faults=(Fault("posterior at t − 1", "the one-step posterior q(x_{t−1} | x_t, x₀) when the sampler skips to "
                  "t' < t − 1 (huggingface/diffusers PR #2076, #9261)",
                  lambda c: strided_posterior(c, at_t_minus_one=True)),
            Fault("unstrided β_t", "ᾱ_{t'} right but βₜ of the full schedule where β' = 1 − ᾱₜ/ᾱ_{t'} belongs "
                  "(Nichol & Dhariwal 2021, §4)", lambda c: strided_posterior(c, beta_unstrided=True)),
            Fault("unstrided α_t in the x_t coefficient", "√αₜ = √(1 − βₜ) of the full schedule in the x_t "
                  "coefficient, where √(1 − β') belongs (Nichol & Dhariwal 2021, §4)",
                  lambda c: strided_posterior(c, alpha_unstrided=True))))


def learned_range_log_variance(c, interpolate_variances=False, unstrided=False, unmapped=False):
    r"""The learned-range log-variance between kept steps; the knobs are the known faults.

    .. math:: v = \tfrac12(\text{out} + 1),\quad \log\Sigma = v\log\beta' + (1-v)\log\tilde\beta'
    """
    a_t, a_p, beta = _pair(c, unstrided=unstrided)
    if unstrided:
        beta = onp.asarray(c["betas"], dtype=float)[onp.asarray(c["t"])]
    tilde = (1 - a_p) / (1 - a_t) * beta
    out = onp.asarray(c["model_var_values"], dtype=float)
    v = out if unmapped else 0.5 * (out + 1.0)
    if interpolate_variances:
        return onp.log(v * beta + (1 - v) * tilde)
    return v * onp.log(beta) + (1 - v) * onp.log(tilde)


def _learned_inputs(o, n, shape, rng):
    return {**_strided_inputs({**o, "lowest": 0, "first": 1}, n, shape, rng),
            "model_var_values": rng.uniform(-1.0, 1.0, n)}


LEARNED_RANGE = Objective(
    name="learned_range_variance", fields="`betas`, `t` ≥ 1, `t_prev` ≥ 0, `model_var_values` (n,) in [−1, 1]",
    text="v = (out + 1)/2, log Σ = v log β' + (1 − v) log β̃' (respaced β', β̃')",
    equation=r"$v\log\beta'+(1-v)\log\tilde\beta'$, $v=\frac{\text{out}+1}2$",
    source="Nichol & Dhariwal 2021, eq. 15 and §4; improved-diffusion `LEARNED_RANGE`", inputs=_learned_inputs,
    reference=learned_range_log_variance,
    cases=(case("stride1", min_stride=1, max_stride=1), case("stride2-3", min_stride=2, max_stride=3)),
    faults=(Fault("variances interpolated", "log(vβ + (1 − v)β̃): the variances interpolated where Nichol & "
                  "Dhariwal interpolate log-variances (huggingface/diffusers PR #2090; Nichol & Dhariwal 2021, "
                  "eq. 15)", lambda c: learned_range_log_variance(c, interpolate_variances=True)),
            Fault("unstrided β", "βₜ and β̃ₜ of the full schedule where the respaced β', β̃' belong "
                  "(huggingface/diffusers PR #3006)", lambda c: learned_range_log_variance(c, unstrided=True)),
            Fault("output used as v unmapped", "v = out where improved-diffusion maps the output in [−1, 1] to "
                  "v = (out + 1)/2 (openai/improved-diffusion p_mean_variance; Nichol & Dhariwal 2021, eq. 15)",
                  lambda c: learned_range_log_variance(c, unmapped=True))))

RECORDS = (STRIDED_POSTERIOR, LEARNED_RANGE)
