r"""Unadjusted Langevin algorithm (ULA): the Langevin step with no correction.

.. math:: x_{t+1} = x_t + h\,s(x_t) + \sqrt{2h}\,z_t

Seed ``001_…`` ("Langevin (Monte Carlo) sampling": :math:`x_{i+1}=x_i+\epsilon\nabla\log p+\sqrt{2\epsilon}z`,
our :math:`h=\epsilon`). It is biased for :math:`h>0`: on :math:`\mathcal N(0,1)` the chain is
:math:`x'=(1-h)x+\sqrt{2h}z` with stationary variance :math:`1/(1-h/2)`.
"""
from __future__ import annotations

from .. import backends
from .._validation import check_finite, check_positive
from .chain import Divergence, check_sampler_args, report_divergence, run_chain, runaway_radius, sampler_info
from .steps import langevin_move, score_of, unchecked


def langevin_step(x, score_fn, step_size, rng, noise_var=None):
    r"""One ULA step for every chain (rows of ``x``), unvalidated (no host sync):

    .. math:: x' = x + h\,s(x) + \sqrt{2h}\,z

    Only the shape of ``score_fn(x)`` is checked (metadata, free); a validated
    :class:`~refscore.energies.Energy` method is swapped for its unchecked twin.
    """
    bk = backends.of(x)
    z = bk.normal(rng, x.shape, x.dtype)
    return langevin_move(x, score_of(unchecked(score_fn), x), step_size, z, noise_var, reuse_noise=True)


def langevin(score_fn, x0, step_size, n_steps, rng, keep_every=None, progress=False, noise_var=None):
    r"""Run ULA chains from the rows of ``x0``:

    .. math:: x_{t+1} = x_t + h\,s(x_t) + \sqrt{2h}\,z_t \qquad\text{(seed 001\_…, Langevin sampling)}

    Parameters
    ----------
    score_fn : (n, d) -> (n, d); another output shape is a ``ValueError``
    x0 : (n, d) starting points, one chain per row (integers are cast to float64)
    step_size : h > 0
    n_steps : int >= 0
    rng : backend Generator
    keep_every : keep every k-th position in ``info["trajectory"]`` (T/k, n, d); none by default
    noise_var : the notes' variant (seed 003_…, §11.2.1) with noise variance η instead of 2h;
        leave ``None`` for the standard Langevin step.

    Returns
    -------
    x : (n, d) final positions
    info : the sampler record (:data:`refscore.samplers.SAMPLER_INFO`): ``n_steps``, ``diverged`` (n,),
        ``n_diverged``, ``trajectory`` when asked. A chain diverges when a coordinate becomes
        non-finite or exceeds :math:`R = 10^6\max(1, \max_{ij}|x^{(0)}_{ij}|)`; some chains
        diverging warn, all of them raise ``FloatingPointError`` (never a silent array of NaN).
    """
    bk, x0, h, n_steps = check_sampler_args(x0, step_size, n_steps, rng)
    noise_var = None if noise_var is None else check_positive(noise_var, "noise_var")
    watch = Divergence(x0, runaway_radius(x0), n_steps)
    score_fn = unchecked(score_fn)
    check_finite(score_of(score_fn, x0), "score_fn(x0)")  # a bad start is named, not reported as divergence

    def step(x):
        return watch.update(langevin_step(x, score_fn, h, rng, noise_var))

    x, traj, _ = run_chain(step, x0, n_steps, keep_every, "ULA", progress)
    info = sampler_info(n_steps, watch.bad, traj)
    report_divergence(info, "ULA", f"reduce step_size (h={h}) or use mala")
    return x, info
