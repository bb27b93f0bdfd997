"""Returning the C heap's freed blocks to the OS (glibc `malloc_trim`).

CPU tensors of torch (and NumPy arrays, and weight-loading buffers) come from
`malloc`. glibc serves blocks under its mmap threshold from the heap and keeps
them there when they are freed; the threshold adapts upward to the largest
block freed, up to 32 MiB, so once a model's 4-16 MiB kernels have been
allocated and freed a few times, such temporaries stay resident after they
are freed. Building a published-size GIVT (304M parameters, 1.13 GiB of
weights) on torch left 2.32-2.98 GiB resident against 1.04 GiB after the
import (five runs); `malloc_trim(0)` took one such build from 2.62 to
2.19 GiB. What stays resident adds to every later peak unless the same sizes
are allocated again, which neither a train step nor the sampler's packed
kernels do (session 19, `benchmarks/results/README.md`).

`release_freed_heap()` is called where a big allocation phase is about to
start: before a task builds its train function and around `TorchDecoder`'s
weight preparation. It costs 0.03-0.4 ms. Where the C library has no
`malloc_trim` (macOS, musl) it does nothing.
"""

import ctypes
import ctypes.util


def _c_malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _c_malloc_trim()


def release_freed_heap():
    """Returns the C heap's free pages to the OS; True where it could."""
    if MALLOC_TRIM is None:
        return False
    MALLOC_TRIM(0)
    return True
