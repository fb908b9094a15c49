"""The NumPy backend: the reference. HIPS autograd differentiates it natively."""
from __future__ import annotations

import numpy

from ._base import Backend
from .box_muller import standard_normal_float32
from .strict_backend import StrictArray


class NumpyBackend(Backend):
    """The reference backend: ``numpy.ndarray`` in host memory, differentiated natively by autograd."""

    name = "numpy"
    host_memory = True
    xp = numpy
    array_type = numpy.ndarray
    generator_type = numpy.random.Generator

    def asarray(self, a, dtype=None):
        if type(a).__module__.split(".")[0] == "cupy":
            a = a.get()
        elif isinstance(a, StrictArray):
            a = a.get()  # an explicit device-to-host copy (counted as a sync)
        return numpy.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        return self.asarray(a)

    def rng(self, seed=None):
        return numpy.random.default_rng(seed)

    def normal(self, rng, shape, dtype="float64"):
        r"""Standard normal draws: float32 by Box–Muller over the Generator's raw bits
        (:func:`~refscore.backends.box_muller.standard_normal_float32`, about 4× NumPy's float32
        ziggurat), every other dtype by ``rng.standard_normal``.

        .. math:: z \sim \mathcal N(0, I)

        (Box & Muller 1958, eqs. 1–2, for float32). Same seed, same dtype ⇒ same numbers.
        """
        if numpy.dtype(dtype) != numpy.float32:
            return super().normal(rng, shape, dtype)
        self.check_rng(rng)
        return standard_normal_float32(rng, shape)
