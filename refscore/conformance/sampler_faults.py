r"""The reference sampler steps and their known faults, written in the user's interface
``step(state, h, rng, target) -> state`` so that one replay harness runs them all.

Each step draws its noise from ``rng`` (``standard_normal``) and its Metropolis uniform from
``rng`` (``uniform``); fed the same scripted draws as a user's step (:mod:`.sampler_replay`), the
reference and each fault variant say exactly what the user's step should have returned, and which
known bug it did return.

.. math:: \text{MALA: } y = x + h\,s(x) + \sqrt{2h}\,z,\quad
          \log\alpha = \log\pi(y)-\log\pi(x) + \log q(x\mid y) - \log q(y\mid x),\quad
          \log q(y\mid x) = -\frac{\|y-x-h\,s(x)\|^2}{4h}

(Roberts & Tweedie 1996, eqs. 1.2–1.3 with :math:`h=\sigma^2/2`); RWMH :math:`y = x + h z`,
:math:`\log\alpha = \log\pi(y)-\log\pi(x)` (Metropolis et al. 1953; ``h`` is the proposal's
standard deviation); MH with a user's proposal :math:`q` (Hastings 1970); ULA
:math:`x' = x + h\,s(x) + \sqrt{2h}\,z` (seed ``001_…``, Langevin sampling).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as onp

__all__ = ["SamplerFault", "SAMPLER_FAULTS", "faults_of_mode", "reference_sampler", "MODES"]

MODES = ("mala", "ula", "rwmh", "mh")


class SamplerFault(NamedTuple):
    r"""A classic sampler bug: its name, the modes it applies to, what the faulty code does and where
    it shipped.

    .. math:: \text{fault} = (\text{name}, \text{modes}, \text{text}, \text{source})
    """

    name: str
    modes: tuple
    text: str
    source: str


_MH = ("mala", "rwmh", "mh")
SAMPLER_FAULTS = {f.name: f for f in (
    SamplerFault("swapped proposal densities", ("mala", "mh"),
                 "log q(y|x) − log q(x|y) where log q(x|y) − log q(y|x) belongs", "blackjax-devs/blackjax #653"),
    SamplerFault("no proposal correction", ("mala",),
                 "log α = log π(y) − log π(x): a Langevin proposal without its Hastings term",
                 "Ciela-Institute/caustics PR #388 (a 'MALA' that was ULA)"),
    SamplerFault("asymmetric proposal without its Hastings term", ("mh",),
                 "log α = log π(y) − log π(x) for a proposal with q(y|x) ≠ q(x|y)", "Hastings (1970)"),
    SamplerFault("density variance h", ("mala",),
                 "log q = −‖y − x − h s‖²/(2h): variance h in the density while the move adds √(2h) z",
                 ""),
    SamplerFault("reverse density at the current gradient", ("mala",),
                 "q(x|y) built with s(x) instead of s(y)", ""),
    SamplerFault("τ∇ drift, 4τ denominator", ("mala",),
                 "the move is x + (τ/2)∇log π + √τ z (τ = 2h) but the density uses drift τ∇log π and "
                 "denominator 4τ", "bat/BAT.jl #532"),
    SamplerFault("log q averaged over dimensions", ("mala",),
                 "log q = −mean_j (y − x − h s)_j²/(4h): a mean over coordinates where the sum belongs", ""),
    SamplerFault("noise ∝ h", ("mala", "ula"),
                 "the move adds 2h·z (noise std 2h, ∝ h) where √(2h)·z belongs",
                 "blei-lab/edward #722; google-research/ibc #6"),
    SamplerFault("noise variance h", ("ula",), "x + h s + √h z: noise variance h where 2h belongs",
                 "NCSN's α read as h (Song & Ermon 2019, Alg. 1 writes α/2 and √α)"),
    SamplerFault("drift sign", ("ula",), "x − h s + √(2h) z: a step up the energy", ""),
    SamplerFault("always accept", _MH, "every proposal accepted: an unadjusted step labelled Metropolis",
                 "Ciela-Institute/caustics PR #388"),
    SamplerFault("u > α", _MH, "accepted when u > α (probability 1 − α): the comparison reversed", ""),
    SamplerFault("threshold sign", _MH, "accepted when −log u < log α: an Exp(1) threshold without its minus sign",
                 "lollcat/fab-jax PR #14"),
    SamplerFault("logp_new − logp_new", _MH, "log π(y) − log π(y) = 0 in the ratio: the target drops out",
                 "bob-carpenter/walnuts #27"),
    SamplerFault("stale log-density after rejection", _MH,
                 "a rejected chain keeps x but carries log π(y) into the next step", ""),
    SamplerFault("stale score after rejection", ("mala",),
                 "a rejected chain keeps x but carries s(y) into the next step", ""),
    SamplerFault("rejected chain still moves", ("mala",),
                 "x += h·s(x) in place before the noise is added: a rejected chain returns x + h s(x), not x", ""),
    SamplerFault("one uniform for all chains", _MH, "one u shared by every chain: exact per chain, chains correlated",
                 ""),
    SamplerFault("reused noise", ("mala", "ula", "rwmh"),
                 "the same z at every step (noise drawn once, or a key never split)", ""),
)}


def faults_of_mode(mode):
    r"""The names of the faults that apply to ``mode`` (``mala``, ``ula``, ``rwmh``, ``mh``).

    .. math:: \{f : \text{mode} \in f.\text{modes}\}
    """
    return [f.name for f in SAMPLER_FAULTS.values() if mode in f.modes]


def _log_q_langevin(to, given, score_given, h, fault):
    drift, denom = (2.0, 8.0 * h) if fault == "τ∇ drift, 4τ denominator" else (1.0, 4.0 * h)
    denom = 2.0 * h if fault == "density variance h" else denom
    r = to - given - drift * h * score_given
    return -(onp.mean if fault == "log q averaged over dimensions" else onp.sum)(r * r, axis=1) / denom


def _correction(kind, fault, x, y, s_x, s_y, h, log_q, target):
    if kind == "rwmh" or fault in ("no proposal correction", "asymmetric proposal without its Hastings term"):
        return 0.0
    if kind == "mh":
        forward, reverse = log_q(y, x, h, target), log_q(x, y, h, target)
    else:
        reverse = _log_q_langevin(x, y, s_x if fault == "reverse density at the current gradient" else s_y, h, fault)
        forward = _log_q_langevin(y, x, s_x, h, fault)
    return forward - reverse if fault == "swapped proposal densities" else reverse - forward


def _accept(fault, log_u, log_r):
    if fault == "always accept":
        return onp.ones(log_u.shape, bool)
    if fault == "u > α":
        return log_u > log_r
    if fault == "threshold sign":
        return -log_u < log_r
    return log_u < log_r


def _noise(rng, shape, memory=None):
    """Fresh noise, or (``memory`` given: the reused-noise fault) the noise drawn at the first call."""
    if memory is None:
        return rng.standard_normal(shape)
    if shape not in memory:
        memory[shape] = rng.standard_normal(shape)
    return memory[shape]


def _ula(fault, memory):
    def step(x, h, rng, target):
        x = onp.asarray(x, dtype=float)
        z = _noise(rng, x.shape, memory if fault == "reused noise" else None)
        noise = {"noise ∝ h": 2.0 * h, "noise variance h": math.sqrt(h)}.get(fault, math.sqrt(2.0 * h))
        return x + (-h if fault == "drift sign" else h) * target.score(x) + noise * z
    return step


def reference_sampler(mode, fault=None, propose=None, log_q=None):
    r"""The reference step of ``mode`` (or its ``fault`` variant) as ``(init, step)`` in the user
    interface; MH steps carry the state ``(x, log π(x), s(x))``, ULA the position alone. ``mh``
    needs the user's ``propose(x, h, rng, target)`` and ``log_q(to, given, h, target)``.

    .. math:: x_{t+1} = \begin{cases} y & \log u < \log\alpha(x_t, y)\\ x_t & \text{otherwise}\end{cases}
    """
    if fault is not None and mode not in SAMPLER_FAULTS[fault].modes:
        raise ValueError(f"fault {fault!r} does not apply to mode {mode!r}; its faults: {faults_of_mode(mode)}")
    memory = {}
    if mode == "ula":
        return None, _ula(fault, memory)

    def init(x, target):
        x = onp.asarray(x, dtype=float)
        return x, target.log_prob(x), target.score(x) if mode == "mala" else None

    def step(state, h, rng, target):
        x, lp_x, s_x = state
        if mode == "mh":
            y, drift = onp.asarray(propose(x, h, rng, target), dtype=float), x
        else:
            z = _noise(rng, x.shape, memory if fault == "reused noise" else None)
            drift = x + h * s_x if mode == "mala" else x
            y = drift + (2.0 * h if fault == "noise ∝ h" else math.sqrt(2.0 * h) if mode == "mala" else h) * z
        lp_y = target.log_prob(y)
        s_y = target.score(y) if mode == "mala" else None
        log_r = (0.0 if fault == "logp_new − logp_new" else lp_y - lp_x) + \
            _correction(mode, fault, x, y, s_x, s_y, h, log_q, target)
        u = rng.uniform(size=x.shape[0])
        u = onp.full(x.shape[0], u[0]) if fault == "one uniform for all chains" else u
        acc = _accept(fault, onp.log(u), log_r)
        kept = drift if fault == "rejected chain still moves" else x
        new_lp = lp_y if fault == "stale log-density after rejection" else onp.where(acc, lp_y, lp_x)
        new_s = None if s_y is None else s_y if fault == "stale score after rejection" else \
            onp.where(acc[:, None], s_y, s_x)
        return onp.where(acc[:, None], y, kept), new_lp, new_s

    return init, step
