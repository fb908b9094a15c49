r"""Deprecated compatibility path (the API reference, "Compatibility paths"): ``refscore.nn`` serves
the models of :mod:`refscore.models.nn`, the schedules of :mod:`refscore.models.schedules` and the
neural energy :class:`refscore.energies.MLPEnergy`, each with a ``DeprecationWarning`` naming its
home; nothing is defined here. Import from the homes instead:

``refscore.models.nn``: ``MLP``, ``NoiseConditionalScoreNet``, ``Saveable``, ``mlp_init``,
``mlp_apply``; ``refscore.models.schedules``: ``ncsnv2_schedule``, ``NCSNv2Schedule``;
``refscore.energies``: ``MLPEnergy``.
"""
from . import energies as _energies
from ._deprecation import moved
from .models import nn as _models_nn, schedules as _schedules

_HOMES = {"refscore.models.nn": (_models_nn, ("MLP", "NoiseConditionalScoreNet", "Saveable", "mlp_init", "mlp_apply")),
          "refscore.models.schedules": (_schedules, ("ncsnv2_schedule", "NCSNv2Schedule")),
          "refscore.energies": (_energies, ("MLPEnergy",))}
__getattr__ = moved(__name__, {name: (f"{home}.{name}", getattr(mod, name))
                               for home, (mod, names) in _HOMES.items() for name in names})

__all__ = ["MLP", "NoiseConditionalScoreNet", "MLPEnergy", "Saveable", "mlp_init", "mlp_apply",
           "ncsnv2_schedule", "NCSNv2Schedule"]
