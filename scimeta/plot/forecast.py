"""Forecast error along the rollout horizon (the LEADS/CoDA forecasting protocol).

``bench/leads_protocol.py`` writes, beside its ``results.json``, one netCDF file per
grid and test set (``forecast-<grid>-<set>.nc``) holding the squared error of every
test rollout at every time, before and after each init's adaptation
(:func:`scimeta.train.forecast.forecast_error`). :func:`plot_forecast_error` draws
one curve per init from such a dataset. matplotlib is imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, UnknownNameError
from .curves import _axes, _log_ticks

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes

#: the stages a forecast-error dataset holds: before and after adaptation
STAGES = ("none", "tuned")
#: the dims of each ``sq_error_<stage>`` variable
DIMS = ("row", "env", "traj", "time")


def mean_error(ds: xr.Dataset, stage: str = "tuned") -> tuple[np.ndarray, np.ndarray]:
    """Per row, the mean squared error at each time over the trajectories whose
    rollout stayed finite, ``[R, T]``, and the count of trajectories left out
    (non-finite anywhere), ``[R]``.

    ``ds`` holds ``sq_error_<stage>`` with dims ``(row, env, traj, time)``
    (state units squared); ``stage`` is ``"none"`` (before adaptation) or
    ``"tuned"`` (after). A :class:`ConfigError` names a bad ``stage`` or layout.
    """
    if stage not in STAGES:
        raise ConfigError(f"stage={stage!r}: expected one of {', '.join(STAGES)}")
    name = f"sq_error_{stage}"
    if name not in ds:
        raise UnknownNameError(f"ds needs a {name!r} variable; have "
                               f"{sorted(map(str, ds.data_vars))}")
    err = ds[name]
    if set(err.dims) != set(DIMS):
        raise ConfigError(f"ds[{name!r}] must have dims {DIMS} in any order, got {err.dims}")
    v = np.asarray(err.transpose(*DIMS).values, dtype=np.float64)
    v = v.reshape(v.shape[0], -1, v.shape[-1])                      # [R, E*N, T]
    ok = np.asarray(np.isfinite(v).all(axis=-1))                     # [R, E*N]
    total = np.where(ok[..., None], v, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / ok.sum(axis=1)[:, None]                       # NaN: none kept
    return mean, (~ok).sum(axis=1)


def plot_forecast_error(ds: xr.Dataset, ax: Axes | None = None, stage: str = "tuned",
                        log: bool = True) -> Axes:
    """The mean squared forecast error against time, one line per row (an init and
    what it adapted, from the ``init`` and ``adapted`` coordinates).

    Trajectories whose rollout went non-finite are left out of the mean and counted
    in the line's label. ``ds``: a forecast-error dataset (:func:`mean_error`);
    ``time`` coordinate in the system's time unit. Returns the Axes.
    """
    mean, left_out = mean_error(ds, stage)
    t = (np.asarray(ds["time"].values) if "time" in ds.coords
         else np.arange(mean.shape[1]))
    inits = ds["init"].values if "init" in ds.coords else range(mean.shape[0])
    adapted = ds["adapted"].values if "adapted" in ds.coords else [""] * mean.shape[0]
    ax = _axes(ax)
    keep = t > 0 if log else np.ones_like(t, dtype=bool)  # error 0 at y0 on a log axis
    for row, (init, what) in enumerate(zip(inits, adapted, strict=True)):
        label = f"{init} ({what})" if str(what) else str(init)
        if left_out[row]:
            label += f", {int(left_out[row])} diverged"
        ax.plot(t[keep], mean[row, keep], label=label, linewidth=1.6)
    ax.set_xlabel("time")
    ax.set_ylabel("squared error, mean over test rollouts")
    if log:
        ax.set_yscale("log")
        _log_ticks(ax, mean[:, keep].ravel())
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              frameon=False, fontsize="small", title_fontsize="small", alignment="left",
              title="after adaptation" if stage == "tuned" else "before adaptation")
    return ax
