"""Line plots: adaptation curves, stored trajectories, predictions against the truth.

matplotlib is imported inside the functions (lazily), never at module import.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes

#: Percentiles of the band drawn around each median adaptation curve.
BAND = (25.0, 75.0)


def _axes(ax: Axes | None) -> Axes:
    """``ax`` itself, or the Axes of a new figure (pyplot imported only here)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots()
    return new


def plot_adaptation(ds: xr.Dataset, ax: Axes | None = None, log: bool = True) -> Axes:
    """Query MSE against inner steps: per initialization, the median over tasks and
    an interquartile band.

    ``ds`` holds ``query_mse`` with dims ``(init, step, task)`` (any order); the
    ``init`` coordinate labels the curves (e.g. ``"maml"``, ``"joint"``) and the
    ``step`` coordinate, if present, gives the x values (else 0, 1, ...). One line
    (``np.median`` over tasks) and one ``fill_between`` band (25th to 75th
    percentile) per init; NaNs propagate, so drop failed tasks first. ``log`` puts
    the y axis on a log scale.
    """
    if "query_mse" not in ds:
        raise KeyError(f"plot_adaptation needs a 'query_mse' variable; have {list(ds.data_vars)}")
    mse = ds["query_mse"]
    if set(mse.dims) != {"init", "step", "task"}:
        raise ValueError(f"query_mse must have dims (init, step, task), got {mse.dims}")
    mse = mse.transpose("init", "step", "task")
    values = np.asarray(mse.values, dtype=np.float64)
    steps = (np.asarray(mse["step"].values) if "step" in mse.coords
             else np.arange(values.shape[1]))
    labels = ([str(v) for v in mse["init"].values] if "init" in mse.coords
              else [f"init {i}" for i in range(values.shape[0])])
    ax = _axes(ax)
    for label, curves in zip(labels, values, strict=True):
        median = np.median(curves, axis=-1)
        low, high = np.percentile(curves, BAND, axis=-1)
        (line,) = ax.plot(steps, median, label=label)
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel("inner steps")
    ax.set_ylabel("query MSE")
    if log:
        ax.set_yscale("log")
    ax.legend()
    return ax


def _channel_label(ds: xr.Dataset, name: str, index: int) -> str:
    """``name [unit]``, the unit read from the ``channel`` coordinate's ``units``
    attribute (a JSON list in schema-v1 stores), if any."""
    units = ds["channel"].attrs.get("units") if "channel" in ds.coords else None
    try:
        unit = json.loads(units)[index] if isinstance(units, str) else None
    except (ValueError, IndexError, TypeError):
        unit = None
    return f"{name} [{unit}]" if unit else name


def plot_trajectories(ds_store: xr.Dataset, tasks: Sequence[int] = (0,), channel: int | str = 0,
                      ax: Axes | None = None) -> Axes:
    """One state component over time for some tasks of a task store.

    ``ds_store`` is the xarray view of an ODE store (``scimeta.data.open_xarray``):
    variable ``u`` with dims ``(task, time, channel)`` and a ``time`` coordinate.
    ``tasks`` are positional task indices; ``channel`` an index or a channel name.
    Tasks that are not ok are stored as NaN and draw nothing.
    """
    u = ds_store["u"]
    if set(u.dims) != {"task", "time", "channel"}:
        raise ValueError(f"plot_trajectories needs u with dims (task, time, channel), "
                         f"got {u.dims}")
    names = ([str(c) for c in u["channel"].values] if "channel" in u.coords
             else [str(i) for i in range(u.sizes["channel"])])
    if isinstance(channel, str):
        if channel not in names:
            raise KeyError(f"channel {channel!r} not in the store; have {names}")
        index = names.index(channel)
    else:
        index = int(channel)
    time = ds_store["time"]
    t = np.asarray(time.values)
    ax = _axes(ax)
    for task in tasks:
        values = u.isel(task=int(task), channel=index).transpose("time").values
        ax.plot(t, np.asarray(values), label=f"task {int(task)}")
    t_unit = time.attrs.get("units")
    ax.set_xlabel(f"time [{t_unit}]" if t_unit else "time")
    ax.set_ylabel(_channel_label(ds_store, names[index], index))
    ax.legend()
    return ax


def plot_prediction(t: np.ndarray, truth: np.ndarray, pred: np.ndarray,
                    support_t: np.ndarray | None = None, support_y: np.ndarray | None = None,
                    ax: Axes | None = None) -> Axes:
    """A prediction against the reference solution, with the support points.

    ``t`` ``[T]``; ``truth`` and ``pred`` ``[T]`` or ``[T, C]`` (one solid truth line
    and one dashed prediction line per component); ``support_t`` ``[K]`` and
    ``support_y`` ``[K]`` or ``[K, C]`` drawn as markers when given.
    """
    t = np.asarray(t)
    truth2, pred2 = _columns(truth, len(t), "truth"), _columns(pred, len(t), "pred")
    if truth2.shape != pred2.shape:
        raise ValueError(f"truth {truth2.shape} and pred {pred2.shape} differ in shape")
    ax = _axes(ax)
    many = truth2.shape[1] > 1
    for c in range(truth2.shape[1]):
        suffix = f" {c}" if many else ""
        (line,) = ax.plot(t, truth2[:, c], label=f"truth{suffix}")
        ax.plot(t, pred2[:, c], linestyle="--", color=line.get_color(), label=f"prediction{suffix}")
    if (support_t is None) != (support_y is None):
        raise ValueError("give both support_t and support_y, or neither")
    if support_t is not None:
        st = np.asarray(support_t)
        sy = _columns(support_y, len(st), "support_y")
        for c in range(sy.shape[1]):
            ax.plot(st, sy[:, c], linestyle="none", marker="o", color="black",
                    label="support" if c == 0 else None)
    ax.set_xlabel("time")
    ax.set_ylabel("state")
    ax.legend()
    return ax


def _columns(values: Any, n: int, what: str) -> np.ndarray:
    """``values`` as ``[n, C]`` (a 1-D input becomes one column)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"{what} must have shape [{n}] or [{n}, C], got {arr.shape}")
    return arr
