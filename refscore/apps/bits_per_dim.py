r"""Bits per dimension of the trained image score models (issue 24): the 8×8 digits net of the
tour and the MNIST U-Net of ``refscore images mnist``, by the VE probability-flow ODE with uniform
dequantisation (:func:`refscore.sde.flow_bits_per_dim`; any SDE: ``sde=``), exact trace beside Hutchinson's.

.. math:: \text{bpd} = -\frac{\log p_{\sigma_{\min}}\big((k+u)/L\big)}{D\ln 2} + \log_2 L

(Theis et al. 2016, §3.1; Song et al. 2021, eq. 39). Run ``python -m refscore.apps.bits_per_dim
digits`` or ``... mnist MODEL.npz SIGMA_MIN SIGMA_MAX`` for the table rows.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as onp

__all__ = ["measure_bits_per_dim", "paired_difference", "train_digits_net", "digits_table", "mnist_table", "table_rows",
           "histogram_bits_per_dim", "parse_arguments", "main", "USAGE"]


def measure_bits_per_dim(score_fn, k, levels, sigma_min, sigma_max, rng, dtype="float64", n_probes=1,
                         probe_sets=1, exact=False, trace_chunk=None, rtol=1e-5, atol=1e-5, sde=None, threads=1,
                         progress_bar=False, keep_rows=False):
    r"""Dequantise the integer pixels ``k`` (n, D) with ``levels`` = L (:func:`refscore.diffusion.dequantise`,
    :math:`x=(k+u)/L`) and measure the model's bits/dim on them by the PF-ODE of the VE SDE from
    ``sigma_min`` to ``sigma_max`` (:func:`refscore.sde.flow_bits_per_dim`), or of ``sde`` (e.g.
    :meth:`refscore.sde.VPSDE.for_levels`) between the times of those levels (``sde.time_of_level``): exact
    trace with ``exact=True``, else Hutchinson with ``n_probes`` probes over ``probe_sets`` sets; each row
    with its own ODE steps, the rows split over ``threads`` threads (the same numbers), a bar over the
    rows done with ``progress_bar``; ``keep_rows`` keeps each digit's bits/dim (``bpd``, a list). Returns the
    JSON-able record (mean, se, n, method, levels, offset, nfev, seconds, probe_sd, and ``floor``, the
    fewest bits/dim any σ_min-perturbed law can score: :func:`refscore.diffusion.perturbed_bits_floor`).

    .. math:: \text{bpd} = -\frac{\log p_{t_{\min}}\big((k+u)/L\big)}{D\ln 2} + \log_2 L
    """
    from .. import diffusion
    from .._validation import check_positive, check_positive_int
    from ..sde import flow_bits_per_dim

    levels = check_positive_int(levels, "levels", minimum=2)
    lo, hi = check_positive(sigma_min, "sigma_min"), check_positive(sigma_max, "sigma_max")
    if not lo < hi:
        raise ValueError(f"need sigma_min < sigma_max (the ODE runs from one to the other), got sigma_min={lo!r}, "
                         f"sigma_max={hi!r}")
    x = diffusion.dequantise(k, levels, rng, dtype=dtype)
    kw = dict(levels=levels, rng=None if exact else rng, n_probes=n_probes, probe_sets=probe_sets, rtol=rtol,
              atol=atol, trace_chunk=trace_chunk, threads=threads, progress_bar=progress_bar)
    extra = {}
    if sde is None:
        r = flow_bits_per_dim(score_fn, x, sigma_min, sigma_max, **kw)
    else:
        t_min, t_max = (float(min(1.0, sde.time_of_level(s))) for s in (sigma_min, sigma_max))
        r = flow_bits_per_dim(score_fn, x, sde=sde, t_min=t_min, t_max=t_max, **kw)
        extra = {"sde": type(sde).__name__, "t_min": t_min, "t_max": t_max}
    rows = [float(b) for b in r.pop("bpd")]
    if keep_rows:
        r["bpd"] = rows
    return {**r, "rtol": rtol, "atol": atol, "sigma_min": float(sigma_min), "sigma_max": float(sigma_max),
            "floor": diffusion.perturbed_bits_floor(sigma_min, levels), **extra}


def train_digits_net(seed=0, steps=6000):
    r"""The tour's digits net (section 9, :mod:`refscore.apps.tour.images`) with its full settings
    (:func:`refscore.apps.digits_common.fit_digits_net`): a
    :class:`refscore.models.nn.NoiseConditionalScoreNet` (64 → 384 → 384, swish) on
    scikit-learn's training digits (:math:`k/16`), NCSNv2 levels from the largest pairwise distance
    to σ_L = 0.02, one level per example (``ncsn(levels="sample")``), Adam 3e-3 with a cosine decay
    and warm-up, EMA of the parameters (:func:`refscore.apps.digits_common.ema_decay`). Returns the
    net, its schedule and the seconds it took.

    .. math:: \sigma_1 = \max_{i,j}\|x_i-x_j\|,\qquad \sigma_L = 0.02
    """
    from .. import backends, datasets
    from ..models import nn
    from .digits_common import DIGITS_SIGMA_MIN, fit_digits_net

    bk = backends.get("numpy")
    xtr = datasets.digits("train")
    schedule = nn.ncsnv2_schedule(xtr, sigma_min=DIGITS_SIGMA_MIN)
    t0 = time.time()
    net, _ = fit_digits_net(xtr, schedule, bk.rng(seed), bk.rng(seed + 1), steps, progress_bar=False)
    return net, schedule, time.time() - t0


def digits_table(seed=0, n_exact=None, hutchinson=((1, 2), (8, 2)), steps=6000):
    r"""Rows of the bits/dim table on scikit-learn's digits test split (17 levels :math:`k/16`,
    offset :math:`\log_2 17`): the exact trace on ``n_exact`` test digits (default all), then
    Hutchinson with (M, sets) for each entry of ``hutchinson`` on the same digits.

    Measured (issue 24, the tour's batch of 256): with the tour's 6,000 steps 95 of the 360 paths
    run away (above 20 bits/dim; the median is 3.76; at batch 128 :math:`\|x(1)\|` reached
    :math:`10^7`, against about 40 for the exact score): the MLP's score is too large off the data
    at intermediate σ, and the ODE follows it there. After 300 steps (``steps=300``) every path stays finite: 3.563 ±
    0.027 bits/dim exact on the 360 digits, 3.526 ± 0.046 by Hutchinson with one probe."""
    from .. import datasets

    net, schedule, t_train = train_digits_net(seed, steps)
    xte = datasets.digits("test")
    k = onp.rint(16 * onp.asarray(xte)).astype(int)[:n_exact]
    sig = (float(schedule.sigmas[-1]), float(schedule.sigmas[0]))
    rows = [measure_bits_per_dim(net.score_fn(), k, 17, *sig, onp.random.default_rng(seed + 10), exact=True,
                                 trace_chunk=4096)]
    for m, sets in hutchinson:
        rows.append(measure_bits_per_dim(net.score_fn(), k, 17, *sig, onp.random.default_rng(seed + 10),
                                         n_probes=m, probe_sets=sets))
    return [dict(r, data="digits 8x8 test", train_seconds=t_train) for r in rows]


def paired_difference(a, b):
    r"""Hutchinson's bits/dim ``a`` against the exact trace's ``b`` on the digits both measured (the
    first ``len(b)`` of ``a``: the same dequantised digits), paired:

    .. math:: \bar\Delta = \frac1m\sum_{i\le m}(a_i - b_i),\qquad
              \mathrm{SE} = \frac{\mathrm{sd}(a_i - b_i)}{\sqrt m}

    so the probes' noise is judged digit by digit, without the spread between digits. Returns
    ``{"n", "mean", "se"}`` (``se`` None for one digit) or None when either is empty."""
    m = min(len(a), len(b))
    if m == 0:
        return None
    diff = onp.asarray(a[:m], dtype=float) - onp.asarray(b[:m], dtype=float)
    se = float(diff.std(ddof=1) / math.sqrt(m)) if m > 1 else None
    return {"n": m, "mean": float(diff.mean()), "se": se}


def mnist_table(model, sigma_min, sigma_max, n=64, n_exact=1, seed=0, probe_sets=2, exact_tol=1e-5,
                path=None):
    r"""Rows of the bits/dim table on MNIST test digits (256 levels :math:`k/255`, offset 8) for the
    saved :class:`refscore.models.ConvScoreNet` ``model``: Hutchinson (M = 1, ``probe_sets`` sets) on
    ``n`` digits, and the exact trace (batched over 784 replicated rows) on the first ``n_exact``
    of the same dequantised digits (the same ``u``: the same seed) at ``exact_tol``."""
    from .. import datasets
    from .._validation import reading
    from ..models import ConvScoreNet

    with reading(model, "saved ConvScoreNet (refscore images mnist writes mnist_model.npz)"):
        net = ConvScoreNet.load(model, backend="numpy")
    xte = onp.asarray(datasets.mnist("test", path=path, backend="numpy")).reshape(-1, 784)
    k = onp.rint(255 * xte).astype(int)
    rng = lambda: onp.random.default_rng(seed + 10)  # noqa: E731
    rows = [measure_bits_per_dim(net.score_fn(), k[:n], 256, sigma_min, sigma_max, rng(), dtype=net.dtype,
                                 probe_sets=probe_sets)]
    if n_exact:
        rows.append(measure_bits_per_dim(net.score_fn(), k[:n_exact], 256, sigma_min, sigma_max, rng(),
                                         dtype=net.dtype, exact=True, trace_chunk=784, rtol=exact_tol,
                                         atol=exact_tol))
    return [dict(r, data="MNIST test") for r in rows]


def histogram_bits_per_dim(k_train, k_test, levels):
    r"""The baseline every image model should beat: independent pixels, each a categorical law
    fitted on the training pixels with add-one (Laplace) smoothing, scored on the test pixels in
    bits per dimension (a discrete model: no dequantisation needed),

    .. math:: \hat p_j(k) = \frac{\#\{i: k^{tr}_{ij}=k\}+1}{n+L},\qquad
              \text{bpd}(k^{te}_t) = -\frac1D\sum_{j=1}^D \log_2\hat p_j(k^{te}_{tj})

    ``k_train`` (n, D), ``k_test`` (m, D) integers in 0..L−1, with the same D. Returns ``(mean, SE)``
    over test rows (SE ``None`` for a single test row).
    """
    k_train, k_test = onp.asarray(k_train), onp.asarray(k_test)
    for name, k in (("k_train", k_train), ("k_test", k_test)):
        if k.ndim != 2 or not k.size or not onp.issubdtype(k.dtype, onp.integer) or k.min() < 0 or k.max() >= levels:
            raise ValueError(f"{name} must be a non-empty 2-D integer array with values in 0..{levels - 1}, got "
                             f"shape {k.shape}, dtype {k.dtype}")
    if k_train.shape[1] != k_test.shape[1]:
        raise ValueError(f"k_train and k_test need rows of the same length D, got shapes {k_train.shape} and "
                         f"{k_test.shape}")
    D = k_train.shape[1]
    counts = onp.stack([onp.bincount(k_train[:, j], minlength=levels) for j in range(D)]) + 1.0
    p = counts / counts.sum(1, keepdims=True)
    bits = -onp.log2(p[onp.arange(D)[None, :], k_test]).mean(1)
    return float(bits.mean()), (float(bits.std(ddof=1) / onp.sqrt(len(bits))) if len(bits) > 1 else None)


def table_rows(rows):
    """The markdown table of ``rows`` (records of :func:`measure_bits_per_dim`)."""
    out = ["| data | levels | offset | method | n | bits/dim (mean ± SE) | median | probe SD | nfev | rtol "
           "| seconds |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        se = "" if r["se"] is None else f" ± {r['se']:.3f}"
        sd = "—" if r["probe_sd"] is None else f"{r['probe_sd']:.3f}"
        out.append(f"| {r['data']} | {r['levels']} | {r['offset']:.3f} | {r['method']} | {r['n']} | "
                   f"{r['mean']:.3f}{se} | {r['median']:.3f} | {sd} | {r['nfev']} | {r['rtol']:g} | "
                   f"{r['seconds']:.0f} |")
    return "\n".join(out)


USAGE = ("usage: python -m refscore.apps.bits_per_dim digits\n"
         "       python -m refscore.apps.bits_per_dim mnist MODEL.npz SIGMA_MIN SIGMA_MAX [N N_EXACT [TOL]]\n"
         "  digits: the 8x8 digits table rows (trains the tour's net; needs scikit-learn)\n"
         "  mnist:  the MNIST rows for a saved ConvScoreNet (refscore images mnist writes mnist_model.npz) with\n"
         "          0 < SIGMA_MIN < SIGMA_MAX its schedule's ends; N >= 1 Hutchinson digits (default 64), "
         "N_EXACT >= 0\n          exact-trace digits (default 1), TOL > 0 the exact solve's tolerance (default 1e-5)")


def _number(text, name, kind):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def parse_arguments(argv):
    r"""The table's arguments from the command line (see :data:`USAGE`), each checked with its name,
    value and rule; returns ``("digits", {})`` or ``("mnist", kwargs of mnist_table)``.

    .. math:: 0 < \sigma_{\min} < \sigma_{\max},\quad N \ge 1,\quad N_{exact} \ge 0,\quad \mathrm{tol} > 0
    """
    from .._validation import check_nonnegative_int, check_positive, check_positive_int

    if argv and argv[0] == "digits" and len(argv) == 1:
        return "digits", {}
    if not argv or argv[0] != "mnist" or len(argv) not in (4, 6, 7):
        raise ValueError(f"expected `digits` or `mnist MODEL.npz SIGMA_MIN SIGMA_MAX [N N_EXACT [TOL]]`, got "
                         f"{' '.join(argv) or 'no arguments'!r}")
    model = argv[1]
    if not os.path.isfile(model):
        raise ValueError(f"MODEL.npz must be a saved ConvScoreNet file, got {model!r} (no such file)")
    lo = check_positive(_number(argv[2], "SIGMA_MIN", float), "SIGMA_MIN")
    hi = check_positive(_number(argv[3], "SIGMA_MAX", float), "SIGMA_MAX")
    if not lo < hi:
        raise ValueError(f"need SIGMA_MIN < SIGMA_MAX, got SIGMA_MIN={lo!r}, SIGMA_MAX={hi!r}")
    kw = {"model": model, "sigma_min": lo, "sigma_max": hi}
    if len(argv) > 4:
        kw["n"] = check_positive_int(_number(argv[4], "N", int), "N")
        kw["n_exact"] = check_nonnegative_int(_number(argv[5], "N_EXACT", int), "N_EXACT")
    if len(argv) > 6:
        kw["exact_tol"] = check_positive(_number(argv[6], "TOL", float), "TOL")
    return "mnist", kw


def main(argv=None):
    r"""``python -m refscore.apps.bits_per_dim``: print the table rows; no arguments print the usage,
    a bad argument one line ``bits_per_dim: error: ...``; both exit with status 2.

    .. math:: \text{status} = 0 \text{ (rows printed) or } 2 \text{ (could not answer)}
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    try:
        which, kw = parse_arguments(argv)
        rows = digits_table() if which == "digits" else mnist_table(**kw)
    except (ValueError, TypeError, ImportError, OSError) as e:
        print(f"bits_per_dim: error: {e}".splitlines()[0], file=sys.stderr)
        return 2
    print(table_rows(rows), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover  (the commands of the table in the report)
    sys.exit(main())
