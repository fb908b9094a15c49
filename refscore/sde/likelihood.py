r"""Bits per dimension of a noise-conditional score model by the probability-flow ODE of any
:class:`~refscore.sde.SDE` (Song et al. 2021, eq. 39 and Appendix D.2): the solver
(:func:`refscore.sde.log_likelihood`) on the model's time score
(:func:`refscore.diffusion.noise_conditional_score`), in the units of
:func:`refscore.diffusion.bits_per_dim`.

.. math:: \text{bpd} = -\frac{\log p_{t_{\min}}(x)}{D\ln 2} + \log_2 L

Moved here from ``refscore.diffusion.likelihood`` (it builds a :class:`~refscore.sde.VESDE` by
default and calls the solver: :mod:`refscore.diffusion` sits below :mod:`refscore.sde`).
"""
from __future__ import annotations

import math
import time

import numpy as onp

from .. import backends
from .._validation import check_points, check_positive_int, check_whole_number
from ..diffusion.likelihood import bits_per_dim, likelihood_summary, noise_conditional_score
from .sdes import VESDE
from .solvers import log_likelihood

__all__ = ["flow_bits_per_dim"]


def flow_bits_per_dim(score_fn, x, sigma_min=None, sigma_max=None, levels=256, rng=None, n_probes=1, probe_sets=1,
                      rtol=1e-5, atol=1e-5, trace_chunk=None, prior_log_prob=None, sde=None, t_min=0.0, t_max=1.0,
                      per_row=True, threads=1, progress_bar=False):
    r"""Bits per dimension of a noise-conditional score model by the probability-flow ODE of an SDE
    (Song et al. 2021, eq. 13, eq. 39 and Appendix D.2), on dequantised rows ``x`` in
    :math:`[0, 1]^D` (:func:`refscore.diffusion.dequantise` with ``levels`` = L). The SDE is ``sde``
    (any :class:`SDE`; the model enters as its time score by
    :func:`refscore.diffusion.noise_conditional_score`, integrated from ``t_min`` to ``t_max``), or
    by default the VE SDE from ``sigma_min`` to ``sigma_max``, where:

    .. math:: \log p_{\sigma_{\min}}(x) = \log\mathcal N\big(x(1);0,\sigma_{\max}^2I\big)
              + \int_0^1 \tfrac12 g(t)^2\operatorname{tr}\nabla_x s_\theta\big(x(t),\sigma(t)\big)\,dt,
              \qquad \text{bpd} = -\frac{\log p_{\sigma_{\min}}(x)}{D\ln 2} + \log_2 L

    The ODE starts at t = 0, where σ(0) = σ_min > 0: the model of the score there is that of the
    data perturbed by :math:`\mathcal N(0,\sigma_{\min}^2I)`, so this is the likelihood of
    :math:`p_{\sigma_{\min}}` (Song et al. 2021 integrate from their ε for the same reason). The
    prior is the VE SDE's :math:`\mathcal N(0,\sigma_{\max}^2I)` (no data mean, no
    :math:`-\sigma_{\min}^2`; the true :math:`p_1` is the data convolved with
    :math:`\mathcal N(0,\sigma_{\max}^2I)`): a proper density, so the result is the exact likelihood
    of the model "flow + this prior"; ``prior_log_prob`` replaces it. The mismatch costs about
    :math:`\mathbb E\|x\|^2/(2D\sigma_{\max}^2\ln 2)` bits/dim: 3e-4 for MNIST at σ_max = 16.

    Trace: exact (``rng=None``; :func:`refscore.traces.jacobian_trace`, batched over
    ``trace_chunk`` replicated rows when given), or Hutchinson's with ``n_probes`` Gaussian probes
    fixed along each path, repeated over ``probe_sets`` independent sets of probes (their rows'
    average is used; with two or more, ``probe_sd`` is the per-row standard deviation due to the probes,
    :math:`\sqrt{\overline{\operatorname{var}_{\text{sets}}}}`).

    Each row is integrated with its own steps and error test (``per_row=True``, the default;
    :func:`refscore.sde.rowwise.solve_rows`), so a digit's bits/dim does not depend on which digits
    share its batch or their order (with Hutchinson's trace each row keeps the probe drawn for its
    place in ``x``); ``threads`` splits the rows over the host's cores (the same numbers);
    ``progress_bar`` shows the rows finished.
    ``per_row=False`` integrates all rows as one ODE (SciPy's RK45), where one hard row sets every
    row's steps. A ``score_fn`` with ``per_example_sigma`` (the networks' ``score_fn()``) takes all
    rows at their own levels in one call; any other is called once per row and time.

    Returns a dict: ``bpd`` (n,), ``mean``, ``median`` (a mean far above it says some paths ran
    away: a score that is wrong off the data drives the ODE there), ``se`` (standard error across
    rows, None for one row; with Hutchinson it includes the probes' noise), ``n``, ``method``,
    ``levels``, ``offset`` (:math:`\log_2 L`), ``nfev`` (ODE evaluations, all sets), ``seconds``,
    ``probe_sd`` (None unless two or more sets).
    """
    x = check_points(x)
    levels = check_whole_number(levels, "levels", minimum=2)
    n_probes, probe_sets = check_positive_int(n_probes, "n_probes"), check_positive_int(probe_sets, "probe_sets")
    if sde is None:
        sde = VESDE(sigma_min, sigma_max)
    elif sigma_min is not None or sigma_max is not None:
        raise ValueError(f"give the levels sigma_min, sigma_max (the VE SDE) or an sde, not both; got sigma_min="
                         f"{sigma_min!r}, sigma_max={sigma_max!r} and sde={type(sde).__name__}")
    score = noise_conditional_score(score_fn, sde)
    t0, d = time.time(), x.shape[1]
    runs, nfev = [], 0
    for _ in range(1 if rng is None else probe_sets):
        ll, k = log_likelihood(sde, score, x, t_min=t_min, t_max=t_max, rng=rng, n_projections=n_probes, rtol=rtol, atol=atol,
                               return_nfev=True, trace_chunk=trace_chunk, prior_log_prob=prior_log_prob,
                               per_row=per_row, threads=threads, progress_bar=progress_bar)
        runs.append(bits_per_dim(backends.of(ll).to_numpy(ll), d, levels=levels))
        nfev += k
    runs = onp.stack(runs)  # (sets, n)
    probe_sd = float(onp.sqrt(onp.mean(onp.var(runs, axis=0, ddof=1)))) if len(runs) > 1 else None
    method = "exact" if rng is None else f"hutchinson (M={n_probes})"
    return likelihood_summary(runs.mean(axis=0), method, levels, math.log2(levels), nfev, time.time() - t0, probe_sd)
