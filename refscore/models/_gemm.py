r"""In-place accumulating matrix products on the host, :math:`C \leftarrow AB + \beta C`, for the
convolution's nine taps (:mod:`refscore.models.conv`).

NumPy's ``matmul`` cannot accumulate (:math:`\beta = 1`) and SciPy's ``blas.?gemm`` can, but holds
the GIL for the whole product (an f2py wrapper without ``threadsafe``): two threads each running a
shard of a training step then take turns instead of sharing the two cores (measured: 0.97× the
serial time for two ``sgemm`` calls on two threads, 1.72× faster with ``matmul``). So the
accumulating product is, in order of preference:

1. ``cblas_?gemm`` of the OpenBLAS that NumPy itself loaded (its wheels bundle one; the symbols
   carry the ``scipy_`` prefix and ``64_`` suffix of the 64-bit-integer build), called through
   :mod:`ctypes`, which releases the GIL for the call;
2. SciPy's ``blas.?gemm`` (holds the GIL);
3. None: the caller multiplies with ``matmul`` into a scratch array and adds.

.. math:: C_{ij} \leftarrow \sum_k A_{ik}B_{kj} + \beta\,C_{ij}\qquad\text{(BLAS level 3, ?GEMM)}
"""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as onp

__all__ = ["accumulating_gemm", "cblas_gemm"]

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # CBLAS_ORDER, CBLAS_TRANSPOSE (cblas.h)
_FOUND = {}


def _numpy_openblas():
    """The OpenBLAS shared library bundled with NumPy's wheel (already loaded by NumPy), or None."""
    here = os.path.dirname(onp.__file__)
    names = []
    for folder in (os.path.join(here, os.pardir, "numpy.libs"), os.path.join(here, ".dylibs"), here):
        names += sorted(glob.glob(os.path.join(folder, "libscipy_openblas64_*")))
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def cblas_gemm(dtype):
    r"""``f(A, B, C, beta, trans_a=False)``: :math:`C \leftarrow AB + \beta C` in place through NumPy's own
    OpenBLAS (``cblas_sgemm``/``cblas_dgemm``, the GIL released), for C-contiguous ``A`` (m, k), ``B``
    (k, n), ``C`` (m, n) of ``dtype`` float32 or float64; with ``trans_a``, :math:`C \leftarrow A^\top B
    + \beta C` for ``A`` (k, m) (NumPy's ``matmul(A.T, B)`` holds the GIL for that product: measured
    0.95× the serial time on two threads, 1.9× faster through here). None where that library or symbol
    is absent."""
    dtype = onp.dtype(dtype)
    if dtype not in _FOUND:
        _FOUND[dtype] = _load(dtype)
    return _FOUND[dtype]


def _load(dtype):
    letter = {onp.dtype("float32"): "s", onp.dtype("float64"): "d"}.get(dtype)
    lib = _numpy_openblas() if letter else None
    fn = getattr(lib, f"scipy_cblas_{letter}gemm64_", None) if lib is not None else None
    if fn is None:
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    real = ctypes.c_float if letter == "s" else ctypes.c_double
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64]
    fn.restype = None

    def gemm(A, B, C, beta, trans_a=False):
        if trans_a:  # A (k, m) stored row-major: C <- Aᵀ B + βC
            (k, m), n = A.shape, B.shape[1]
            fn(_ROW_MAJOR, _TRANS, _NO_TRANS, m, n, k, 1.0, A.ctypes.data, m, B.ctypes.data, n, beta, C.ctypes.data, n)
            return C
        (m, k), n = A.shape, B.shape[1]
        fn(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, 1.0, A.ctypes.data, k, B.ctypes.data, n, beta, C.ctypes.data, n)
        return C

    return gemm


def _scipy_gemm(dtype):
    from scipy.linalg import blas

    raw = {onp.dtype("float32"): blas.sgemm, onp.dtype("float64"): blas.dgemm}.get(onp.dtype(dtype))
    if raw is None:
        return None

    def gemm(A, B, C, beta, trans_a=False):
        # the transposed product on the transposed (Fortran-ordered) views: Cᵀ ← Bᵀ Aᵀ + β Cᵀ
        # (with trans_a, A stands for Aᵀ: Cᵀ ← Bᵀ A + β Cᵀ)
        got = raw(1.0, B.T, A if trans_a else A.T, beta=beta, c=C.T, overwrite_c=True)
        if not onp.shares_memory(got, C):  # BLAS worked on a copy: keep its result
            C[...] = got.T
        return C

    return gemm


def accumulating_gemm(dtype):
    r"""The best available ``f(A, B, C, beta, trans_a=False)`` (:math:`C \leftarrow AB + \beta C`, or
    :math:`A^\top B + \beta C` with ``trans_a``, in place) for
    ``dtype``: NumPy's OpenBLAS through ctypes, else SciPy's ``?gemm``, else None (module docstring).
    ``A``, ``B`` and ``C`` must be C-contiguous; the caller checks."""
    return cblas_gemm(dtype) or _scipy_gemm(dtype)
