"""Tune glibc's allocator so refreshes of large regions do not grow the heap for good."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

# mallopt's parameter number for the mmap threshold, from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
# Page bodies and their decoded text are hundreds of KiB: keep such blocks in mmap.
MMAP_THRESHOLD_BYTES = 128 * 1024

log = logging.getLogger(__name__)


def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; return whether it took effect.

    glibc raises the threshold each time a large block is freed, after which every page
    body lands in the heap and fragments it: resident memory then grows with the number
    of pages listed instead of staying flat. Elsewhere than glibc this does nothing.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    log.debug(
        "pinned the malloc mmap threshold", extra={"bytes": MMAP_THRESHOLD_BYTES, "ok": done}
    )
    return done
