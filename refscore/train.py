r"""Compatibility path (the API reference, "Compatibility paths"): ``refscore.train`` re-exports :mod:`refscore.training.train`
(``fit``, ``adam``, ``sgd``, ``fit_cd``, ``cd_loss``) and the extras ``ema_update`` and
``cosine_schedule`` of :mod:`refscore.training.fit_extras`, their canonical homes; nothing is
defined here.
"""
from .pytree import tree_leaves, tree_map
from .training.fit_extras import cosine_schedule, ema_update
from .training.train import adam, cd_loss, fit, fit_cd, sgd

__all__ = ["adam", "sgd", "fit", "tree_map", "tree_leaves", "cd_loss", "fit_cd", "ema_update", "cosine_schedule"]
