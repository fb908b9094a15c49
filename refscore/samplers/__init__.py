r"""Samplers: one module per algorithm; the Langevin move, its proposal density and the MH
accept/reject in :mod:`~refscore.samplers.steps`; the driver loop, divergence tracking and the
``info`` record in :mod:`~refscore.samplers.chain`. Every driver returns ``(x, info)``; chains are rows, no Python loop over chains.

Step convention (API.md): :math:`x' = x + h\,s(x) + \sqrt{2h}\,z`.

Every driver returns the same record ``info`` (:data:`SAMPLER_INFO` describes it): ``n_steps``,
``diverged`` (n,) and ``n_diverged``; ``acceptance_rate`` (n,) and ``n_nonfinite`` where there is
an accept step, ``is_accepted`` (n_steps, n) with ``record_accepted=True``; ``trajectory``
(n_steps // k, n, d) with ``keep_every=k``. Drivers validate their inputs and the first output of
each callable once; the step functions are unvalidated (no host synchronisation).
"""
from .chain import SAMPLER_INFO
from .steps import State, StepResult, langevin_log_q, langevin_move, mh_accept, rows_finite, select_rows
from .annealed import annealed_langevin
from .gibbs import rbm_gibbs, rbm_gibbs_step
from .langevin import langevin, langevin_step
from .mala import log_prob_and_score, mala, mala_init, mala_step
from .reverse_diffusion import reverse_diffusion, reverse_diffusion_move
from .rwmh import rwmh, rwmh_step

__all__ = ["langevin", "langevin_step", "mala", "mala_step", "mala_init", "log_prob_and_score",
           "annealed_langevin", "reverse_diffusion", "reverse_diffusion_move", "rwmh", "rwmh_step", "rbm_gibbs", "rbm_gibbs_step", "State", "StepResult",
           "langevin_move", "langevin_log_q", "mh_accept", "rows_finite", "select_rows", "SAMPLER_INFO"]
