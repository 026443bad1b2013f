"""Adaptation inputs and outputs: --param parsing, prediction points, CSV/netCDF output."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from scimeta import registry
from scimeta.cli import main
from scimeta.data import GenerationConfig, generate
from scimeta.errors import ConfigError
from scimeta.runtime.config import from_dict
from scimeta.train import TrainConfig, train
from scimeta.train.adapt import (
    adapt,
    param_vector,
    parse_assignments,
    read_points_csv,
    save_predictions,
)

PARAMS = ["--param", "omega0=1.0", "--param", "zeta=0.1", "--param", "F=0", "--param",
          "Omega=1"]


def test_parse_assignments():
    assert parse_assignments(["a=1", " b = -2.5e-1 "]) == {"a": 1.0, "b": -0.25}
    for bad in (["a"], ["=1"], ["a=x"], ["a=1:2"], ["a=1", "a=2"]):
        with pytest.raises(ConfigError, match="expected NAME=VALUE"):
            parse_assignments(bad)


def test_param_vector_needs_every_name_once():
    fam = registry.get("oscillator")
    vec = param_vector(fam, {"Omega": 4.0, "F": 3.0, "zeta": 2.0, "omega0": 1.0})
    np.testing.assert_array_equal(vec, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ConfigError, match=r"needs exactly omega0, zeta, F, Omega; unknown "
                                          r"\['w'\], missing \['zeta', 'F', 'Omega'\]"):
        param_vector(fam, {"omega0": 1.0, "w": 2.0})


def test_read_points_csv(tmp_path):
    p = tmp_path / "at.csv"
    p.write_text("x,t\n0.5,1\n0.25,2\n")
    np.testing.assert_array_equal(read_points_csv(p, ["t", "x"]), [[1, 0.5], [2, 0.25]])
    p.write_text("t,y\n1,2\n")
    with pytest.raises(ConfigError, match=r"need a header of exactly \['t', 'x'\]"):
        read_points_csv(p, ["t", "x"])
    with pytest.raises(ConfigError, match="cannot be read"):
        read_points_csv(tmp_path / "nope.csv", ["t"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapt")
    generate(GenerationConfig("oscillator", "unforced-train", tasks=12, support=6, query=12),
             d / "train.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(d / "train.h5"), "n_collocation": 8},
        "model": {"hidden": [8]},
        "meta": {"inner_lr": 0.05, "inner_steps": 2, "meta_batch": 4, "baselines": [],
                 "physics_weight": 0.01},
        "optim": {"lr": 1e-2, "iterations": 2},
        "run": {"seed": 3, "checkpoint_every": 5, "validate_every": 5, "log_every": 5},
    })
    train(cfg, d / "run")
    (d / "obs.csv").write_text("t,x,v\n0,0.5,0.0\n1,0.2,-0.4\n2,-0.1,-0.3\n")
    return d


def test_cli_adapt_outputs_and_points(run, capsys):
    base = ["adapt", str(run / "run"), "--support", str(run / "obs.csv"), "--steps", "2"]
    assert main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "t,x,v" and len(lines) == 1 + 201
    assert main([*base, "--out", str(run / "pred.csv")]) == 0
    assert (run / "pred.csv").read_text().splitlines() == lines
    (run / "at.csv").write_text("t\n0.5\n1.5\n")
    assert main([*base, "--at", str(run / "at.csv"), "--out", str(run / "pred.nc"), *PARAMS]) == 0
    with xr.open_dataset(run / "pred.nc", engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds["t"].values, [0.5, 1.5])
        assert ds.attrs["physics_informed"] == 1


def test_cli_adapt_param_errors_name_the_flag(run, capsys):
    base = ["adapt", str(run / "run"), "--support", str(run / "obs.csv")]
    assert main([*base, "--param", "omega0"]) == 2
    assert "--param 'omega0': expected NAME=VALUE" in capsys.readouterr().err
    assert main([*base, "--param", "omega0=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scimeta: error: --param {'omega0': 1.0}: family 'oscillator' needs")
    assert main([*base, "--at", str(run / "missing.csv")]) == 2
    assert "--at " in capsys.readouterr().err


def test_params_by_name_match_the_vector(run, tmp_path, capsys):
    by_name = adapt(run / "run", run / "obs.csv", steps=2, params=parse_assignments(PARAMS[1::2]))
    by_vector = adapt(run / "run", run / "obs.csv", steps=2,
                      params=np.array([1.0, 0.1, 0.0, 1.0]))
    np.testing.assert_array_equal(by_name["prediction"], by_vector["prediction"])
    save_predictions(by_name)
    assert capsys.readouterr().out.startswith("t,x,v\n")
    save_predictions(by_name, tmp_path / "p.nc")
    with xr.open_dataset(tmp_path / "p.nc", engine="h5netcdf") as ds:
        np.testing.assert_array_equal(ds["prediction"], by_name["prediction"])
