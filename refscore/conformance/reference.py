r"""The reference per-example values of every objective, computed by refscore itself.

Each function takes a case (a dict of NumPy float64 arrays, points ``x`` of shape ``(n, *shape)``)
and returns what ``case["expected"]`` holds: one number per example, ``(n,)``. Image-shaped
arrays are flattened to rows ``(n, d)`` at this boundary, because refscore's losses take rows.
The "map" objectives (``tweedie``, ``tweedie_vp``, ``langevin_step``) also return the mapped
points ``expected_x`` ``(n, *shape)``; their per-example scalar is :math:`\|\text{out}_i\|^2`.

.. math::
   \texttt{esm}_i &= \tfrac12\|s(x_i)-s^*(x_i)\|^2 \\
   \texttt{ism}_i &= \tfrac12\|s(x_i)\|^2 + \operatorname{tr}\nabla_x s(x_i) \\
   \texttt{ssm}_i &= \tfrac1M\textstyle\sum_m v_{mi}^\top\nabla_x s(x_i)\,v_{mi}
                     + \tfrac12 (v_{mi}^\top s(x_i))^2
                     \quad(\text{VR: } \tfrac12\|s(x_i)\|^2 \text{ for the second term})\\
   \texttt{dsm}_i &= \tfrac12\|s(x_i+\sigma z_i) + z_i/\sigma\|^2 \\
   \texttt{ncsn}_i &= \tfrac1L\textstyle\sum_l \lambda(\sigma_l)\,\tfrac12
                      \|s(x_i+\sigma_l z_{li},\sigma_l) + z_{li}/\sigma_l\|^2 \\
   \texttt{ncsn\_sampled}_i &= \lambda(\sigma_{k_i})\,\tfrac12\|s(x_i+\sigma_{k_i}z_i,\sigma_{k_i})
                      + z_i/\sigma_{k_i}\|^2,\quad k_i = \texttt{level\_index}_i \\
   \texttt{vp\_denoising}_i &= \|x'_i + \beta s(x'_i,\beta) - \sqrt{1-\beta}\,x_i\|^2,
                      \quad x'_i=\sqrt{1-\beta}\,x_i+\sqrt\beta\,\varepsilon_i \\
   \texttt{tweedie}: \hat x_i &= x_i + \sigma^2 s(x_i,\sigma),\qquad
   \texttt{tweedie\_vp}: \hat x_i = (x_i + \beta s(x_i,\beta))/\sqrt{1-\beta} \\
   \texttt{langevin\_step}: x'_i &= x_i + h\,s(x_i) + \sqrt{2h}\,z_i \\
   \texttt{mala\_log\_ratio}_i &= \log\tilde p(y_i)-\log\tilde p(x_i) + \log q(x_i\mid y_i)
                      - \log q(y_i\mid x_i),\quad \log q(y\mid x) = -\frac{\|y-x-h s(x)\|^2}{4h}

Sources: Hyvärinen (2005) eq. 4; Song et al. (2019) eqs. 7–8; Vincent (2011) eq. 11; Song & Ermon
(2019) eq. 6; seed ``003_…`` eqs. 11.12–11.16; seed ``001_…`` (Langevin); Roberts & Tweedie
(1996) and seed ``003_…`` §11.2.1 (MALA).
"""
from __future__ import annotations

import numpy as onp

from .. import losses, samplers, tweedie
from .models import flat, log_prob_fn, noise_conditional_score_fn, score_fn
from .reference_diffusion import DIFFUSION_MAPS, DIFFUSION_REFERENCE

__all__ = ["reference_values", "MAP_OBJECTIVES"]

MAP_OBJECTIVES = ("tweedie", "tweedie_vp", "langevin_step") + DIFFUSION_MAPS


def _flat_stack(a):
    """(K, n, *shape) -> (K, n, d)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def _esm(c, x):
    return losses.esm(score_fn(c["model"]), x, score_fn(c["target"]), reduction="none")


def _ism(c, x):
    return losses.ism(score_fn(c["model"]), x, reduction="none")


def _ssm(c, x):
    return losses.ssm(score_fn(c["model"]), x, v=_flat_stack(c["v"]),
                      variance_reduced=bool(c["variance_reduced"]), reduction="none")


def _dsm(c, x):
    return losses.dsm(score_fn(c["model"], c.get("sigma")), x, float(c["sigma"]), z=flat(c["z"]),
                      reduction="none")


def _ncsn(c, x):
    return losses.ncsn(noise_conditional_score_fn(c["model"]), x, c["sigmas"], z=_flat_stack(c["z"]),
                       weighting=str(c["weighting"]), reduction="none")


def _ncsn_sampled(c, x):
    return losses.ncsn(noise_conditional_score_fn(c["model"]), x, c["sigmas"], z=flat(c["z"]),
                       weighting=str(c["weighting"]), reduction="none", levels="sample",
                       level_index=onp.asarray(c["level_index"], dtype=int))


def _vp(c, x):
    return losses.vp_denoising(noise_conditional_score_fn(c["model"]), x, float(c["beta"]),
                               eps=flat(c["eps"]), reduction="none")


def _tweedie(c, x):
    return tweedie.denoise(score_fn(c["model"], c["sigma"]), x, float(c["sigma"]))


def _tweedie_vp(c, x):
    return tweedie.denoise_vp(score_fn(c["model"], c["beta"]), x, float(c["beta"]))


def _langevin(c, x):
    return samplers.langevin_move(x, score_fn(c["model"])(x), float(c["h"]), flat(c["z"]))


def _mala(c, x):
    lp, s, h, y = log_prob_fn(c["model"]), score_fn(c["model"]), float(c["h"]), flat(c["y"])
    return (lp(y) - lp(x) + samplers.langevin_log_q(to=x, given=y, score_given=s(y), h=h)
            - samplers.langevin_log_q(to=y, given=x, score_given=s(x), h=h))


_REFERENCE = {"esm": _esm, "ism": _ism, "ssm": _ssm, "dsm": _dsm, "ncsn": _ncsn, "ncsn_sampled": _ncsn_sampled,
              "vp_denoising": _vp, "tweedie": _tweedie, "tweedie_vp": _tweedie_vp,
              "langevin_step": _langevin, "mala_log_ratio": _mala}


def reference_values(case):
    r"""``(expected (n,), expected_x (n, *shape) or None)`` for a case, by refscore.

    For map objectives ``expected_x`` is the mapped points and ``expected`` their squared norms:

    .. math:: \texttt{expected}_i = \lVert\texttt{expected\_x}_i\rVert^2
              \quad(\texttt{tweedie},\ \texttt{tweedie\_vp},\ \texttt{langevin\_step})

    and otherwise the per-example values of the module docstring's table.
    """
    if case["objective"] in DIFFUSION_REFERENCE:
        out = onp.asarray(DIFFUSION_REFERENCE[case["objective"]](case), dtype=float)
        if case["objective"] not in MAP_OBJECTIVES:
            return out, None
        out = flat(out)
        return onp.sum(out * out, axis=1), out.reshape(case["x"].shape)
    x = onp.asarray(case["x"], dtype=float)
    out = onp.asarray(_REFERENCE[case["objective"]](case, flat(x)), dtype=float)
    if case["objective"] in MAP_OBJECTIVES:
        return onp.sum(out * out, axis=1), out.reshape(x.shape)
    return out, None
