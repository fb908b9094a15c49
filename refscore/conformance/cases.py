r"""The built-in conformance cases: deterministic inputs, explicit randomness, refscore's values.

Every case is a plain ``dict`` (API.md, "Conformance"): ``name``, ``objective``, points ``x`` of
shape ``(n, *shape)`` (flat ``(n, d)`` or image-shaped ``(n, 2, 2)`` / ``(n, 1, 3, 3)``, d the
product), a ``model`` (see :mod:`refscore.conformance.models`), the randomness the objective
consumes (``v``, ``z``, ``eps``, ``y``), its hyper-parameters, and ``expected`` ``(n,)`` computed by
refscore (:mod:`refscore.conformance.reference`). Map objectives also carry ``expected_x``.

The inputs are drawn from ``numpy.random.default_rng(crc32(name))``, so a case's numbers depend
only on its name; :func:`refscore.conformance.export` freezes them to files.
"""
from __future__ import annotations

import copy
import zlib

import numpy as onp

from .cases_diffusion import DIFFUSION_OBJECTIVES, DIFFUSION_SPECS, diffusion_fields
from .models import spd
from .reference import reference_values

__all__ = ["cases", "OBJECTIVES"]

SCORE_OBJECTIVES = ("esm", "ism", "ssm", "dsm", "ncsn", "ncsn_sampled", "vp_denoising", "tweedie",
                    "tweedie_vp", "langevin_step", "mala_log_ratio")

OBJECTIVES = SCORE_OBJECTIVES + DIFFUSION_OBJECTIVES

N = 6  # examples per case
SHAPES = {"flat": (3,), "img": (2, 2), "chw": (1, 3, 3)}

# (objective, model kind, shape key, objective options): one case each.
_SPECS = [
    ("esm", "quadratic", "flat", {}),
    ("esm", "mlp", "img", {}),
    ("esm", "mlp", "chw", {}),
    ("ism", "quadratic", "flat", {}),
    ("ism", "mlp", "flat", {}),
    ("ism", "mlp", "img", {}),
    ("ism", "mlp", "chw", {}),
    ("ssm", "quadratic", "flat", {"projection": "gaussian", "variance_reduced": False, "M": 1}),
    ("ssm", "mlp", "img", {"projection": "gaussian", "variance_reduced": False, "M": 3}),
    ("ssm", "mlp", "img", {"projection": "gaussian", "variance_reduced": True, "M": 3}),
    ("ssm", "mlp", "flat", {"projection": "rademacher", "variance_reduced": False, "M": 2}),
    ("ssm", "mlp", "chw", {"projection": "rademacher", "variance_reduced": True, "M": 3}),
    ("ssm", "quadratic", "chw", {"projection": "gaussian", "variance_reduced": True, "M": 4}),
    ("dsm", "quadratic", "flat", {"sigma": 0.7}),
    ("dsm", "mlp", "img", {"sigma": 0.3}),
    ("dsm", "gaussian_family", "chw", {"sigma": 1.6}),
    ("ncsn", "gaussian_family", "flat", {"sigmas": [2.0, 0.9, 0.4], "weighting": "sigma2"}),
    ("ncsn", "gaussian_family", "img", {"sigmas": [1.5, 0.5], "weighting": "none"}),
    ("ncsn", "mlp", "chw", {"sigmas": [3.0, 1.2, 0.6, 0.25], "weighting": "sigma2"}),
    ("ncsn_sampled", "gaussian_family", "flat", {"sigmas": [2.0, 0.9, 0.4], "weighting": "sigma2"}),
    ("ncsn_sampled", "gaussian_family", "img", {"sigmas": [1.5, 0.7, 0.3], "weighting": "none"}),
    ("ncsn_sampled", "mlp", "chw", {"sigmas": [3.0, 1.2, 0.6, 0.25], "weighting": "sigma2"}),
    ("vp_denoising", "gaussian_family", "flat", {"beta": 0.3}),
    ("vp_denoising", "mlp", "img", {"beta": 0.15}),
    ("vp_denoising", "gaussian_family", "chw", {"beta": 0.6}),
    ("tweedie", "gaussian_family", "flat", {"sigma": 0.8}),
    ("tweedie", "gaussian_family", "img", {"sigma": 1.7}),
    ("tweedie_vp", "gaussian_family", "flat", {"beta": 0.35}),
    ("tweedie_vp", "gaussian_family", "chw", {"beta": 0.7}),
    ("langevin_step", "quadratic", "flat", {"h": 0.1}),
    ("langevin_step", "mlp", "img", {"h": 0.03}),
    ("mala_log_ratio", "quadratic", "flat", {"h": 0.2}),
    ("mala_log_ratio", "mlp", "img", {"h": 0.6}),
]

_VP = ("vp_denoising", "tweedie_vp")


def _model(kind, d, rng, objective):
    if kind == "quadratic":
        return {"kind": "quadratic", "A": spd(d, rng, 0.5, 2.0), "b": 0.5 * rng.standard_normal(d)}
    if kind == "mlp":
        weights = []
        for fan_in, fan_out in zip((d, 8, 8), (8, 8, 1)):
            weights += [rng.standard_normal((fan_in, fan_out)) / onp.sqrt(fan_in),
                        0.3 * rng.standard_normal(fan_out)]
        return {"kind": "mlp", "weights": weights, "activation": "softplus"}
    return {"kind": "gaussian_family", "mean": rng.standard_normal(d), "cov": spd(d, rng, 0.3, 1.5),
            "parametrization": "vp" if objective in _VP else "ve"}


def _randomness(objective, opts, n, shape, rng, case):
    """The objective's explicit randomness and hyper-parameters, in the API.md field names."""
    draw = lambda *lead: rng.standard_normal((*lead, n, *shape))  # noqa: E731
    if objective == "ssm":
        M = opts["M"]
        v = draw(M) if opts["projection"] == "gaussian" else rng.choice([-1.0, 1.0], (M, n, *shape))
        case.update(v=v, projection=opts["projection"], variance_reduced=opts["variance_reduced"])
    elif objective == "dsm":
        case.update(sigma=opts["sigma"], z=draw())
    elif objective == "ncsn":
        sig = onp.asarray(opts["sigmas"], dtype=float)
        case.update(sigmas=sig, z=draw(sig.size), weighting=opts["weighting"])
    elif objective == "ncsn_sampled":  # one level per example, as training code draws it
        sig = onp.asarray(opts["sigmas"], dtype=float)
        level_index = onp.arange(n) % sig.size  # every level present, in a shuffled order
        case.update(sigmas=sig, level_index=rng.permutation(level_index), z=draw(),
                    weighting=opts["weighting"])
    elif objective == "vp_denoising":
        case.update(beta=opts["beta"], eps=draw())
    elif objective in ("tweedie", "tweedie_vp"):
        case.update(opts)
    elif objective == "langevin_step":
        case.update(h=opts["h"], z=draw())
    elif objective == "mala_log_ratio":
        # y: a Langevin proposal from x (the realistic input), then frozen as data.
        from .models import flat, score_fn

        h = opts["h"]
        s = score_fn(case["model"])(flat(case["x"])).reshape(case["x"].shape)
        case.update(h=h, y=case["x"] + h * s + onp.sqrt(2 * h) * draw())


def _build(objective, kind, shape_key, opts):
    shape = SHAPES[shape_key]
    tag = ""
    if objective == "ssm":
        tag = f"-{opts['projection'][:5]}{'-vr' if opts['variance_reduced'] else ''}-M{opts['M']}"
    elif objective in ("ncsn", "ncsn_sampled"):
        tag = f"-w{opts['weighting']}"
    name = f"{objective}-{kind}-{shape_key}{tag}"
    rng = onp.random.default_rng(zlib.crc32(name.encode()))
    d = int(onp.prod(shape))
    case = {"name": name, "objective": objective, "x": rng.standard_normal((N, *shape)),
            "model": _model(kind, d, rng, objective)}
    if objective == "esm":
        case["target"] = _model("quadratic", d, rng, objective)
    _randomness(objective, opts, N, shape, rng, case)
    expected, expected_x = reference_values(case)
    case["expected"] = expected
    if expected_x is not None:
        case["expected_x"] = expected_x
    return case


def _build_diffusion(objective, tag, shape_key, opts):
    name = "-".join(p for p in (objective, tag, shape_key) if p)
    rng = onp.random.default_rng(zlib.crc32(name.encode()))
    case = {"name": name, "objective": objective,
            **diffusion_fields(objective, opts, N, None if shape_key is None else SHAPES[shape_key], rng)}
    expected, expected_x = reference_values(case)
    case["expected"] = expected
    if expected_x is not None:
        case["expected_x"] = expected_x
    return case


_CACHE = []


def cases(objective=None):
    r"""The built-in cases (deep copies), all of them or those of one ``objective``.

    .. math:: \texttt{expected}_i = \ell(x_i;\ \text{model},\ \text{randomness},\ \text{hyper-parameters})

    with :math:`\ell` the per-example value of :mod:`refscore.conformance.reference`
    (API.md, "Conformance"; the equations and their sources are listed there).

    Parameters
    ----------
    objective : one of :data:`OBJECTIVES`, or None for every case

    Returns
    -------
    list of dict
    """
    if objective is not None and objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    if not _CACHE:
        _CACHE.extend(_build(*spec) for spec in _SPECS)
        _CACHE.extend(_build_diffusion(*spec) for spec in DIFFUSION_SPECS)
    return [copy.deepcopy(c) for c in _CACHE if objective in (None, c["objective"])]
