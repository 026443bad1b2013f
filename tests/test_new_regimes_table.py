"""bench/new_regimes.py: the cell table reports each (init, optimizer) median with
diverged tasks counted as +inf, and the headline picks optimizers on validation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("new_regimes", ROOT / "bench" / "new_regimes.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _evaluation(path: Path) -> None:
    inits, opts = ["maml", "random"], ["sgd", "sgd+physics"]
    mse = np.empty((2, 2, 2, 5))  # budget, init, optimizer, task
    mse[0] = 1.0
    mse[1, 0, 0] = [0.1, 0.2, 0.3, 0.4, 0.5]        # median 0.3
    mse[1, 0, 1] = [0.01, 0.02, 0.03, 0.04, 0.05]   # median 0.03 (the physics pick)
    mse[1, 1, 0] = [1.0, 2.0, 3.0, np.nan, np.nan]  # 2 diverged: median = 3 (+inf counted)
    mse[1, 1, 1] = [0.5, 0.6, 0.7, 0.8, 0.9]
    grid = np.array([[0.1, 1.0], [0.1, 1.0]])
    val = np.array([[[0.5, 0.4], [0.05, 0.06]], [[2.0, 3.0], [0.9, 0.8]]])
    ds = xr.Dataset(
        {"query_mse": (("budget", "init", "optimizer", "task"), mse),
         "grid_rate": (("optimizer", "rate_index"), grid),
         "chosen_rate": (("init", "optimizer"), np.array([[1.0, 0.1], [0.1, 1.0]])),
         "validation_median": (("init", "optimizer", "rate_index"), val)},
        coords={"budget": [0, 50], "init": inits, "optimizer": opts, "task": range(5)},
        attrs={"family": "toy"})
    ds.to_netcdf(path, engine="h5netcdf")


def test_cells_and_headline(tmp_path):
    mod = _module()
    path = tmp_path / "extrapolate.nc"
    _evaluation(path)
    table = mod.matrix(path, 50)
    assert "| maml | 0.3 | 0.03 |" in table
    assert "| random | 3 (2) | 0.7 |" in table and "5 tasks" in table
    rows = {r["init"]: r for r in mod.rows(path, 50)}
    # each init's optimizer is chosen by its validation median at its chosen rate
    assert rows["maml"]["optimizer"] == "sgd+physics" and rows["maml"]["median"] == 0.03
    assert rows["random"]["optimizer"] == "sgd+physics"  # 0.8 < 3.0 on validation
    assert np.isclose(rows["maml"]["random"][0], 0.03 / 0.7)  # ratio of medians


def test_versus_pairs_two_runs_on_the_same_tasks(tmp_path):
    mod = _module()
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    _evaluation(a)
    _evaluation(b)
    ds = xr.open_dataset(b, engine="h5netcdf").load()
    ds["query_mse"].loc[{"budget": 50, "init": "maml", "optimizer": "sgd+physics"}] = (
        [0.02, 0.04, 0.06, 0.08, 0.10])  # twice a's on every task
    b.unlink()
    ds.to_netcdf(b, engine="h5netcdf")
    v = mod.versus(a, b, 50)
    assert v["a"]["optimizer"] == v["b"]["optimizer"] == "sgd+physics"
    assert v["a"]["validation"] == 0.05 and v["a"]["median"] == 0.03
    assert np.isclose(v["b"]["median"], 0.06) and np.allclose(v["ratio"], 0.5)
    # two inits of different names (e.g. a cavia run against a maml run)
    w = mod.versus(a, b, 50, "maml", "random")
    assert w["a"]["init"] == "maml" and w["b"]["init"] == "random"
    assert w["b"]["median"] == float(np.median(mod.failures_as_inf(
        ds["query_mse"].sel(budget=50, init="random", optimizer=w["b"]["optimizer"]).values)))
    other = tmp_path / "other.nc"
    ds.assign_coords(task=range(10, 15)).to_netcdf(other, engine="h5netcdf")
    try:
        mod.versus(a, other, 50)
    except SystemExit as exc:
        assert "same test tasks" in str(exc)
    else:
        raise AssertionError("tasks that differ must be refused")
