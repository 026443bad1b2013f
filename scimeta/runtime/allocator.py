"""Keep large CPU buffers in the C heap (glibc): fewer page faults in batched adaptation.

Batched test-time adaptation and rate selection allocate and free tensors of tens of MB
at every step (per-task weights, activations and their derivatives for B tasks × R
rates). glibc serves a request above its mmap threshold (at most 32 MB) with a fresh
``mmap`` and returns it with ``munmap`` on free, so every step faults each of its pages
in again: on 2 cores the kernel's share of an evaluation measured 40 % or more.
:func:`tune_allocator` asks glibc to serve every request from the heap
(``M_MMAP_MAX = 0``) and to hand freed heap memory back only when 2 GiB lie free at
its top (``M_TRIM_THRESHOLD``, the most ``mallopt`` takes), so freed buffers are
reused. The cost: the process keeps up to its peak memory until it exits. The
``scimeta`` command calls it at start; a script or notebook may call it itself.
``SCIMETA_MALLOC=system`` in the environment leaves the allocator as it is. Results
are unchanged (the allocator decides where buffers live, not what is computed);
``python bench/bench_allocator.py`` measures the time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
#: free bytes at the heap's top above which glibc returns them (mallopt's int maximum)
TRIM_THRESHOLD = 2 ** 31 - 1
#: the environment variable that opts out (value ``system``)
ENV = "SCIMETA_MALLOC"


def tune_allocator() -> bool:
    """Serve large allocations from the heap and keep freed memory (glibc on Linux);
    True when applied, False where it does not apply or ``SCIMETA_MALLOC=system``."""
    choice = os.environ.get(ENV, "heap")
    if choice not in ("heap", "system"):
        log.warning("%s=%r is not a choice (heap, system); leaving the allocator as it is",
                    ENV, choice)
        return False
    if choice == "system" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("allocator: large buffers from the heap, kept when freed (%s)", ok)
    return ok


__all__ = ["ENV", "tune_allocator"]
