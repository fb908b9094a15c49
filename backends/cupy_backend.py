"""The CuPy backend: refscore on a CUDA GPU, differentiated by HIPS autograd.

Install with ``pip install "refscore[gpu]"`` (CUDA 12, wheel ``cupy-cuda12x``) or
``pip install "refscore[gpu-cuda13]"`` (CUDA 13, ``cupy-cuda13x``).
"""
from __future__ import annotations

from ._base import Backend, host_copy

_INSTALL = (
    'install CuPy with `pip install "refscore[gpu]"` (CUDA 12.x: cupy-cuda12x) or '
    '`pip install "refscore[gpu-cuda13]"` (CUDA 13.x: cupy-cuda13x)'
)


def _import_cupy():
    try:
        import cupy
    except ImportError as e:  # CuPy missing
        raise ImportError(f"the cupy backend needs CuPy, which is not installed: {_INSTALL}") from e
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # driver/runtime missing
        raise RuntimeError(
            f"CuPy is installed but no CUDA device is usable ({type(e).__name__}: {e}); "
            f"the cupy backend needs an NVIDIA GPU with a working driver"
        ) from e
    if n < 1:
        raise RuntimeError("CuPy is installed but found no CUDA device; the cupy backend needs a GPU")
    return cupy


class CupyBackend(Backend):
    """CuPy on a CUDA GPU: ``cupy.ndarray`` registered with autograd (:mod:`.autograd_patches`)."""

    name = "cupy"

    def __init__(self):
        cupy = _import_cupy()
        from . import autograd_patches

        self.xp = cupy
        self.array_type = cupy.ndarray
        self.generator_type = cupy.random.Generator
        autograd_patches.register(cupy.ndarray, cupy)

    def asarray(self, a, dtype=None):
        if not isinstance(a, self.array_type):
            a = host_copy(a)  # another device's array (the strict stand-in's) through the host
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        return self.xp.asnumpy(a)

    def rng(self, seed=None):
        return self.xp.random.default_rng(seed)

    def rng_state(self, rng):
        self.check_rng(rng)
        # cupy.random.Generator's bit_generator exposes no settable state (CuPy 13/14): refuse
        # before anything is written, so a checkpoint is never half-made.
        raise NotImplementedError(
            "the cupy backend cannot save a random Generator's state (cupy.random.Generator has no "
            "settable state), so checkpoints cannot resume bit-for-bit on CuPy; pass "
            "checkpoint_dir=None, or train on the numpy backend")

    def set_rng_state(self, rng, state):
        self.rng_state(rng)

    def synchronize(self):
        self.xp.cuda.get_current_stream().synchronize()

    def device_name(self):
        props = self.xp.cuda.runtime.getDeviceProperties(self.xp.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
