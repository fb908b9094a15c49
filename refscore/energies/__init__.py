r"""Energy-based models :math:`p(x) = e^{-E(x)}/Z` and the toy targets of the notes.

Sign convention (``docs/conventions.md``, which maps the notes' three signs onto it):
:math:`E` is the **energy**, low energy is likely, the score is
:math:`s(x)=\nabla_x\log p(x) = -\nabla_x E(x)` and never depends on :math:`Z`
(``001_…``: :math:`\nabla_x\log Z_\theta = 0`). Points are rows: ``x.shape == (n, d)``.

Every energy has ``dim``, ``energy(x)`` -> ``(n,)``, ``unnormalized_log_prob(x)`` (= ``-energy``),
and ``score(x)`` -> ``(n, d)`` (closed form where one exists, else autograd of ``-energy``).
Where known: ``log_partition()``, ``log_prob(x)``, ``sample(n, rng)``.
"""
from .base import Energy
from .gaussian import Gaussian, GaussianMixture, SumOfEnergies
from .neural import MLPEnergy
from .rbm import GaussianBernoulliRBM
from .toys import Banana, DoubleWell, NealsFunnel, Ring

__all__ = [
    "Energy", "Gaussian", "GaussianMixture", "SumOfEnergies", "MLPEnergy",
    "DoubleWell", "Banana", "NealsFunnel", "Ring", "GaussianBernoulliRBM",
]

