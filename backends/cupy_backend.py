"""The CuPy backend: refscore on a CUDA GPU, differentiated by HIPS autograd.

Install with ``pip install "refscore[gpu]"`` (CUDA 12, wheel ``cupy-cuda12x``) or
``pip install "refscore[gpu-cuda13]"`` (CUDA 13, ``cupy-cuda13x``).
"""
from __future__ import annotations

from ._base import Backend

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
    name = "cupy"

    def __init__(self):
        cupy = _import_cupy()
        from . import _autograd_ext

        self.xp = cupy
        self.array_type = cupy.ndarray
        self.generator_type = cupy.random.Generator
        _autograd_ext.register(cupy.ndarray, cupy)

    def asarray(self, a, dtype=None):
        if hasattr(a, "_strict_unwrap"):
            a = a._strict_unwrap()
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a):
        return self.xp.asnumpy(a)

    def rng(self, seed=None):
        return self.xp.random.default_rng(seed)
