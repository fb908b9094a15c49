r"""A neural energy :math:`E_\theta(x)` (seed 001_…, "Neural net predicts energy of a given
state"): an :class:`~refscore.energies.Energy` built on the MLP of :mod:`refscore.models.nn`.
"""
from __future__ import annotations

import autograd.numpy as anp
from autograd import elementwise_grad
from autograd.tracer import getval

from .. import backends
from .._validation import check_positive_int
from ..models.nn import Saveable, check_activation, check_widths, mlp_apply, mlp_init, read_tree
from .base import Energy

__all__ = ["MLPEnergy"]


class MLPEnergy(Saveable, Energy):
    r"""A neural energy :math:`E_\theta(x)=\mathrm{MLP}_\theta(x)\in\mathbb R` (seed 001_…,
    "Neural net predicts energy of a given state"), parameters a pytree ``self.params``.

    .. math:: p_\theta(x) = e^{-E_\theta(x)}/Z_\theta,\qquad s_\theta(x) = -\nabla_x E_\theta(x)

    The score is autograd of the energy; use :meth:`score_fn` to get it as a function of ``x``
    for given parameters, which every loss in :mod:`refscore.losses` can differentiate w.r.t.
    ``params`` (to third order). :meth:`save` / :meth:`load` write and read one ``.npz``.

    Parameters
    ----------
    dim : int
    hidden : tuple of int
    rng : Generator of the backend that will hold the parameters (not needed with ``params``)
    activation : "softplus" (default, smooth), "tanh" or "swish"
    params : optional pytree to use instead of a random initialisation
    dtype : parameter dtype, "float64" (default) or "float32"
    """

    def __init__(self, dim, hidden=(64, 64), rng=None, activation="softplus", params=None, dtype="float64"):
        self.dim = check_positive_int(dim, "dim")
        self.activation, self.hidden = check_activation(activation), check_widths(hidden)
        if params is None:
            if rng is None:
                raise ValueError("MLPEnergy needs rng (a backend Generator) to initialise its parameters")
            params = mlp_init((self.dim, *self.hidden, 1), rng, dtype=dtype)
        self.params = params
        self.backend = backends.of(getval(params[0]["W"]))

    def apply(self, params, x):
        """Energy for explicit parameters: (n, d) -> (n,)."""
        return mlp_apply(params, x, self.activation)[:, 0]

    def energy_unchecked(self, x):
        r""":math:`E_\theta(x)` of each row for the current parameters, unvalidated."""
        return self.apply(self.params, x)

    def score_fn(self, params=None):
        r"""The function :math:`x\mapsto s_\theta(x) = -\nabla_x E_\theta(x)` for ``params``."""
        params = self.params if params is None else params
        return elementwise_grad(lambda x: -anp.sum(self.apply(params, x)))

    def score_unchecked(self, x):
        r""":math:`s_\theta(x)=-\nabla_x E_\theta(x)` by autograd, unvalidated."""
        return self.score_fn()(x)

    def architecture(self):
        """What :meth:`save` records to rebuild this model (JSON-able)."""
        return {"dim": self.dim, "hidden": list(self.hidden), "activation": self.activation}

    @classmethod
    def from_saved(cls, arch, arrays, bk):
        """The energy :meth:`save` wrote, from its architecture and arrays, on backend ``bk``."""
        template = [{"W": 0, "b": 0} for _ in range(len(arch["hidden"]) + 1)]
        return cls(arch["dim"], arch["hidden"], activation=arch["activation"],
                   params=read_tree(template, arrays, bk))
