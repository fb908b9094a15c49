r"""refscore: the reference implementation of score matching and energy-based models.

Conventions (the book's *Conventions* page, ``docs/conventions.md``): :math:`p(x)=e^{-E(x)}/Z`, score :math:`s(x)=\nabla_x\log p(x)=-\nabla_xE(x)`,
points are rows ``(n, d)``, losses use the ½ convention and return batch means, and every
Langevin-type step is :math:`x' = x + h\,s(x) + \sqrt{2h}\,z`.
"""
try:
    from . import backends  # noqa: F401  (refscore.backends is the top-level backends/ folder)
except ImportError:
    import importlib.util as _util

    if _util.find_spec(f"{__name__}.backends") is not None:
        raise  # installed: a real error inside the backends (autograd missing, say)
    raise ImportError("refscore is not installed (its backends/ folder becomes refscore.backends only when "
                      "installed): in the checkout, run `make test` or `make tour` (they build .venv), or "
                      "`pip install -e .`") from None

__version__ = "0.1.0"

# in lecture order: energies -> objectives -> Tweedie -> samplers -> diffusion; then models and training
__all__ = ["backends", "energies", "losses", "traces", "tweedie", "samplers", "sde", "partition", "diagnostics",
           "models", "training", "datasets", "conformance"]
# deprecated compatibility modules (each name they serve warns, naming its home)
_COMPAT = {"nn": "refscore.models.nn, refscore.models.schedules and refscore.energies",
           "train": "refscore.training (and refscore.pytree)"}


def __getattr__(name):
    if name in __all__ or name in _COMPAT:
        import importlib

        if name in _COMPAT:
            import warnings

            warnings.warn(f"refscore.{name} is deprecated: use {_COMPAT[name]} instead", DeprecationWarning,
                          stacklevel=2)
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'refscore' has no attribute {name!r}")
