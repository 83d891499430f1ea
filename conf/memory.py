"""Process-wide memory settings of ``schulhof serve`` (the composition root's job).

Password hashing (argon2id, 19 MiB per hash, directory.passwords) runs in the
default thread pool.  glibc serves a block that large with mmap, but after
the first one is freed it raises its mmap threshold to that size (the
"dynamic threshold", up to 32 MiB): every later hash takes its 19 MiB from
the thread's malloc arena instead, and a freed arena top is kept for reuse.
With six pool threads that is over 100 MiB held for good after a wave of
logins (measured: tests/bench/school_memory.py).  Setting the threshold
explicitly turns the dynamic adjustment off, so such blocks are always
mmapped and go back to the system when freed; Python's own objects (pymalloc
arenas of 256 KiB and small blocks) are not affected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("schulhof")

_M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


def return_large_blocks_to_os() -> bool:
    """Blocks of ``MMAP_THRESHOLD_BYTES`` and more are mmapped (glibc); False elsewhere."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not done:
        log.info("event=mallopt_refused option=M_MMAP_THRESHOLD")
    return done
