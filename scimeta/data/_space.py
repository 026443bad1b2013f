"""Sizes of a store and the room left for it: pre-flight checks and the per-unit guard.

Estimates are upper bounds: every array uncompressed (gzip usually shrinks ``u``),
plus HDF5's per-chunk bookkeeping. The room for a file is the free space of its
filesystem and, when the process has one, the file-size limit (``ulimit -f``).
"""

from __future__ import annotations

import resource
import shutil
from pathlib import Path

import numpy as np

#: bytes kept free for HDF5's own metadata when the file is closed
MARGIN = 1 << 16
#: fixed part of a store: coordinates, attributes, superblock, dimension scales
BASE = 1 << 16
#: HDF5 bookkeeping per chunk of ``u`` (B-tree entry, node share)
PER_CHUNK = 96
#: memory per task while generating: seeds, statuses, pending indices, task coordinate
MEMORY_PER_TASK = 40


def field_bytes(time: np.ndarray, space_shape: tuple[int, ...], n_channel: int,
                itemsize: int) -> int:
    """Bytes of one task's ``u``, uncompressed, plus its chunk bookkeeping."""
    return int(len(time) * np.prod(space_shape, dtype=np.int64) * n_channel * itemsize
               + PER_CHUNK)


def fixed_task_bytes(space_shape: tuple[int, ...], n_channel: int, n_param: int,
                     n_support: int, n_query: int) -> int:
    """Bytes of one task in the contiguous arrays (y0, params, seed, status, indices)."""
    return int(8 * np.prod(space_shape, dtype=np.int64) * n_channel + 8 * n_param + 8 + 1
               + 8 * (n_support + n_query))


def human(n: float) -> str:
    """``1536`` -> ``"1.5 kB"`` (decimal units, as ``df -H``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover


def file_limit() -> int | None:
    """The process's file-size limit in bytes (``ulimit -f``), None if unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def room(path: Path) -> tuple[int, str]:
    """Bytes ``path`` may still grow by, and what bounds it (for messages)."""
    folder = path.parent if not path.is_dir() else path
    free = shutil.disk_usage(folder).free
    limit = file_limit()
    if limit is not None:
        size = path.stat().st_size if path.is_file() else 0
        if limit - size < free:
            return max(0, limit - size), f"the file-size limit (ulimit -f) of {human(limit)}"
    return free, f"the free space of {str(folder)!r}"


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
