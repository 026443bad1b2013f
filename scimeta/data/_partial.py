"""The files of one generation: the ``.partial`` store being written, its checks.

Each unit's data is written and flushed, then its statuses (the commit) and flushed
again, so a task whose status is not ``pending`` has its data on disk; a run stopped
at any point (SIGKILL, a full disk) leaves a ``.partial`` that ``resume`` continues
from the last committed unit.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import ConfigError, StoreError
from ..family import STATUS_OK, STATUS_PENDING
from . import _space, schema
from .lock import is_lock_error, locked_message

log = logging.getLogger(__name__)


@dataclass
class Unit:
    """The work and results for a contiguous-or-not group of tasks."""

    index: np.ndarray
    seeds: np.ndarray | None = None
    params: np.ndarray | None = None
    y0: np.ndarray | None = None
    fields: np.ndarray | None = None
    status: np.ndarray | None = None
    support: np.ndarray | None = None
    query: np.ndarray | None = None


def open_store(path: Path, mode: str, action: str) -> h5py.File:
    """``h5py.File(path, mode)`` with one-line errors; a lock held by another process is
    named as such (with its PID), never called an unreadable file. Written files get no
    chunk cache: a chunk reaches the disk (or fails) when it is written, before its
    task's status is."""
    try:
        return h5py.File(path, mode, **({} if mode == "r" else {"rdcc_nbytes": 0}))
    except OSError as exc:
        if is_lock_error(exc):
            raise StoreError(locked_message(path, action, exc)) from None
        reason = str(exc).split("(")[-1].rstrip(")") if "(" in str(exc) else str(exc)
        raise StoreError(f"cannot {action} {str(path)!r}: not a readable HDF5 file "
                         f"({reason}); pass overwrite=True to start again") from None


def check_same_config(path: Path, config_json: str) -> None:
    with open_store(path, "r", "resume from") as f:
        stored = f.attrs.get("generator_config")
    if isinstance(stored, bytes):
        stored = stored.decode()
    if stored != config_json:
        raise ConfigError(
            f"cannot resume {str(path)!r}: it was generated with {stored}, not "
            f"{config_json}; pass overwrite=True to start again"
        )


def finished(path: Path) -> tuple[bool, int]:
    """Whether a store is marked complete, and how many of its tasks are pending."""
    with open_store(path, "r", "resume from") as f:
        try:
            complete = int(np.asarray(f.attrs.get("complete", 0)).reshape(()))
            pending = int((f["status"][:] == STATUS_PENDING).sum())
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise StoreError(f"cannot resume from {str(path)!r}: broken store ({exc}); pass "
                             "overwrite=True to start again") from None
    return complete == 1 and pending == 0, pending


def prepare(path: Path, seeds: np.ndarray) -> np.ndarray:
    """Write the seeds (in blocks) and return the tasks still to solve."""
    with open_store(path, "r+", "resume from") as f:
        for start in range(0, len(seeds), 1 << 16):
            f["seed"][start:start + (1 << 16)] = seeds[start:start + (1 << 16)]
        return pending_tasks(f)


def pending_tasks(f: h5py.File) -> np.ndarray:
    """Tasks to (re)compute: pending ones, and 'ok' ones whose data did not reach disk.

    Status is written after the data, so an ok status with unwritten data (NaN fill
    value, index -1) or an unreadable chunk can only come from a crash mid-flush.
    """
    status = f["status"][:]
    has_y0 = "y0" in f
    torn = []
    for i in np.flatnonzero(status == STATUS_OK):
        try:
            intact = (np.isfinite(f[schema.FIELD][i]).all() and f["support_idx"][i].min() >= 0
                      and (not has_y0 or np.isfinite(f["y0"][i]).all()))
        except OSError:
            intact = False
        if not intact:
            torn.append(i)
    if torn:
        log.warning("%d task(s) marked ok lost their data in a crash; recomputing", len(torn))
        status[torn] = STATUS_PENDING
        f["status"][:] = status
    return np.flatnonzero(status == STATUS_PENDING)


def guard_room(path: Path, unit: Unit, done: int, total: int) -> None:
    """Stop before a write that could not fit (full disk, ``ulimit -f``), while the
    file can still be closed cleanly."""
    fields = unit.fields
    need = (0 if fields is None else fields.nbytes + len(fields) * _space.PER_CHUNK)
    need += _space.MARGIN
    have, bound = _space.room(path)
    if have < need:
        raise StoreError(
            f"stopped before running out of space: {_space.human(have)} left under {bound}, "
            f"the next {len(unit.index)} task(s) need up to {_space.human(need)}; "
            f"{done} of {total} tasks are committed in {str(path)!r}; free space, then "
            "continue with resume=True")


def write_unit(f: h5py.File, unit: Unit) -> None:
    """Write one unit's data, then its status, flushing after each (status = commit)."""
    if unit.fields is None or unit.status is None:
        raise RuntimeError("internal: a unit is written before it was solved")
    for j, i in enumerate(unit.index):
        f[schema.FIELD][i] = unit.fields[j]
    if "y0" in f:
        f["y0"][unit.index] = unit.y0
    f["params"][unit.index, :] = unit.params
    f["support_idx"][unit.index, :] = unit.support
    f["query_idx"][unit.index, :] = unit.query
    f.flush()
    f["status"][unit.index] = unit.status
    f.flush()


def write_failed(path: Path, exc: BaseException, done: int, total: int) -> StoreError:
    """The one-line error for a write that failed anyway (another process filled the
    disk): the units committed before it stay valid."""
    text = str(exc)
    match = re.search(r"error message = '([^']*)'", text)
    reason = (match.group(1) if match else getattr(exc, "strerror", None)
              or (text.splitlines()[0][:120] if text else type(exc).__name__))
    return StoreError(f"writing {str(path)!r} failed ({reason}) after {done} of {total} "
                      "tasks were committed; free space, then continue with resume=True")


def counts_text(status: np.ndarray) -> str:
    counts = np.bincount(status + 1, minlength=len(schema.STATUS_VALUES))
    return json.dumps(dict(zip(schema.STATUS_MEANINGS.split(), counts.tolist(), strict=True)))


def abandon(f: h5py.File) -> None:
    """Close ``f`` after a failed write without writing anything more to it.

    HDF5 would retry its pending writes on close (and at exit, where a failing flush
    can crash the interpreter); pointing its file descriptor at /dev/null first lets it
    close cleanly while the file on disk keeps its last flushed, consistent state:
    every unit committed before the failure, readable by ``resume``.
    """
    try:
        fd = f.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        log.debug("cannot detach the HDF5 file descriptor: %s", exc)
    try:
        f.close()
    except (OSError, RuntimeError) as exc:
        log.debug("closing after a failed write: %s", exc)
