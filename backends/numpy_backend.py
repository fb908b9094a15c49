"""The NumPy backend: the reference. HIPS autograd differentiates it natively."""
from __future__ import annotations

import numpy

from ._base import Backend, host_copy
from .box_muller import standard_normal_float32


class NumpyBackend(Backend):
    """The reference backend: ``numpy.ndarray`` in host memory, differentiated natively by autograd."""

    name = "numpy"
    host_memory = True
    xp = numpy
    array_type = numpy.ndarray
    generator_type = numpy.random.Generator

    def asarray(self, a, dtype=None):
        # a device array (CuPy's, the strict stand-in's) by an explicit copy, counted as a sync
        return numpy.asarray(host_copy(a), dtype=dtype)

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
