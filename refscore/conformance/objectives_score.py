r"""Score matching: ESM, ISM and SSM (Hyvärinen 2005; Song et al. 2019), each a record with its
cases, its reference (:mod:`refscore.losses`) and its known faults; and the pieces the other
score-side families share: a case's points and model (:func:`points_and_model`) and the faults of
a loss's reduction (:data:`REDUCTION_FAULTS`).

Notation as in :mod:`refscore.losses`; :math:`\bar x` is the flattened point. A "last-axis sum"
reduces an ``(n, *shape)`` array over its last axis only (``x.sum(-1)``) and then averages the
rest: for a per-feature sum this scales it by :math:`C/d` (C = shape[-1]); for SSM, whose
projections are dot products, it is modelled as the code computes it (:func:`ssm_as_code`).

.. math:: \texttt{esm}_i = \tfrac12\|s(x_i)-s^*(x_i)\|^2,\quad
          \texttt{ism}_i = \tfrac12\|s(x_i)\|^2 + \operatorname{tr}\nabla_x s(x_i)
"""
from __future__ import annotations

import numpy as onp

from .. import losses
from .models import flat, random_model, score_fn, score_jacobian
from .objective import Fault, Objective, case

__all__ = ["RECORDS", "points_and_model", "sq", "dim", "flat_stack", "ssm_as_code", "EXTRA_1_D", "LAST_AXIS",
           "MISSING_HALF"]


def sq(a):
    r"""Row-wise squared norms of ``(n, d)``.

    .. math:: \|a_i\|^2 = \textstyle\sum_k a_{ik}^2
    """
    return onp.sum(a * a, axis=1)


def dim(c):
    r"""The number of features of a case's points.

    .. math:: d = \textstyle\prod_k \text{shape}_k
    """
    return int(onp.prod(c["x"].shape[1:]))


def flat_stack(a):
    r"""``(K, n, *shape) -> (K, n, d)``: a stack of per-example arrays, each flattened (row-major).

    .. math:: d = \textstyle\prod_k \text{shape}_k
    """
    return a.reshape(a.shape[0], a.shape[1], -1)


def points_and_model(options, n, shape, rng, parametrization="ve"):
    r"""Points ``x`` ``(n, *shape)`` and a random model of kind ``options["model"]``, in that order
    from ``rng`` (:func:`refscore.conformance.models.random_model`).

    .. math:: x_i \sim \mathcal N(0, I),\quad \text{then the model's parameters}
    """
    x = rng.standard_normal((n, *shape))
    return {"x": x, "model": random_model(options["model"], int(onp.prod(shape)), rng, parametrization)}


# ---- the faults of a loss's reduction, shared by every loss -----------------------------------
EXTRA_1_D = Fault("extra 1/d", "a mean over the d features where the sum belongs (e.g. torch .mean() on the "
                  "squared error)", lambda c: c["expected"] / dim(c))
LAST_AXIS = Fault("last-axis-only sum", "squared norms summed over the last axis only (x.sum(-1)) on "
                  "image-shaped input, the rest averaged", lambda c: c["expected"] * c["x"].shape[-1] / dim(c))
MISSING_HALF = Fault("missing ½", "the ½ of the ½ convention is dropped: ‖·‖² instead of ½‖·‖²",
                     lambda c: 2.0 * c["expected"])


# ---- esm --------------------------------------------------------------------------------------
def _esm_inputs(o, n, shape, rng):
    c = points_and_model(o, n, shape, rng)
    return {**c, "target": random_model("quadratic", int(onp.prod(shape)), rng)}


def _esm(c):
    return losses.esm(score_fn(c["model"]), flat(c["x"]), score_fn(c["target"]), reduction="none")


def _esm_sign(c):
    X = flat(c["x"])
    return 0.5 * sq(-score_fn(c["model"])(X) - score_fn(c["target"])(X))


ESM = Objective(
    name="esm", fields="`target` (a model: s*)", text="½‖s(x) − s*(x)‖²",
    equation=r"$\tfrac12\lVert s(x)-s^*(x)\rVert^2$", source="Hyvärinen 2005, eq. 2; seed 003, eq. 11.2",
    inputs=_esm_inputs, reference=_esm,
    cases=(case("quadratic-flat", "flat", model="quadratic"), case("mlp-img", "img", model="mlp"),
           case("mlp-chw", "chw", model="mlp")),
    faults=(EXTRA_1_D, LAST_AXIS, MISSING_HALF,
            Fault("score sign (+∇E)", "the model's score taken as +∇E instead of −∇E", _esm_sign)))


# ---- ism --------------------------------------------------------------------------------------
def _ism(c):
    return losses.ism(score_fn(c["model"]), flat(c["x"]), reduction="none")


def _ism_as_code(c, half=0.5, trace=lambda tr: tr):
    """½‖s‖² + tr ∇s with the ½ or the trace term changed."""
    X = flat(c["x"])
    s, tr = score_fn(c["model"])(X), onp.trace(score_jacobian(c["model"], X), axis1=1, axis2=2)
    return half * sq(s) + trace(tr)


ISM = Objective(
    name="ism", fields="", text="½‖s(x)‖² + tr ∇s(x)",
    equation=r"$\tfrac12\lVert s(x)\rVert^2+\operatorname{tr}\nabla_x s(x)$",
    source="Hyvärinen 2005, Thm 1", inputs=points_and_model, reference=_ism,
    cases=(case("quadratic-flat", "flat", model="quadratic"), case("mlp-flat", "flat", model="mlp"),
           case("mlp-img", "img", model="mlp"), case("mlp-chw", "chw", model="mlp")),
    faults=(EXTRA_1_D, LAST_AXIS,
            Fault("missing ½", "‖s‖² + tr ∇s: the ½ dropped on the norm term only",
                  lambda c: _ism_as_code(c, half=1.0)),
            Fault("notes' convention (no ½)", "‖s‖² + 2 tr ∇s = 2·ISM: the seeds' form without the ½ "
                  "(seed 003_…, after eq. 11.2)", lambda c: 2.0 * c["expected"]),
            Fault("trace divided by d", "tr ∇s / d: the trace averaged over the diagonal instead of summed",
                  lambda c: _ism_as_code(c, trace=lambda tr: tr / dim(c))),
            Fault("trace sign", "½‖s‖² − tr ∇s: the Hessian of E used where −∇²E = ∇s belongs",
                  lambda c: _ism_as_code(c, trace=lambda tr: -tr))))


# ---- ssm --------------------------------------------------------------------------------------
def _ssm_inputs(o, n, shape, rng):
    c = points_and_model(o, n, shape, rng)
    M = o["M"]
    if o["projection"] == "gaussian":
        v = rng.standard_normal((M, n, *shape))
    else:
        v = rng.choice([-1.0, 1.0], (M, n, *shape))
    return {**c, "v": v, "projection": o["projection"], "variance_reduced": o["variance_reduced"]}


def _ssm(c):
    return losses.ssm(score_fn(c["model"]), flat(c["x"]), v=flat_stack(c["v"]),
                      variance_reduced=bool(c["variance_reduced"]), reduction="none")


def ssm_as_code(c, rows="all", scale=1.0):
    r"""SSM as code that reduces its dot products with ``rows``, on the case's own probes.

    The code computes per-row projections :math:`p_r = \sum_{k\in r} v_k s_k` (``(v*s).sum(-1)``),
    their gradient :math:`g = \nabla_x \textstyle\sum_r p_r = \nabla s^\top v`, the rows
    :math:`q_r = \sum_{k\in r} v_k g_k`, and averages over rows and probes:

    .. math:: \frac1R\Big[v^\top\nabla s\,v + \tfrac12\sum_r (v_r\cdot s_r)^2\Big]
              \quad(\text{VR: } \tfrac1R[v^\top\nabla s\,v + \tfrac12\|s\|^2])

    ``rows="all"`` (R = 1) is the correct SSM; ``"last"`` sums over the last axis only
    (R = d/C rows of C = shape[-1], TorchEBM's sliced SM on ``(n, R, C)`` input, issue 21 A.1);
    ``scale = 1/d`` turns every sum into a mean (``.mean(-1)``, so :math:`g` shrinks by 1/d too).
    """
    X = flat(c["x"])
    n, d = X.shape
    C = c["x"].shape[-1] if rows == "last" else d
    V = c["v"].reshape(c["v"].shape[0], n, d // C, C)  # (M, n, R, C)
    s, J = score_fn(c["model"])(X), score_jacobian(c["model"], X)
    g = scale * onp.einsum("nij,mni->mnj", J, V.reshape(len(V), n, d)).reshape(V.shape)  # ∇(Σ_r p_r)
    S = s.reshape(n, d // C, C)
    q, p = scale * onp.sum(V * g, -1), scale * onp.sum(V * S, -1)  # (M, n, R)
    second = 0.5 * scale * onp.sum(S * S, -1) if c["variance_reduced"] else 0.5 * p**2
    return onp.mean(q + second, axis=(0, 2))


def _ssm_changed(c, half=0.5, trace_scale=1.0, unit_sphere=False, swap_vr=False, sum_projections=False):
    """SSM with one thing changed: the ½, the trace's scale, the probes' norm, the variant, or the
    mean over the M projections."""
    X = flat(c["x"])
    V = c["v"].reshape(c["v"].shape[0], X.shape[0], -1)  # (M, n, d)
    s, J = score_fn(c["model"])(X), score_jacobian(c["model"], X)
    quad, proj = onp.einsum("mni,nij,mnj->mn", V, J, V), onp.einsum("mni,ni->mn", V, s)  # (M, n)
    if sum_projections:
        return onp.sum(quad, 0) + (0.5 * sq(s) * quad.shape[0] if c["variance_reduced"]
                                   else onp.sum(0.5 * proj**2, 0))
    norm2 = onp.sum(V * V, 2) if unit_sphere else 1.0
    vr = bool(c["variance_reduced"]) != swap_vr
    second = half * sq(s) if vr else onp.mean(half * proj**2 / norm2, axis=0)
    return trace_scale * onp.mean(quad / norm2, axis=0) + second


def _ssm_case(tag, shape, model, projection, variance_reduced, M):
    return case(tag, shape, model=model, projection=projection, variance_reduced=variance_reduced, M=M)


SSM = Objective(
    name="ssm", fields="`v` (M, n, *shape), `variance_reduced`, `projection` (informative)",
    text="(1/M) Σ_m [v_mᵀ ∇s(x) v_m + ½(v_mᵀ s(x))²]; variance-reduced: ½‖s(x)‖² replaces ½(v_mᵀs)²",
    equation=r"$\frac1M\sum_m v_m^\top\nabla_x s\,v_m+\tfrac12(v_m^\top s)^2$ "
             r"(VR: $\tfrac12\lVert s\rVert^2$)",
    source="Song et al. 2019, eqs. 7–8", inputs=_ssm_inputs, reference=_ssm,
    cases=(_ssm_case("quadratic-flat-gauss-M1", "flat", "quadratic", "gaussian", False, 1),
           _ssm_case("mlp-img-gauss-M3", "img", "mlp", "gaussian", False, 3),
           _ssm_case("mlp-img-gauss-vr-M3", "img", "mlp", "gaussian", True, 3),
           _ssm_case("mlp-flat-radem-M2", "flat", "mlp", "rademacher", False, 2),
           _ssm_case("mlp-chw-radem-vr-M3", "chw", "mlp", "rademacher", True, 3),
           _ssm_case("quadratic-chw-gauss-vr-M4", "chw", "quadratic", "gaussian", True, 4)),
    faults=(
        Fault("last-axis-only sum", "dot products (v·s, v·∇(v·s)) summed over the last axis only (.sum(-1)) on "
              "image-shaped input, then averaged over the rows: (1/R)[vᵀ∇s v + ½ Σ_r (v_r·s_r)²] "
              "(TorchEBM 0.8.9 sliced SM)", lambda c: ssm_as_code(c, rows="last")),
        Fault("extra 1/d", "every feature sum a mean (.mean(-1)): v·s/d, and its gradient 1/d too",
              lambda c: ssm_as_code(c, scale=1.0 / dim(c))),
        Fault("missing ½", "(vᵀs)² or ‖s‖² without the ½ of Song et al. (2019), eqs. 7–8",
              lambda c: _ssm_changed(c, half=1.0)),
        Fault("unit-sphere probes", "v/‖v‖ probes have E[vvᵀ] = I/d: the v-terms shrink by 1/d (plain form: "
              "ISM/d, same minimiser; variance-reduced form: only the trace shrinks, the minimiser moves)",
              lambda c: _ssm_changed(c, unit_sphere=True)),
        Fault("trace term divided by d", "vᵀ∇s v / d: the Hutchinson trace estimate scaled by 1/d",
              lambda c: _ssm_changed(c, trace_scale=1.0 / dim(c))),
        Fault("trace sign", "−vᵀ∇s v: the Hessian of E used where ∇s = −∇²E belongs",
              lambda c: _ssm_changed(c, trace_scale=-1.0)),
        Fault("sum over projections", "the M projections summed instead of averaged (×M)",
              lambda c: _ssm_changed(c, sum_projections=True)),
        Fault("variance reduction swapped", "½(vᵀs)² and ½‖s‖² exchanged: the other SSM variant than the "
              "case asks for", lambda c: _ssm_changed(c, swap_vr=True))))

RECORDS = (ESM, ISM, SSM)
