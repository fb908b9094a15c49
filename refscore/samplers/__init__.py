r"""Samplers: one module per algorithm, the Langevin step and the MH accept/reject shared
(``_common``). Every driver returns ``(x, info)``; chains are rows, no Python loop over chains.

Step convention (API.md): :math:`x' = x + h\,s(x) + \sqrt{2h}\,z`.
"""
from ._common import State, langevin_log_q, langevin_move
from .annealed import annealed_langevin
from .gibbs import rbm_gibbs, rbm_gibbs_step
from .langevin import langevin, langevin_step
from .mala import mala, mala_init, mala_step
from .rwmh import rwmh, rwmh_step

__all__ = ["langevin", "langevin_step", "mala", "mala_step", "mala_init", "annealed_langevin",
           "rwmh", "rwmh_step", "rbm_gibbs", "rbm_gibbs_step", "State", "langevin_move", "langevin_log_q"]
