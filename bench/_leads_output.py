"""The forecasting protocol's per-time errors as netCDF (``forecast-<grid>-<set>.nc``).

Each file holds, for one grid and test set, the squared error of every test rollout
at every time (mean over the state's components), before and after each row's
adaptation: ``sq_error_none`` and ``sq_error_tuned`` with dims
``(row, env, traj, time)``, coordinates ``init`` and ``adapted`` along ``row`` (the
rows of ``results.json`` for that set, in order) and ``time``. The mean over
``time`` of a trajectory's errors is its MSE in ``results.json``; the report draws
the mean over trajectories against time (``scimeta.plot.forecast``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import xarray as xr

from scimeta.runtime.atomic import write_netcdf


@dataclasses.dataclass
class ForecastErrors:
    """Squared errors ``[E, N, T]`` per row of one test set, on the times ``time``."""

    time: np.ndarray
    init: list[str] = dataclasses.field(default_factory=list)
    adapted: list[str] = dataclasses.field(default_factory=list)
    none: list[np.ndarray] = dataclasses.field(default_factory=list)
    tuned: list[np.ndarray] = dataclasses.field(default_factory=list)

    def add(self, init: str, adapted: str, none: np.ndarray, tuned: np.ndarray) -> None:
        """One row: its errors before (``none``) and after (``tuned``) adaptation."""
        self.init.append(init)
        self.adapted.append(adapted)
        self.none.append(np.asarray(none))
        self.tuned.append(np.asarray(tuned))

    def dataset(self, attrs: dict) -> xr.Dataset:
        """The rows as an ``xarray.Dataset`` (see the module docstring)."""
        dims = ("row", "env", "traj", "time")
        return xr.Dataset(
            {"sq_error_none": (dims, np.stack(self.none)),
             "sq_error_tuned": (dims, np.stack(self.tuned))},
            coords={"init": ("row", self.init), "adapted": ("row", self.adapted),
                    "time": ("time", np.asarray(self.time, dtype=np.float64))},
            attrs=attrs)


def file_name(key: str) -> str:
    """``"coda/new env"`` -> ``forecast-coda-new-env.nc``."""
    return "forecast-" + re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-") + ".nc"


def write_errors(out: Path, errors: dict[str, ForecastErrors], attrs: dict) -> list[Path]:
    """One netCDF file per test set under ``out`` (written atomically); ``attrs``
    (strings and numbers) go to every file, with ``grid`` and ``set`` added."""
    paths = []
    for key, found in errors.items():
        grid, _, test_set = key.partition("/")
        ds = found.dataset(dict(attrs, grid=grid, set=test_set))
        paths.append(write_netcdf(ds, out / file_name(key)))
    return paths
