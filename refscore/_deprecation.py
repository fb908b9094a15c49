r"""Public paths that moved keep working, with a ``DeprecationWarning`` naming the new path.

A module that lost names sets ``__getattr__ = moved(__name__, {name: (new_path, obj)})``: Python
calls it only for names the module does not define (PEP 562), so each use of an old path —
``from refscore.nn import MLP`` or ``refscore.train.fit`` — warns once per call site, and the
canonical homes never warn.
"""
from __future__ import annotations

import warnings

__all__ = ["moved", "warn_moved"]


def warn_moved(old, new, stacklevel=3):
    """Warn that ``old`` (a dotted path) is deprecated in favour of ``new``."""
    warnings.warn(f"{old} is deprecated: use {new} instead (it is the same object)", DeprecationWarning,
                  stacklevel=stacklevel)


def moved(module, table):
    """A module ``__getattr__`` serving each ``table`` name ``-> (new_path, obj)`` with a warning."""

    def __getattr__(name):
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new, obj = table[name]
        warn_moved(f"{module}.{name}", new)
        return obj

    return __getattr__
