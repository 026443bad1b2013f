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


# ---- the support loss and its report ----------------------------------------------

def test_missing_channels_leave_each_observed_value_its_full_weight(run):
    """The masked support loss equals the full training MSE in which each missing value
    is replaced by the model's own prediction (zero error): an observed value pulls as
    hard whatever else is observed, so the effective inner step does not change."""
    import torch

    from scimeta.train.adapt import support_loss

    torch.manual_seed(0)
    pred = torch.randn(11, 2, dtype=torch.float64, requires_grad=True)
    target = torch.randn(11, 2, dtype=torch.float64)
    mask = torch.ones(11, 2, dtype=torch.bool)
    mask[:, 1] = False  # x(t) only
    masked = support_loss(torch.nn.Identity(), mask)(pred, target)
    filled = torch.where(mask, target, pred.detach())
    full = ((pred - filled) ** 2).mean()
    torch.testing.assert_close(masked, full)
    g1, = torch.autograd.grad(masked, pred)
    g2, = torch.autograd.grad(full, pred)
    torch.testing.assert_close(g1, g2)


def test_adapt_reports_the_support_loss_and_warns_when_it_rose(run, tmp_path, capsys, caplog):
    (tmp_path / "x.csv").write_text("t,x,v\n0,0.5,\n1,0.2,\n2,,-0.3\n")  # empty = missing
    ds = adapt(run / "run", tmp_path / "x.csv", steps=2)
    assert ds.attrs["observed"] == "3 of 6 support values"
    assert np.isfinite(ds.attrs["support_loss_before"])
    assert ds.attrs["support_loss_after"] < ds.attrs["support_loss_before"]
    assert main(["adapt", str(run / "run"), "--support", str(tmp_path / "x.csv")]) == 0
    err = capsys.readouterr().err
    assert "support loss" in err and "on 3 of 6 support values" in err
    import logging

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scimeta.train.adapt"):
        adapt(run / "run", tmp_path / "x.csv", steps=2, params=np.array([1.0, 0.1, 0.0, 1.0]))
        assert not [r for r in caplog.records if "data only" in r.message]
        adapt(run / "run", tmp_path / "x.csv", steps=2)  # a physics run without params
    assert any("adapting on the data only" in r.message for r in caplog.records)


def test_predictions_are_written_whole_or_not_at_all(run, tmp_path):
    ds = adapt(run / "run", run / "obs.csv", steps=1)
    with pytest.raises(ConfigError, match=r"unknown suffix '\.txt'; use \.csv"):
        save_predictions(ds, tmp_path / "p.txt")
    save_predictions(ds, tmp_path / "p.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]  # no temporary left


def test_support_from_a_store_and_points_outside_the_grid(run, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="scimeta.train.adapt"):
        ds = adapt(run / "run", run / "train.h5", steps=1, at=np.array([[1.0], [12.0]]))
    assert ds["prediction"].shape == (2, 2)
    assert any("extrapolations" in r.message for r in caplog.records)


# ---- a chosen test-time optimizer --------------------------------------------------

def test_chosen_sgd_at_the_inner_rate_is_the_runs_own_data_only_inner_loop(run):
    own = adapt(run / "run", run / "obs.csv", steps=3)  # no params: data-only inner SGD
    sgd = adapt(run / "run", run / "obs.csv", steps=3, optimizer="sgd")
    np.testing.assert_allclose(sgd["prediction"], own["prediction"], rtol=1e-12, atol=1e-14)
    assert sgd.attrs["optimizer"] == "sgd" and own.attrs["optimizer"] == "inner"


def test_lbfgs_with_the_residual_lowers_the_loss_and_uses_the_equation(run):
    params = parse_assignments(PARAMS[1::2])
    data = adapt(run / "run", run / "obs.csv", steps=20, optimizer="lbfgs")
    phys = adapt(run / "run", run / "obs.csv", steps=20, optimizer="lbfgs+physics",
                 params=params, physics_weight=1.0)
    assert data.attrs["support_loss_after"] <= data.attrs["support_loss_before"]
    assert phys.attrs["physics_informed"] == 1 and phys.attrs["steps"] == 20
    assert not np.allclose(phys["prediction"], data["prediction"])  # the residual acted


@pytest.mark.parametrize(("kw", "match"), [
    ({"optimizer": "lbfgs+physics"}, "needs the task's physical parameters"),
    ({"optimizer": "adam", "physics_weight": 1.0}, "only applies to a '\\+physics'"),
    ({"optimizer": "learned"}, "leave optimizer unset"),
    ({"optimizer": "newton"}, "optimizer='newton' is not allowed"),
    ({"optimizer": "adam", "rate": -1.0}, "rate=-1.0 is not allowed"),
])
def test_bad_optimizer_choices_are_refused_before_any_work(run, kw, match):
    with pytest.raises(ConfigError, match=match):
        adapt(run / "run", run / "obs.csv", **kw)


def test_cli_optimizer_error_names_the_flag(run, capsys):
    assert main(["adapt", str(run / "run"), "--support", str(run / "obs.csv"),
                 "--optimizer", "lbfgs+physics"]) == 2
    assert "needs the task's physical parameters" in capsys.readouterr().err
