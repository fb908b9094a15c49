r"""Compatibility path (the API reference, "Compatibility paths"): ``refscore.nn`` re-exports the models of
:mod:`refscore.models.nn` and the neural energy :class:`refscore.energies.MLPEnergy`.

The canonical homes are :mod:`refscore.models.nn` (``MLP``, ``NoiseConditionalScoreNet``,
``mlp_init``, ``mlp_apply``), :mod:`refscore.models.schedules` (``ncsnv2_schedule``) and
:mod:`refscore.energies` (``MLPEnergy``); nothing is defined here.
"""
from .energies.neural import MLPEnergy
from .models.nn import MLP, NoiseConditionalScoreNet, Saveable, mlp_apply, mlp_init
from .models.schedules import NCSNv2Schedule, ncsnv2_schedule

__all__ = ["MLP", "NoiseConditionalScoreNet", "MLPEnergy", "Saveable", "mlp_init", "mlp_apply",
           "ncsnv2_schedule", "NCSNv2Schedule"]
