"""Opening task stores with clear errors, and reading their metadata."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import StoreError
from ..family import STATUS_OK
from . import schema
from .lock import is_lock_error, locked_message


def open_h5(path: str | os.PathLike) -> h5py.File:
    """Open ``path`` read-only, turning every h5py failure into a one-line StoreError."""
    path = Path(path)
    if not path.exists():
        hint = ""
        partial = path.with_name(path.name + ".partial")
        if partial.exists():
            hint = f" (an incomplete {partial.name} exists: resume the generation)"
        raise StoreError(f"task store {str(path)!r} does not exist{hint}")
    if path.is_dir():
        raise StoreError(f"task store {str(path)!r} is a directory, not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if is_lock_error(exc):
            raise StoreError(locked_message(path, "read", exc)) from None
        reason = str(exc).split(";")[0].split("(")[0].strip() or type(exc).__name__
        raise StoreError(
            f"{str(path)!r} is not a readable HDF5 file (truncated or not HDF5: {reason})"
        ) from None


@dataclass(frozen=True)
class StoreMeta:
    """What a reader needs to know about a store, read once from its attributes."""

    path: Path
    family: str
    regime: str
    complete: bool
    param_names: tuple[str, ...]
    state_names: tuple[str, ...]
    space_dims: tuple[str, ...]
    time: np.ndarray
    space: tuple[np.ndarray, ...]
    status: np.ndarray
    attrs: dict

    @property
    def ok(self) -> np.ndarray:
        """Indices of the tasks with status ``ok``, shape ``[n_ok]``."""
        return np.flatnonzero(self.status == STATUS_OK)

    def attrs_json(self, key: str):
        """A JSON-encoded root attribute, decoded."""
        return json.loads(self.attrs[key])

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (len(self.time), *(len(s) for s in self.space))


def read_meta(f: h5py.File, path: Path) -> StoreMeta:
    """Check the schema version, required datasets and their task counts, then read the
    metadata; anything broken is a one-line :class:`StoreError`."""
    version = _plain(f.attrs.get("schema_version"))
    if version is None:
        raise StoreError(f"{str(path)!r} has no schema_version attribute: not a scimeta store")
    if isinstance(version, bool) or not isinstance(version, int):
        raise StoreError(f"{str(path)!r} has schema_version {version!r}, not an integer: not "
                         "a scimeta store")
    if version not in schema.SUPPORTED_VERSIONS:
        raise StoreError(
            f"{str(path)!r} has schema_version {version}; this scimeta reads "
            f"{', '.join(map(str, schema.SUPPORTED_VERSIONS))}"
        )
    missing = [v for v in (*schema.REQUIRED_VARS, "time") if v not in f]
    if missing:
        raise StoreError(f"{str(path)!r} is missing dataset(s): {', '.join(missing)}")
    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    complete = attrs.get("complete", 0)
    if isinstance(complete, bool) or complete not in (0, 1):
        raise StoreError(f"{str(path)!r} has complete = {complete!r}; allowed: 0 or 1")
    try:
        space_dims = tuple(json.loads(attrs.get("space_dims", "[]")))
        meta = StoreMeta(
            path=path, family=str(attrs.get("family")), regime=str(attrs.get("regime")),
            complete=bool(complete),
            param_names=tuple(json.loads(attrs["param_names"])),
            state_names=tuple(json.loads(attrs["state_names"])),
            space_dims=space_dims, time=f["time"][:],
            space=tuple(f[d][:] for d in space_dims), status=f["status"][:], attrs=attrs,
        )
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise StoreError(f"{str(path)!r} has broken metadata: {exc}") from None
    bad = shape_problems(f, meta)
    if bad:
        raise StoreError(f"{str(path)!r} is inconsistent: {bad[0]}")
    return meta


def shape_problems(f: h5py.File, meta: StoreMeta) -> list[str]:
    """Variables whose shape disagrees with the task count, grid, channels, parameters."""
    n = len(meta.status)
    grid = meta.grid_shape
    want = {schema.FIELD: (n, *grid, len(meta.state_names)),
            "params": (n, len(meta.param_names)), "seed": (n,)}
    if "y0" in f:
        want["y0"] = (n, *grid[1:], len(meta.state_names))
    out = [f"{var} has shape {f[var].shape}, expected {shape} ({n} tasks in status)"
           for var, shape in want.items() if f[var].shape != shape]
    for var in ("support_idx", "query_idx"):
        if f[var].ndim != 2 or f[var].shape[0] != n:
            out.append(f"{var} has shape {f[var].shape}, expected ({n}, K)")
    return out


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.reshape(()).item()
    return value
