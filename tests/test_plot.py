"""scimeta.plot: the drawn data equal the statistics they claim to show (Agg backend).

Medians are compared exactly (the plotted line stores the very float64 array that
``np.median`` returns); band edges are compared exactly against ``np.percentile``.
"""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import xarray as xr

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.collections import PolyCollection

from scimeta.errors import ConfigError, UnknownNameError
from scimeta.plot import plot_adaptation, plot_prediction, plot_trajectories

INITS = ("maml", "fomaml", "joint", "random")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _adaptation_ds(n_step: int = 6, n_task: int = 11) -> xr.Dataset:
    rng = np.random.default_rng(0)
    mse = rng.lognormal(mean=-3.0, sigma=1.0, size=(len(INITS), n_step, n_task))
    # store with the dims in another order: the function must not rely on it
    da = xr.DataArray(mse, dims=("init", "step", "task"),
                      coords={"init": list(INITS), "step": np.arange(n_step) * 2})
    return xr.Dataset({"query_mse": da.transpose("task", "init", "step")})


def test_adaptation_one_median_line_per_init() -> None:
    ds = _adaptation_ds()
    ax = plot_adaptation(ds)
    mse = ds["query_mse"].transpose("init", "step", "task").values
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == list(INITS)
    for i, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(6) * 2)
        np.testing.assert_array_equal(line.get_ydata(), np.median(mse[i], axis=-1))
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "inner steps" and ax.get_ylabel() == "query MSE"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(INITS)


def test_adaptation_one_interquartile_band_per_init() -> None:
    ds = _adaptation_ds()
    ax = plot_adaptation(ds)
    mse = ds["query_mse"].transpose("init", "step", "task").values
    steps = np.arange(6) * 2
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(INITS)
    for i, band in enumerate(bands):
        low, high = np.percentile(mse[i], [25, 75], axis=-1)
        vertices = np.concatenate([p.vertices for p in band.get_paths()])
        for s, step in enumerate(steps):
            ys = vertices[vertices[:, 0] == step, 1]
            assert ys.min() == low[s] and ys.max() == high[s], (INITS[i], step)
        assert vertices[:, 0].min() == steps[0] and vertices[:, 0].max() == steps[-1]


def test_adaptation_linear_scale_and_given_axes() -> None:
    fig, (left, right) = plt.subplots(1, 2)
    out = plot_adaptation(_adaptation_ds(), ax=right, log=False)
    assert out is right
    assert len(right.get_lines()) == len(INITS) and not left.get_lines()
    assert right.get_yscale() == "linear"
    assert len(fig.axes) == 2


def test_adaptation_rejects_wrong_dims() -> None:
    ds = xr.Dataset({"query_mse": (("init", "task"), np.ones((2, 3)))})
    with pytest.raises(ValueError, match="init, step, task"):
        plot_adaptation(ds)
    with pytest.raises(ConfigError,
                       match=r"query_mse.*\(init, step, task\).*got \('init', 'task'\)"):
        plot_adaptation(ds)
    with pytest.raises(KeyError, match="query_mse"):
        plot_adaptation(xr.Dataset())
    with pytest.raises(UnknownNameError, match="query_mse"):
        plot_adaptation(xr.Dataset())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"support": 0}, r"support must be a positive integer.*got 0"),
    ({"support": 2.5}, r"support must be a positive integer.*got 2\.5"),
    ({"inner_lr": -0.1}, r"inner_lr must be a finite number >= 0.*got -0\.1"),
    ({"inner_lr": "fast"}, r"inner_lr must be a finite number >= 0.*got 'fast'"),
])
def test_adaptation_rejects_bad_settings(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        plot_adaptation(_adaptation_ds(), **kwargs)


def test_adaptation_says_what_is_drawn() -> None:
    """The legend's title names the statistics, N (tasks), K (support) and the rate."""
    ds = _adaptation_ds(n_task=11)
    title = plot_adaptation(ds, support=10, inner_lr=0.1).get_legend().get_title().get_text()
    assert "median" in title and "IQR" in title and "25–75" in title
    assert "N = 11 tasks" in title and "K = 10" in title and "inner rate 0.1" in title
    # read from the Dataset's attributes when not given
    ds.attrs.update(support=5, inner_lr=0.02)
    title = plot_adaptation(ds).get_legend().get_title().get_text()
    assert "N = 11 tasks" in title and "K = 5" in title and "inner rate 0.02" in title
    # unknown settings are left out, not guessed
    ds.attrs.clear()
    title = plot_adaptation(ds).get_legend().get_title().get_text()
    assert "N = 11 tasks" in title and "K =" not in title and "inner rate" not in title


def test_adaptation_legend_sits_outside_the_data_area() -> None:
    """The legend does not cover the curves: its box lies right of the axes."""
    for ax in (plot_adaptation(_adaptation_ds()),
               plot_adaptation(_adaptation_ds(), ax=plt.subplots(figsize=(5, 3.5))[1])):
        fig = ax.figure
        fig.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        axes = ax.get_window_extent()
        assert legend.x0 >= axes.x1, (legend, axes)
        assert not legend.overlaps(axes)


def test_adaptation_bands_are_light_and_outlined() -> None:
    """Four overlapping bands stay apart: faint fill, outline in the line's colour."""
    ax = plot_adaptation(_adaptation_ds())
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    for line, band in zip(ax.get_lines(), bands, strict=True):
        face = band.get_facecolor()[0]
        edge = band.get_edgecolor()[0]
        assert face[3] <= 0.1
        assert 0.3 <= edge[3] < 1.0
        np.testing.assert_allclose(edge[:3], matplotlib.colors.to_rgb(line.get_color()))
        assert line.get_zorder() > band.get_zorder()


def _labelled_y_ticks(ax) -> list[float]:
    """Positions of the y ticks (major and minor) inside the view that carry a label."""
    ax.figure.canvas.draw()
    low, high = ax.get_ylim()
    ticks = ax.yaxis.get_major_ticks() + ax.yaxis.get_minor_ticks()
    return sorted({t.get_loc() for t in ticks
                   if t.label1.get_visible() and t.label1.get_text()
                   and low <= t.get_loc() <= high})


@pytest.mark.parametrize(("low", "high"), [(0.0312, 0.0315), (0.031, 0.036), (0.03, 0.06),
                                           (0.03, 0.08), (0.02, 0.2), (0.002, 0.5)])
def test_adaptation_log_axis_has_labelled_ticks_on_a_narrow_range(low, high) -> None:
    """Within one decade (or a few) the log axis still shows >= 3 labelled ticks."""
    rng = np.random.default_rng(1)
    mse = np.exp(rng.uniform(np.log(low), np.log(high), size=(2, 5, 40)))
    ds = xr.Dataset({"query_mse": (("init", "step", "task"), mse)},
                    coords={"init": ["maml", "joint"]})
    ax = plot_adaptation(ds)
    ticks = _labelled_y_ticks(ax)
    assert len(ticks) >= 3, ticks
    assert ax.get_yscale() == "log"


def test_adaptation_log_axis_keeps_decades_on_a_wide_range() -> None:
    rng = np.random.default_rng(2)
    mse = np.exp(rng.uniform(np.log(1e-6), np.log(1.0), size=(1, 4, 40)))
    ds = xr.Dataset({"query_mse": (("init", "step", "task"), mse)})
    ticks = _labelled_y_ticks(plot_adaptation(ds))
    assert len(ticks) >= 3
    np.testing.assert_allclose(np.log10(ticks), np.round(np.log10(ticks)))


def _store_like() -> xr.Dataset:
    t = np.linspace(0.0, 2.0, 21)
    u = np.stack([np.stack([np.sin((k + 1) * t), np.cos((k + 1) * t)], axis=-1)
                  for k in range(3)])
    return xr.Dataset(
        {"u": (("task", "time", "channel"), u.astype(np.float32))},
        coords={"time": ("time", t, {"units": "s"}),
                "channel": ("channel", ["x", "v"], {"units": '["m", "m/s"]'})},
    )


def test_trajectories_draw_the_stored_values() -> None:
    ds = _store_like()
    _fig, ax = plt.subplots()
    out = plot_trajectories(ds, tasks=(0, 2), channel="v", ax=ax)
    assert out is ax
    lines = ax.get_lines()
    assert len(lines) == 2
    for line, task in zip(lines, (0, 2), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), ds["time"].values)
        np.testing.assert_array_equal(line.get_ydata(), ds["u"].values[task, :, 1])
    assert ax.get_xlabel() == "time [s]" and ax.get_ylabel() == "v [m/s]"
    with pytest.raises(KeyError, match="channel"):
        plot_trajectories(ds, channel="z")
    with pytest.raises(UnknownNameError, match=r"channel 'z'.*known: v, x"):
        plot_trajectories(ds, channel="z")
    with pytest.raises(ConfigError, match=r"channel must be a name in \['x', 'v'\].*got 2"):
        plot_trajectories(ds, channel=2)


def test_prediction_draws_truth_prediction_and_support() -> None:
    t = np.linspace(0.0, 1.0, 11)
    truth, pred = np.sin(t), np.sin(t) + 0.01
    ax = plot_prediction(t, truth, pred, support_t=t[[0, 5]], support_y=truth[[0, 5]])
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_array_equal(lines[0].get_ydata(), truth)
    np.testing.assert_array_equal(lines[1].get_ydata(), pred)
    assert lines[1].get_linestyle() == "--"
    np.testing.assert_array_equal(lines[2].get_xdata(), t[[0, 5]])
    with pytest.raises(ValueError, match="shape"):
        plot_prediction(t, truth, pred[:5])
    with pytest.raises(ConfigError, match=r"pred must have shape \[11\] or \[11, C\].*\(5, 1\)"):
        plot_prediction(t, truth, pred[:5])
    with pytest.raises(ConfigError, match="support_t and support_y"):
        plot_prediction(t, truth, pred, support_t=t[[0, 5]])


def test_trajectories_of_a_generated_store(tmp_path) -> None:
    """On a real schema-v1 store (2 oscillator tasks): labels from the stored units."""
    from scimeta.data import GenerationConfig, generate, open_xarray

    path = generate(GenerationConfig("oscillator", "train", tasks=2, seed=0), tmp_path / "s.h5")
    ds = open_xarray(path)
    ax = plot_trajectories(ds, tasks=(1,), channel=1)
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), ds["u"].values[1, :, 1])
    assert ax.get_xlabel() == "time [s]" and ax.get_ylabel() == "v [m/s]"
    ds.close()


def test_import_does_not_import_matplotlib() -> None:
    code = ("import sys, scimeta.plot; "
            "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules "
            "if m.startswith('matplotlib'))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
