r"""The sub-VP SDE (Song et al. 2021, §3.4, eq. 29 and Appendix B): the VP drift with a smaller
diffusion, whose marginal variance is bounded by the VP one.

.. math:: dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)\,(1-e^{-2B(t)})}\,dw,\qquad
          x_t = e^{-B(t)/2}x_0 + \big(1-e^{-B(t)}\big)z,\quad B(t)=\int_0^t\beta

so the **standard deviation** is :math:`1-e^{-B}` (the variance :math:`(1-e^{-B})^2`), against
:math:`\sqrt{1-e^{-B}}` for VP (score_sde, ``sde_lib.py``, ``subVPSDE.marginal_prob``).
"""
from __future__ import annotations

from ..diffusion.processes import subvp_diffusion, subvp_marginal_coeffs
from .sdes import VPSDE

__all__ = ["SubVPSDE"]


class SubVPSDE(VPSDE):
    r"""Sub-VP SDE: :class:`VPSDE`'s drift and :math:`\beta(t)`, diffusion
    :math:`g(t)=\sqrt{\beta(t)(1-e^{-2B(t)})}` (Song et al. 2021, eq. 29).

    .. math:: a(t) = e^{-B(t)/2},\qquad s(t) = 1 - e^{-B(t)}

    Prior at t = 1: :math:`\mathcal N(0, I)` (approximately; score_sde uses the same).
    """

    def diffusion(self, t):
        return subvp_diffusion(self.beta(t), self.integrated_beta(t))

    def marginal_coeffs(self, t):
        return subvp_marginal_coeffs(self.integrated_beta(t))

    def discretize(self, x, t, t_prev):
        r"""Euler–Maruyama (the :class:`SDE` base's step; sub-VP has no exact DDPM chain):

        .. math:: f = f(x,t)\Delta t,\qquad G = g(t)\sqrt{\Delta t}
        """
        return super(VPSDE, self).discretize(x, t, t_prev)
