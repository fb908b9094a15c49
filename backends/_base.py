"""The Backend interface: array creation, random numbers and host transfer for one array module."""
from __future__ import annotations

import numpy


def host_copy(a):
    r"""``a.get()`` — the explicit device-to-host copy — when ``a`` is a device array (CuPy's, or
    any array type that, like it, speaks both of NumPy's dispatch protocols and offers ``get()``: the strict
    stand-in's too), else ``a`` unchanged. No backend module is imported to decide it.

    .. math:: a_{\text{host}} = \texttt{a.get()}\ \text{for a device array}
    """
    t = type(a)
    protocols = hasattr(t, "__array_ufunc__") and hasattr(t, "__array_function__")
    if isinstance(a, numpy.ndarray) or not protocols or not callable(getattr(t, "get", None)):
        return a
    return a.get()


class Backend:
    r"""One array backend.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"cupy"`` or ``"strict"``.
    xp : module
        The array module used for *creation* (``zeros``, ``eye``, ``asarray``...). Arithmetic in
        refscore goes through ``autograd.numpy`` so that it stays differentiable.
    array_type : type
        The array class this backend owns.
    """

    name: str = "?"
    xp = None
    #: True where arrays live in host memory, so reading a value costs no device synchronisation
    host_memory: bool = False
    array_type: type = object

    def __repr__(self):
        return f"<refscore backend {self.name!r}>"

    # --- creation -------------------------------------------------------------------------
    def asarray(self, a, dtype=None):
        """Host/list/device data -> an array of this backend (a copy only when needed)."""
        raise NotImplementedError

    def to_numpy(self, a):
        """This backend's array -> ``numpy.ndarray`` (a device-to-host copy on GPUs)."""
        raise NotImplementedError

    def rng(self, seed=None):
        """A random Generator of this backend, seeded with ``seed``."""
        raise NotImplementedError

    # --- random numbers: the only place backends differ in how they draw ---------------------
    def normal(self, rng, shape, dtype="float64"):
        """Standard normal draws of the given shape and dtype."""
        self.check_rng(rng)
        return rng.standard_normal(size=tuple(shape), dtype=dtype)

    def uniform(self, rng, shape, dtype="float64"):
        """Uniform draws on [0, 1)."""
        self.check_rng(rng)
        return rng.random(size=tuple(shape), dtype=dtype)

    def rademacher(self, rng, shape, dtype="float64"):
        """Independent ±1 signs with probability ½ each."""
        u = self.uniform(rng, shape, dtype)
        return self.xp.where(u < 0.5, -1.0, 1.0).astype(dtype)

    def choice(self, rng, k, size, p):
        """Indices in ``range(k)`` drawn with probabilities ``p`` (an array of this backend)."""
        u = self.uniform(rng, (size,), p.dtype)
        cdf = self.xp.cumsum(p)
        idx = self.xp.searchsorted(cdf / cdf[-1], u, side="right")
        return self.xp.minimum(idx, k - 1)

    def check_rng(self, rng):
        """Raise ``TypeError`` unless ``rng`` is a Generator of this backend (names both types)."""
        if not isinstance(rng, self.generator_type):
            raise TypeError(
                f"rng must be a {self.generator_type.__module__}.{self.generator_type.__name__} "
                f"for the {self.name} backend (make one with backends.get({self.name!r}).rng(seed)), "
                f"got {type(rng).__module__}.{type(rng).__name__}"
            )

    generator_type: type = object

    # --- generator state (checkpoints) ---------------------------------------------------------
    def rng_state(self, rng):
        """A JSON-serialisable snapshot of ``rng``'s state, for :meth:`set_rng_state`.

        Raises ``NotImplementedError`` where the backend's Generator exposes no state.
        """
        self.check_rng(rng)
        return rng.bit_generator.state

    def set_rng_state(self, rng, state):
        """Restore a state taken by :meth:`rng_state` (bit-for-bit continuation)."""
        self.check_rng(rng)
        rng.bit_generator.state = state

    # --- device -------------------------------------------------------------------------------
    def synchronize(self):
        """Wait for queued device work (a no-op on the host backends); use around timings."""

    def device_name(self):
        """A human-readable name of the device this backend computes on."""
        import platform

        return platform.processor() or platform.machine() or "cpu"
