r"""Freed memory kept by the process, so that a training loop's large arrays do not fault in fresh
pages on every step.

A NumPy training step allocates and frees the same few dozen feature maps (0.1–15 MB each) on every
step. glibc's ``malloc`` serves blocks above its *mmap threshold* with fresh ``mmap`` pages and returns
free memory at the top of the heap above its *trim threshold* to the kernel; both thresholds adapt to
the sizes freed so far, so how many pages a step faults in (and the kernel zeroes) depends on what
else the process allocated before. Measured on the ``images mnist`` U-Net's training step (batch 64,
one thread, 2-core machine): 14,000 page faults and 180 ms a step alone, 35 faults and 145 ms in
the same process after a PyTorch step had raised the thresholds, 30 faults and 148 ms with
:func:`keep_freed_memory` (docs/benchmarks.md, "The MNIST U-Net against PyTorch eager").

.. math:: \text{threshold}_{mmap} = 32\ \text{MiB},\qquad \text{threshold}_{trim} = \text{max\_free}

The cost: up to ``max_free`` bytes of freed memory stay with the process instead of going back to
the system. The setting is process-wide and one-way (glibc keeps no record of the previous values);
``refscore images`` and ``refscore bench`` call it once, before their work. Elsewhere (musl, macOS,
Windows) there is no ``mallopt`` and nothing changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD"]

#: glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX, malloc/malloc.c)
MMAP_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>


def keep_freed_memory(max_free=1 << 30):
    r"""Make glibc's ``malloc`` serve blocks up to :data:`MMAP_THRESHOLD` from its heap and keep up
    to ``max_free`` bytes of freed heap (``mallopt(M_MMAP_THRESHOLD)``, ``mallopt(M_TRIM_THRESHOLD)``;
    glibc manual, "Malloc Tunable Parameters"). Returns True where both were set, False where the C
    library has no ``mallopt`` (then nothing changed). Process-wide; see the module docstring.

    .. math:: \text{threshold}_{mmap} = 32\ \text{MiB},\qquad \text{threshold}_{trim} = \text{max\_free}
    """
    if isinstance(max_free, bool) or not isinstance(max_free, int) or max_free < 0:
        raise ValueError(f"max_free must be an integer number of bytes >= 0, got {max_free!r}")
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    value = min(max_free, 2**31 - 1)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, value))
