"""The xarray view of a task store."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from .store import open_h5, read_meta


def open_xarray(path: str | os.PathLike, *, ok_only: bool = False) -> xr.Dataset:
    """Open a store as an ``xarray.Dataset`` (lazy, via the h5netcdf engine).

    Dimensions ``task``, ``time``, spatial dims, ``channel``, ``param``; variables
    ``u`` (task, time, *space, channel), ``params`` (task, param), ``status``, ...
    The file is checked first so that a bad path gives a one-line error.
    ``ok_only`` drops tasks whose status is not ok.
    """
    with open_h5(path) as f:
        meta = read_meta(f, Path(path))
    ds = xr.open_dataset(path, engine="h5netcdf")
    if ok_only:
        ds = ds.isel(task=meta.ok)
    return ds
