"""Process memory settings for long solves: keep freed large arrays for reuse.

glibc (Linux) serves allocations above its mmap threshold (dynamic, 32 MiB at most by
default) with fresh pages from the kernel and returns them when they are freed. An iterative
solve at 10⁷ unknowns frees and re-allocates arrays of hundreds of MB at every iteration, and
each fresh page is a page fault. On virtual machines that report free pages to the host
(virtio-balloon free page reporting, as on the machines the benchmarks run on) the freed pages
go back to the host after a few seconds and touching them again costs a host fault per page:
0.09–0.56 s to fill a 320 MB array there (two runs), against 16 ms when the memory is
reused (``benchmarks/b_floor.py`` measures both).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

__all__ = ["retain_freed_memory"]

logger = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1


def retain_freed_memory(mmap_threshold_bytes: int = 2**30) -> bool:
    """Keep freed large arrays in this process for reuse instead of returning them to the OS.

    Raises glibc's mmap threshold (allocations below it come from the heap) and its trim
    threshold (free memory at the top of the heap up to 2 GiB is kept), so the arrays an
    iteration frees are reused by the next one without page faults. Process-wide: the
    resident size stays near its peak. Allocations of more than ``mmap_threshold_bytes``,
    and large ones made on worker threads, are still mapped fresh. The ``cityflux`` command
    calls it at start; call it once in other long-running processes.

    Parameters
    ----------
    mmap_threshold_bytes : int
        Allocations up to this size [B] come from the heap (at most 2**31 − 1).

    Returns
    -------
    bool
        True where applied (Linux with glibc), False elsewhere (nothing changed).

    Raises
    ------
    ValueError
        If ``mmap_threshold_bytes`` is not in [1, 2**31 − 1].
    """
    if not 1 <= int(mmap_threshold_bytes) <= _INT_MAX:
        raise ValueError(
            f"mmap_threshold_bytes must be in [1, {_INT_MAX}] bytes; found {mmap_threshold_bytes!r}"
        )
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        libc = None
    # glibc only (musl has no mallopt thresholds)
    if libc is None or not hasattr(libc, "gnu_get_libc_version"):
        logger.debug("retain_freed_memory: not glibc; nothing changed")
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold_bytes)))
    ok = bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX)) and ok
    logger.debug("retain_freed_memory: mmap threshold %d B, trim threshold %d B (%s)",
                 mmap_threshold_bytes, _INT_MAX, "applied" if ok else "refused")  # fmt: skip
    return ok
