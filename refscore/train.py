r"""Deprecated compatibility path (the API reference, "Compatibility paths"): ``refscore.train``
serves :mod:`refscore.training.train` (``fit``, ``adam``, ``sgd``, ``fit_cd``, ``cd_loss``), the
extras ``ema_update`` and ``cosine_schedule`` of :mod:`refscore.training.fit_extras` and the
pytree helpers of :mod:`refscore.pytree`, each with a ``DeprecationWarning`` naming its home;
nothing is defined here. Import from :mod:`refscore.training` and :mod:`refscore.pytree` instead.
"""
from . import pytree as _pytree
from ._deprecation import moved
from .training import fit_extras as _fit_extras, train as _train

_HOMES = {"refscore.training.train": (_train, ("adam", "sgd", "fit", "cd_loss", "fit_cd")),
          "refscore.training.fit_extras": (_fit_extras, ("ema_update", "cosine_schedule")),
          "refscore.pytree": (_pytree, ("tree_map", "tree_leaves"))}
__getattr__ = moved(__name__, {name: (f"{home}.{name}", getattr(mod, name))
                               for home, (mod, names) in _HOMES.items() for name in names})

__all__ = ["adam", "sgd", "fit", "tree_map", "tree_leaves", "cd_loss", "fit_cd", "ema_update", "cosine_schedule"]
