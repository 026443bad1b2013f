"""Line plots: adaptation curves, stored trajectories, predictions against the truth.

matplotlib is imported inside the functions (lazily), never at module import. Bad
arguments raise :class:`scimeta.errors.ConfigError` (a ``ValueError``) naming the
argument, the value and what is allowed; an unknown variable or channel name raises
:class:`scimeta.errors.UnknownNameError` (also a ``KeyError``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, UnknownNameError, unknown_name

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes

#: Percentiles of the band drawn around each median adaptation curve.
BAND = (25.0, 75.0)
#: Opacity of a band's fill and of its outline: four overlapping bands stay readable.
BAND_FILL_ALPHA = 0.07
BAND_EDGE_ALPHA = 0.55
#: Data spanning at most this many decades get labelled ticks between the powers of 10.
FINE_TICK_DECADES = 3.0


def _axes(ax: Axes | None) -> Axes:
    """``ax`` itself, or the Axes of a new figure (pyplot imported only here)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    # constrained layout keeps a legend placed outside the axes inside the figure
    _, new = plt.subplots(layout="constrained")
    return new


def plot_adaptation(ds: xr.Dataset, ax: Axes | None = None, log: bool = True, *,
                    support: int | None = None, inner_lr: float | None = None) -> Axes:
    """Query MSE against inner steps: per initialization, the median over tasks and
    an interquartile band.

    ``ds`` holds ``query_mse`` with dims ``(init, step, task)`` (any order); the
    ``init`` coordinate labels the curves (e.g. ``"maml"``, ``"joint"``) and the
    ``step`` coordinate, if present, gives the x values (else 0, 1, ...). One line
    (``np.median`` over tasks) and one ``fill_between`` band (25th to 75th
    percentile, a light fill with an outline of the line's colour) per init; NaNs
    propagate, so drop failed tasks first. ``log`` puts the y axis on a log scale,
    with labelled ticks at 1, 2 (3) and 5 x 10^n, or at every integer multiple of
    10^n, when the data span three decades or less.

    The legend sits outside the axes, to the right, and its title says what is
    drawn: lines are medians over N tasks, bands interquartile ranges, with the
    support size K and the inner learning rate when known (the rate of the adaptation
    rule the curves were computed with). ``support`` and ``inner_lr`` give them;
    when omitted they are read from ``ds.attrs`` (``"support"``, ``"inner_lr"``;
    :func:`scimeta.train.evaluate` records the inner rate).
    """
    if "query_mse" not in ds:
        raise UnknownNameError(f"plot_adaptation: ds needs a 'query_mse' variable; "
                               f"have {sorted(map(str, ds.data_vars))}")
    mse = ds["query_mse"]
    if set(mse.dims) != {"init", "step", "task"}:
        raise ConfigError(f"plot_adaptation: ds['query_mse'] must have dims (init, step, task) "
                          f"in any order, got {mse.dims}")
    support = _setting("support", ds.attrs.get("support") if support is None else support,
                       "a positive integer (K, the support size) or None", integer=True)
    inner_lr = _setting("inner_lr", ds.attrs.get("inner_lr") if inner_lr is None else inner_lr,
                        "a finite number >= 0 or None")
    mse = mse.transpose("init", "step", "task")
    values = np.asarray(mse.values, dtype=np.float64)
    steps = (np.asarray(mse["step"].values) if "step" in mse.coords
             else np.arange(values.shape[1]))
    labels = ([str(v) for v in mse["init"].values] if "init" in mse.coords
              else [f"init {i}" for i in range(values.shape[0])])
    from matplotlib.colors import to_rgba

    ax = _axes(ax)
    drawn = []
    for label, curves in zip(labels, values, strict=True):
        median = np.median(curves, axis=-1)
        low, high = np.percentile(curves, BAND, axis=-1)
        (line,) = ax.plot(steps, median, label=label, linewidth=1.8, zorder=3)
        color = line.get_color()
        ax.fill_between(steps, low, high, facecolor=to_rgba(color, BAND_FILL_ALPHA),
                        edgecolor=to_rgba(color, BAND_EDGE_ALPHA), linewidth=0.7,
                        linestyle="--", zorder=2)
        drawn += [median, low, high]
    ax.set_xlabel("inner steps")
    ax.set_ylabel("query MSE")
    if len(steps) and np.issubdtype(np.asarray(steps).dtype, np.integer):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        ax.set_yscale("log")
        _log_ticks(ax, np.concatenate(drawn) if drawn else np.empty(0))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              frameon=False, fontsize="small", title_fontsize="small", alignment="left",
              title=_adaptation_note(values.shape[2], support, inner_lr))
    return ax


def _setting(name: str, value: Any, allowed: str, integer: bool = False) -> Any:
    """``value`` checked to be a finite number >= 0 (a positive integer with
    ``integer``) or None; else a :class:`ConfigError` naming ``name``."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    ok = np.isfinite(number) and number >= 0
    if integer:
        ok = ok and number.is_integer() and number >= 1
    if not ok:
        raise ConfigError(f"plot_adaptation: {name} must be {allowed}, got {value!r}")
    return int(number) if integer else number


def _adaptation_note(n_tasks: int, support: int | None, inner_lr: float | None) -> str:
    """What the adaptation plot shows, for the legend's title."""
    lines = [f"lines: median, N = {n_tasks} tasks",
             f"bands: IQR ({BAND[0]:g}–{BAND[1]:g} %)"]
    setup = [f"K = {int(support)}" if support is not None else "",
             f"inner rate {float(inner_lr):g}" if inner_lr is not None else ""]
    if any(setup):
        lines.append(", ".join(x for x in setup if x))
    return "\n".join(lines)


def _log_ticks(ax: Axes, values: np.ndarray) -> None:
    """Enough labelled ticks on a log y axis for the range the data span.

    Over more than :data:`FINE_TICK_DECADES` decades matplotlib's decade ticks are
    kept; over 1.5 to 3 decades major ticks sit at 1, 2 and 5 x 10^n, over 0.5 to 1.5
    at 1, 2, 3 and 5 x 10^n, within half a decade at every integer multiple of 10^n,
    or, when fewer than three of those fall within the data, at evenly spaced round
    values. Labels are plain numbers; unlabelled minor ticks fill the rest.
    """
    from matplotlib.ticker import (
        FuncFormatter,
        LogLocator,
        MaxNLocator,
        NullFormatter,
        ScalarFormatter,
    )

    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return
    low, high = float(positive.min()), float(positive.max())
    decades = float(np.log10(high / low))
    if decades > FINE_TICK_DECADES:
        return
    minor = LogLocator(base=10.0, subs=tuple(np.arange(2.0, 10.0)), numticks=12)
    if decades > 1.5:
        subs: tuple[float, ...] = (1.0, 2.0, 5.0)
    elif decades > 0.5:
        subs = (1.0, 2.0, 3.0, 5.0)
    else:
        subs = tuple(np.arange(1.0, 10.0))
        exponents = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
        multiples = [m * 10.0**e for e in exponents for m in subs if low <= m * 10.0**e <= high]
        if len(multiples) < 3:  # too narrow even for those: evenly spaced round values
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
            ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
            ax.yaxis.set_minor_locator(minor)
            ax.yaxis.set_minor_formatter(NullFormatter())
            return
    ax.yaxis.set_major_locator(LogLocator(base=10.0, subs=subs, numticks=12))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    ax.yaxis.set_minor_locator(minor)
    ax.yaxis.set_minor_formatter(NullFormatter())


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
        raise ConfigError(f"plot_trajectories: ds_store['u'] must have dims (task, time, "
                          f"channel) in any order (an ODE store), got {u.dims}")
    names = ([str(c) for c in u["channel"].values] if "channel" in u.coords
             else [str(i) for i in range(u.sizes["channel"])])
    if isinstance(channel, str):
        if channel not in names:
            raise unknown_name("channel", channel, names, "in the store (plot_trajectories)")
        index = names.index(channel)
    else:
        index = int(channel)
        if not 0 <= index < len(names):
            raise ConfigError(f"plot_trajectories: channel must be a name in {names} or an "
                              f"index in [0, {len(names) - 1}], got {channel!r}")
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
        raise ConfigError(f"plot_prediction: truth and pred must have the same shape, got "
                          f"truth {truth2.shape} and pred {pred2.shape}")
    if (support_t is None) != (support_y is None):
        raise ConfigError(f"plot_prediction: give both support_t and support_y, or neither; "
                          f"got support_t {'None' if support_t is None else 'given'} and "
                          f"support_y {'None' if support_y is None else 'given'}")
    ax = _axes(ax)
    many = truth2.shape[1] > 1
    for c in range(truth2.shape[1]):
        suffix = f" {c}" if many else ""
        (line,) = ax.plot(t, truth2[:, c], label=f"truth{suffix}")
        ax.plot(t, pred2[:, c], linestyle="--", color=line.get_color(), label=f"prediction{suffix}")
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
        raise ConfigError(f"plot_prediction: {what} must have shape [{n}] or [{n}, C] "
                          f"(n = number of time points), got {arr.shape}")
    return arr
