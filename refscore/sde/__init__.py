r"""The diffusion view: forward SDEs, the reverse-time SDE, the probability-flow ODE, and
exact log-likelihoods (Song et al. 2021, "Score-Based Generative Modeling through SDEs";
seeds ``000_…``/``001_…``: "Sampling requires solving the reverse SDE", "Calculate
log-likelihoods exactly").

.. math:: dx = f(x,t)\,dt + g(t)\,dw \quad\text{(forward, eq. 5)},\qquad
          dx = [f - g^2\nabla_x\log p_t(x)]\,dt + g\,d\bar w \quad\text{(reverse, eq. 6)},

and the probability-flow ODE :math:`dx/dt = f - \tfrac12 g^2\nabla_x\log p_t(x)` (eq. 13).
``sdes`` holds the processes (:class:`SDE`, :class:`VESDE`, :class:`VPSDE`, :func:`marginal_law`);
``solvers`` integrates them; ``likelihood`` gives a noise-conditional model's bits/dim by any SDE's
probability-flow ODE. The formulas (marginals, discretisations, steps) are :mod:`refscore.diffusion`'s.
``score_fn(x, t)`` is called with ``t`` a Python float by the solvers, or with an ``(n,)`` array of
per-row times where it says it takes them (``row_times``; ``rowwise`` integrates each row with its own
steps, :func:`log_likelihood` with ``per_row=True`` and :func:`flow_bits_per_dim` by default).
"""
from .sdes import SDE, VESDE, VPSDE, marginal_law
from .solvers import log_likelihood, probability_flow_sample, reverse_sde_sample

from .subvp import SubVPSDE
from .likelihood import flow_bits_per_dim
from .rowwise import solve_rows

__all__ = ["SDE", "VESDE", "VPSDE", "marginal_law", "reverse_sde_sample", "probability_flow_sample",
           "log_likelihood", "SubVPSDE", "flow_bits_per_dim", "solve_rows"]
