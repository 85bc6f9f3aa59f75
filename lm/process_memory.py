"""How this process's C allocator treats large freed blocks (glibc only; elsewhere nothing).

numpy and torch allocate their arrays with ``malloc``. Under glibc's defaults a block past the
mmap threshold (128 kB at first, sliding up to 32 MB) is mapped afresh and unmapped when freed,
and the heap's free top is given back past 128 kB; the next array of that size then costs one
page fault per 4 kB page on first touch. Both the n-gram path (arrays of a few MB per order,
allocated and freed many times) and a CPU training (the same tensors at every update) pay that
again and again; :func:`keep_freed_memory` keeps them for reuse.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt(3) parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's own bound for its sliding threshold on 64-bit
TRIM_THRESHOLD = 256 << 20
_tuned = False


def keep_freed_memory() -> None:
    """Serve allocations under 32 MB from the heap and return its free top to the system only
    past 256 MB (glibc; elsewhere nothing). The process keeps up to 256 MB of freed memory.

    Measured on this project's 2-core machines: a PTB LSTM update took 13,000-20,000 page
    faults (7-15 ms of 75 ms) under glibc's defaults and about 10 with this; the whole
    ``lmpipe ngram`` 5-gram on PTB 70,000 against 43,000 faults (about 0.1 s of 2 s).
    Idempotent; the settings are process-wide, as torch's thread count is."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    if not sys.platform.startswith("linux"):
        return
    try:
        # the symbols already loaded (libc's among them); ctypes.util.find_library would run
        # ldconfig in a subprocess, 16 ms of a 2 s command
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
