"""scimeta.plot.forecast: the drawn curves are the means they claim (Agg backend)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import xarray as xr

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from scimeta.errors import ConfigError, UnknownNameError
from scimeta.plot import plot_forecast_error
from scimeta.plot.forecast import mean_error


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _errors_ds() -> xr.Dataset:
    rng = np.random.default_rng(1)
    err = rng.lognormal(-4.0, 1.0, size=(2, 3, 4, 6))     # row, env, traj, time
    err[..., 0] = 0.0                                     # the rollout starts at y0
    err[1, 2, 3, 4] = np.nan                              # one diverged rollout in row 1
    dims = ("row", "env", "traj", "time")
    # stored with the dims in another order: the functions must not rely on it
    return xr.Dataset({"sq_error_tuned": (dims, err), "sq_error_none": (dims, 2 * err)},
                      coords={"init": ("row", ["joint", "context"]),
                              "adapted": ("row", ["all", "context"]),
                              "time": ("time", 0.5 * np.arange(6))}
                      ).transpose("time", "traj", "row", "env")


def test_mean_error_leaves_out_and_counts_diverged_rollouts():
    ds = _errors_ds()
    err = ds["sq_error_tuned"].transpose("row", "env", "traj", "time").values
    mean, left_out = mean_error(ds, "tuned")
    np.testing.assert_allclose(mean[0], err[0].reshape(12, 6).mean(0), rtol=1e-14)
    kept = np.delete(err[1].reshape(12, 6), 2 * 4 + 3, axis=0)  # env 2, traj 3
    np.testing.assert_allclose(mean[1], kept.mean(0), rtol=1e-14)
    assert left_out.tolist() == [0, 1]
    none, _ = mean_error(ds, "none")
    np.testing.assert_allclose(none, 2 * mean, rtol=1e-14)


def test_plot_forecast_error_draws_the_means_on_positive_times():
    ds = _errors_ds()
    ax = plot_forecast_error(ds)
    mean, _ = mean_error(ds)
    lines = ax.get_lines()
    assert len(lines) == 2 and ax.get_yscale() == "log"
    for line, m in zip(lines, mean, strict=True):
        np.testing.assert_array_equal(line.get_xdata(), 0.5 * np.arange(1, 6))  # t = 0 off
        np.testing.assert_array_equal(line.get_ydata(), m[1:])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["joint (all)", "context (context), 1 diverged"]
    assert len(plot_forecast_error(ds, log=False, stage="none").get_lines()[0].get_xdata()) == 6


def test_bad_forecast_error_input_names_the_argument():
    ds = _errors_ds()
    with pytest.raises(ConfigError, match="stage='after'"):
        plot_forecast_error(ds, stage="after")
    with pytest.raises(UnknownNameError, match="sq_error_tuned"):
        mean_error(ds.drop_vars("sq_error_tuned"))
    with pytest.raises(ConfigError, match=r"dims \('row', 'env', 'traj', 'time'\)"):
        mean_error(ds.isel(env=0))
