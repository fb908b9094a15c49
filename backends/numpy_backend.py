"""The NumPy backend: the reference. HIPS autograd differentiates it natively."""
from __future__ import annotations

import numpy

from ._base import Backend
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
