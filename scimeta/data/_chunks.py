"""Reading whole tasks of ``u`` from disk fast: one chunk per task, decoded here.

A store's ``u`` is chunked one task per chunk whenever a task fits in one chunk (ODE
families, small PDE grids). For such chunks, stored uncompressed or with gzip (+
shuffle), :func:`read_tasks` reads each task's raw chunk (``read_direct_chunk``) and
decodes it with zlib and numpy, skipping h5py's per-selection overhead (about 40 us a
task; a list selection ``u[[i, j, ...]]`` costs about 6x more). Any other layout or
filter (lzf, tasks split along time) takes h5py's plain per-task read.
"""

from __future__ import annotations

import weakref
import zlib

import h5py
import numpy as np

from ..typing import Indices


class _Plan:
    """What :func:`read_tasks` needs of a dataset, read once per open file (h5py's
    properties re-read the dataset's creation list on every access)."""

    def __init__(self, u: h5py.Dataset) -> None:
        self.u, self.dsid = u, u.id
        self.shape, self.dtype = tuple(u.shape[1:]), u.dtype
        self.gzip, self.shuffle = u.compression == "gzip", bool(u.shuffle)
        self.direct = _direct_ok(u)


#: plans by open file and dataset name (dropped with the file object)
_PLANS: weakref.WeakKeyDictionary[h5py.File, dict[str, _Plan]] = weakref.WeakKeyDictionary()


def read_tasks(f: h5py.File, name: str, tasks: Indices) -> np.ndarray:
    """Fields ``[len(tasks), T, *space, C]`` of ``tasks`` (distinct indices, any order)
    of the dataset ``name`` of the open file ``f``.

    Raises ``OSError`` for a chunk that cannot be read or decoded (a damaged file).
    """
    plans = _PLANS.setdefault(f, {})
    plan = plans.get(name)
    if plan is None:
        plan = plans[name] = _Plan(f[name])
    u, tasks = plan.u, [int(t) for t in tasks]
    if not plan.direct:
        return np.stack([u[t] for t in tasks]) if tasks else np.empty((0, *plan.shape),
                                                                        plan.dtype)
    out = np.empty((len(tasks), *plan.shape), plan.dtype)
    flat = out.reshape(len(tasks), -1)
    n, size = flat.shape[1], plan.dtype.itemsize
    zeros = (0,) * len(plan.shape)
    for k, t in enumerate(tasks):
        try:
            mask, raw = plan.dsid.read_direct_chunk((t, *zeros))
        except (OSError, KeyError, ValueError):
            mask, raw = 1, b""  # an unwritten chunk (fill value) or an odd case
        if mask:  # a filter was skipped, or no chunk: let h5py decode it
            out[k] = u[t]
            continue
        try:
            if plan.gzip:
                raw = zlib.decompress(raw)
            data = np.frombuffer(raw, np.uint8, count=n * size)
            row = flat[k].view(np.uint8).reshape(n, size)
            row[...] = data.reshape(size, n).T if plan.shuffle else data.reshape(n, size)
        except (zlib.error, ValueError) as exc:
            raise OSError(f"cannot decode chunk of task {t} ({exc})") from None
    return out


def _direct_ok(u: h5py.Dataset) -> bool:
    """Whether every task of ``u`` is one chunk with filters this module decodes."""
    return (u.chunks is not None and tuple(u.chunks) == (1, *u.shape[1:])
            and u.compression in (None, "gzip") and not u.fletcher32
            and u.scaleoffset is None and u.dtype.kind == "f"
            and u.id.get_create_plist().get_nfilters() == (u.compression == "gzip")
            + bool(u.shuffle))
