r"""Parametrisations: the score from a noise prediction, Tweedie's :math:`x_0` from a score, and
the v-target, each a record (map objectives) with its cases, its reference
(:mod:`refscore.diffusion`) and its known faults.

.. math:: s = -\varepsilon/\sigma,\qquad \hat x_0 = (x + \sigma^2 s)/\alpha,\qquad
          v = \alpha\varepsilon - \sigma x_0
          \quad(\text{Song et al. 2021, App. B; Efron 2011; Salimans \& Ho 2022, §4})
"""
from __future__ import annotations

import numpy as onp

from .. import diffusion as D
from ..diffusion.parametrisation import per_example
from .objective import Fault, Objective, case

__all__ = ["RECORDS"]


def _vp_pair(rng, n):
    r""":math:`(\alpha, \sigma)` with :math:`\alpha^2+\sigma^2=1`, one per example."""
    alpha = rng.uniform(0.2, 0.99, n)
    return alpha, onp.sqrt(1.0 - alpha**2)


# ---- score_from_eps ---------------------------------------------------------------------------------
def _score_from_eps_inputs(o, n, shape, rng):
    x = rng.standard_normal((n, *shape))
    return {"x": x, "eps": rng.standard_normal((n, *shape)), "sigma": rng.uniform(0.1, 2.0, n)}


def _score_as_code(c, sign=1.0, divisor=lambda c: c["sigma"]):
    r""":math:`-\text{sign}\cdot\varepsilon/\text{divisor}` (right: divisor :math:`\sigma`, sign +1)."""
    return -c["eps"] * sign / per_example(divisor(c), c["x"])


SCORE_FROM_EPS = Objective(
    name="score_from_eps", fields="`x`, `eps`, `sigma` (n,)", text="−ε/σ", equation=r"$-\varepsilon/\sigma$",
    source="Song et al. 2021, App. B", is_map=True, inputs=_score_from_eps_inputs,
    reference=lambda c: D.score_from_eps(c["eps"], c["sigma"]),
    cases=(case("flat", "flat"), case("img", "img")),
    faults=(Fault("sign", "+ε/σ: the score is −ε/σ (Song et al. 2021, Appendix B; score_sde losses.py)",
                  lambda c: _score_as_code(c, sign=-1.0)),
            Fault("σ² for σ", "−ε/σ²: the variance where the std belongs",
                  lambda c: _score_as_code(c, divisor=lambda c: c["sigma"] ** 2)),
            Fault("σ missing", "−ε: the noise prediction used as the score",
                  lambda c: _score_as_code(c, divisor=lambda c: 1.0 + 0 * c["sigma"]))))


# ---- x0_from_score and v_target ------------------------------------------------------------------------
def _vp_inputs(other):
    def inputs(o, n, shape, rng):
        x = rng.standard_normal((n, *shape))
        alpha, sigma = _vp_pair(rng, n)
        return {"x": x, other: rng.standard_normal((n, *shape)), "alpha": alpha, "sigma": sigma}
    return inputs


def _x0_as_code(c, sign=1.0, sigma_power=2, divide_by_alpha=True):
    r""":math:`(x + \text{sign}\cdot\sigma^{p} s)/\alpha` (right: sign +1, p = 2, the division kept)."""
    x = c["x"]
    var = c["sigma"] if sigma_power == 1 else c["sigma"] ** 2
    return (x + sign * per_example(var, x) * c["score"]) / per_example(c["alpha"] if divide_by_alpha else 1.0, x)


X0_FROM_SCORE = Objective(
    name="x0_from_score", fields="`x`, `score`, `alpha`, `sigma`", text="(x + σ² s)/α (Tweedie, VP)",
    equation=r"$(x+\sigma^2 s)/\alpha$ (Tweedie, VP)", source="Efron 2011; seed 003, eq. 11.13", is_map=True,
    inputs=_vp_inputs("score"), reference=lambda c: D.x0_from_score(c["x"], c["score"], c["alpha"], c["sigma"]),
    cases=(case("flat", "flat"), case("chw", "chw")),
    faults=(Fault("σ for σ²", "(x + σ s)/α: σ where σ² belongs (the slip of score_sde #26, in Tweedie's formula)",
                  lambda c: _x0_as_code(c, sigma_power=1)),
            Fault("α_t missing", "x + σ² s: the division by αₜ dropped (right for VE only; seed 003, eq. 11.13)",
                  lambda c: _x0_as_code(c, divide_by_alpha=False)),
            Fault("sign", "(x − σ² s)/α: the energy gradient used as the score", lambda c: _x0_as_code(c, sign=-1.0))))


def _v_as_code(c, sign=1.0, swapped=False):
    r""":math:`\text{sign}\cdot(\alpha\varepsilon - \sigma x_0)`, or with α and σ exchanged."""
    a, s = (c["sigma"], c["alpha"]) if swapped else (c["alpha"], c["sigma"])
    return sign * (per_example(a, c["x"]) * c["eps"] - per_example(s, c["x"]) * c["x"])


V_TARGET = Objective(
    name="v_target", fields="`x` ($x_0$), `eps`, `alpha`, `sigma`", text="α ε − σ x0",
    equation=r"$\alpha\varepsilon-\sigma x_0$", source="Salimans & Ho 2022, §4", is_map=True,
    inputs=_vp_inputs("eps"), reference=lambda c: D.v_from_eps(c["x"], c["eps"], c["alpha"], c["sigma"]),
    cases=(case("flat", "flat"), case("img", "img")),
    faults=(Fault("sign", "σx₀ − αε: v with the opposite sign (Salimans & Ho 2022, §4: v = αε − σx)",
                  lambda c: _v_as_code(c, sign=-1.0)),
            Fault("α and σ swapped", "σε − αx₀: the two coefficients exchanged (Salimans & Ho 2022, §4)",
                  lambda c: _v_as_code(c, swapped=True))))

def _x0_from_v_as_code(c, sign=-1.0, swapped=False, eps_formula=False):
    r""":math:`\alpha x + \text{sign}\cdot\sigma v` (right: sign −1), with α and σ exchanged, or the
    ε̂ formula :math:`\sigma x + \alpha v`."""
    a, s = (c["sigma"], c["alpha"]) if (swapped or eps_formula) else (c["alpha"], c["sigma"])
    sign = 1.0 if eps_formula else sign
    return per_example(a, c["x"]) * c["x"] + sign * per_example(s, c["x"]) * c["v"]


X0_FROM_V = Objective(
    name="x0_from_v", fields="`x` ($x_t$), `v`, `alpha`, `sigma`", text="α x_t − σ v",
    equation=r"$\alpha x_t-\sigma v$", source="Salimans & Ho 2022, §4", is_map=True,
    inputs=_vp_inputs("v"), reference=_x0_from_v_as_code, cases=(case("flat", "flat"), case("img", "img")),
    faults=(Fault("wrong sign", "α x_t + σ v where α x_t − σ v belongs (huggingface/diffusers PR #1421; Salimans & "
                  "Ho 2022, §4)", lambda c: _x0_from_v_as_code(c, sign=1.0)),
            Fault("α and σ swapped", "σ x_t − α v: the two coefficients exchanged (Salimans & Ho 2022, §4)",
                  lambda c: _x0_from_v_as_code(c, swapped=True)),
            Fault("ε̂ for x̂₀", "σ x_t + α v, the noise ε̂ recovered from v, returned as x̂₀ (Salimans & Ho 2022, §4)",
                  lambda c: _x0_from_v_as_code(c, eps_formula=True))))

RECORDS = (SCORE_FROM_EPS, X0_FROM_SCORE, V_TARGET, X0_FROM_V)
