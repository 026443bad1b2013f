"""Training runs: configs, checkpoints, resume after SIGTERM, divergence, evaluation."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.errors import CheckpointError, ConfigError, RunError
from scimeta.runtime import load_checkpoint, save_checkpoint
from scimeta.runtime.config import from_dict, load_toml
from scimeta.train import RunDir, TrainConfig, TrainingDiverged, load_train_config, train
from scimeta.train.adapt import adapt
from scimeta.train.evaluate import evaluate, summary_table
from scimeta.train.setup import load_init


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("train-data")
    for k, (regime, n) in enumerate((("unforced-train", 40), ("unforced-test-extrapolate", 8))):
        generate(GenerationConfig("oscillator", regime, tasks=n, seed=k, support=6, query=12),
                 d / f"{regime}.h5")
    return d


def small_config(stores, **over) -> TrainConfig:
    raw = {
        "data": {"train": str(stores / "unforced-train.h5"),
                 "validation": {"ext": str(stores / "unforced-test-extrapolate.h5")}},
        "model": {"hidden": [8]},
        "meta": {"inner_lr": 0.05, "inner_steps": 2, "meta_batch": 4, "baselines": []},
        "optim": {"lr": 1e-2, "iterations": 12},
        "run": {"seed": 3, "checkpoint_every": 5, "validate_every": 6, "log_every": 3},
    }
    for key, value in over.items():
        section, name = key.split("__")
        raw[section][name] = value
    return from_dict(TrainConfig, raw)


def test_config_errors_name_the_key_and_the_nearest_valid_one(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[data]\ntrain = "a.h5"\n[meta]\ninner_lrr = 0.1\n')
    with pytest.raises(ConfigError, match=r"unknown key 'inner_lrr'; did you mean 'inner_lr'"):
        load_train_config(p)
    p.write_text('[data]\ntrain = "a.h5"\n[meta]\ninner_lr = -1.0\n')
    with pytest.raises(ConfigError, match="inner_lr must be > 0"):
        load_train_config(p)
    p.write_text('[data]\ntrain = "a.h5"\n[meta]\ninner_steps = -2\n')
    with pytest.raises(ConfigError, match="inner_steps must be >= 0"):
        load_train_config(p)
    p.write_text('[data]\ntrain = "a.h5"\n[model]\nactivation = "gelu"\n')
    with pytest.raises(ConfigError, match="activation = 'gelu'; allowed"):
        load_train_config(p)
    p.write_text('[meta]\nalgorithm = "maml"\n')
    with pytest.raises(ConfigError, match=r"config: missing the required \[data\] table"):
        load_train_config(p)
    p.write_text('[data]\nin_memory = false\n')
    with pytest.raises(ConfigError, match=r"config\.data: missing the required key 'train'"):
        load_train_config(p)


def test_run_writes_config_metrics_and_inits(stores, tmp_path, caplog):
    cfg = small_config(stores, meta__baselines=["fomaml", "joint"], model__normalize="outputs")
    with caplog.at_level(logging.INFO, logger="scimeta"):
        res = train(cfg, tmp_path / "run")
    # a normalized run (ScaledMSE) keeps the hand-batched path, and the log says so
    assert "phase maml: MAML meta-gradient on the hand-batched path" in caplog.text
    rd = RunDir(tmp_path / "run")
    assert res.completed and not rd.checkpoint.exists()
    assert {p.stem for p in rd.inits.glob("*.pt")} == {"maml", "fomaml", "joint"}
    assert from_dict(TrainConfig, load_toml(rd.config)) == cfg
    rows = rd.read_metrics()
    assert [int(r["iteration"]) for r in rows if r["phase"] == "maml"
            and r["metric"] == "train_loss"] == [3, 6, 9, 12]
    assert sum(r["metric"] == "val_mse/ext" for r in rows) == 3 * 2
    with pytest.raises(ConfigError, match="exists; pass resume=True"):
        train(cfg, tmp_path / "run")

    ds = evaluate(tmp_path / "run", stores / "unforced-test-extrapolate.h5", steps=3)
    assert ds["query_mse"].dims == ("init", "optimizer", "budget", "task")
    assert list(ds["init"].values) == ["maml", "fomaml", "joint", "random"]
    assert list(ds["optimizer"].values) == ["sgd", "adam"]
    assert list(ds["budget"].values) == [0, 1, 2, 3] and ds.sizes["task"] == 8
    assert (tmp_path / "run" / "evaluation" / "unforced-test-extrapolate.nc").exists()
    import h5py

    with h5py.File(stores / "unforced-test-extrapolate.h5") as f:  # float64, as stored
        np.testing.assert_array_equal(ds["params"].values, f["params"][:8])
    # budget 0 is the init's own query error (for every optimizer), computed here
    # independently
    from scimeta.train.models import build_learner, build_model

    info = rd.load_info()
    model = build_model(cfg, 1, 2, info["norm"], cfg.run.seed)
    theta = load_init(rd, "joint")
    reader = TaskReader(stores / "unforced-test-extrapolate.h5")
    b = reader.batch(range(8))
    learner = build_learner(cfg, model, None, "maml")
    pred = torch.stack([learner.predict(theta, b.query_x[i]) for i in range(8)])
    # normalize="outputs": errors are measured in units of each channel's spread
    scale = torch.tensor(info["norm"]["y_scale"])
    mse0 = (((pred - b.query_y) / scale) ** 2).mean(dim=(1, 2)).detach().numpy()
    for opt in ("sgd", "adam"):
        np.testing.assert_allclose(ds["query_mse"].sel(init="joint", optimizer=opt,
                                                       budget=0).values, mse0, rtol=1e-5)
    rows = summary_table(ds)
    assert rows[-1]["init"] == "random" and rows[-1]["ratio_to_random"] == 1.0


def _train_proc(cfg_path, run_dir, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "scimeta", "-q", "train", str(cfg_path), "--run-dir",
         str(run_dir), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_checkpoints_and_resume_matches_uninterrupted(stores, tmp_path):
    cfg_text = f"""
[data]
train = "{stores / 'unforced-train.h5'}"
[model]
hidden = [8]
[meta]
inner_lr = 0.05
inner_steps = 2
meta_batch = 4
baselines = ["joint"]
[optim]
lr = 0.01
iterations = 400
[run]
seed = 1
deterministic = true
checkpoint_every = 1000
log_every = 5
validate_every = 1000
"""
    cfg_path = tmp_path / "cfg.toml"
    cfg_path.write_text(cfg_text)
    ref = train(load_train_config(cfg_path), tmp_path / "ref")
    assert ref.completed

    proc = _train_proc(cfg_path, tmp_path / "cut")
    metrics = tmp_path / "cut" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not metrics.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("training finished before it could be signalled")
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err  # EXIT_REQUEUE: stopped with a checkpoint
    assert "stopped by SIGTERM" in out
    ck = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert ck["phase"] == "maml" and 0 < ck["iteration"] < 400

    proc = _train_proc(cfg_path, tmp_path / "cut", "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    for name in ("maml", "joint"):
        a = load_init(RunDir(tmp_path / "ref"), name)
        b = load_init(RunDir(tmp_path / "cut"), name)
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    rows = RunDir(tmp_path / "cut").read_metrics()
    its = [int(r["iteration"]) for r in rows if r["phase"] == "maml"]
    assert its == sorted(set(its)), "no duplicated metric rows after resume"


def test_divergence_stops_with_clear_message_and_keeps_last_checkpoint(stores, tmp_path):
    cfg = small_config(stores, meta__inner_lr=1e12, optim__iterations=20)
    with pytest.raises(TrainingDiverged, match="meta-loss became"):
        train(cfg, tmp_path / "run")


def test_incompatible_run_dir_and_foreign_checkpoints(stores, tmp_path):
    cfg = small_config(stores, optim__iterations=2)
    train(cfg, tmp_path / "run")
    rd = RunDir(tmp_path / "run")
    rd.info.write_text(rd.info.read_text().replace('"format": 1', '"format": 99'))
    with pytest.raises(RunError, match="run format 99"):
        evaluate(tmp_path / "run", stores / "unforced-test-extrapolate.h5")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a scimeta checkpoint"):
        load_checkpoint(foreign)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a loadable scimeta checkpoint"):
        load_checkpoint(junk)
    save_checkpoint(tmp_path / "ok.pt", {"x": torch.zeros(1)})
    assert load_checkpoint(tmp_path / "ok.pt")["x"].shape == (1,)


def test_adapt_to_csv_measurements(stores, tmp_path):
    cfg = small_config(stores, optim__iterations=2)
    train(cfg, tmp_path / "run")
    csv = tmp_path / "obs.csv"
    csv.write_text("t,x\n0,0.5\n1,0.2\n2,-0.1\n")
    ds = adapt(tmp_path / "run", csv, steps=3)
    assert ds["prediction"].shape == (201, 2)
    assert not np.allclose(ds["prediction"].values, ds["prediction_before"].values)
    csv.write_text("t,pressure\n0,1\n")
    with pytest.raises(ConfigError, match="unknown columns \\['pressure'\\]"):
        adapt(tmp_path / "run", csv)


def test_physics_informed_run_and_adaptation(stores, tmp_path):
    cfg = small_config(stores, meta__physics_weight=0.01, data__n_collocation=8,
                       optim__iterations=3)
    assert train(cfg, tmp_path / "run").completed
    csv = tmp_path / "obs.csv"
    csv.write_text("t,x,v\n0,0.5,0.0\n1,0.2,-0.4\n2,-0.1,-0.3\n")
    with_physics = adapt(tmp_path / "run", csv, steps=2, params=np.array([1.0, 0.1, 0.0, 1.0]))
    data_only = adapt(tmp_path / "run", csv, steps=2)
    assert with_physics.attrs["physics_informed"] == 1 and data_only.attrs["physics_informed"] == 0
    assert not np.allclose(with_physics["prediction"].values, data_only["prediction"].values)
    with pytest.raises(ConfigError, match="needs 4"):
        adapt(tmp_path / "run", csv, params=np.array([1.0]))


def test_quickstart_writes_tables_datasets_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from scimeta.cli import main

    out = tmp_path / "qs"
    assert main(["-q", "quickstart", "--out", str(out), "--iterations", "10"]) == 0
    text = (out / "summary.txt").read_text()
    for name in ("maml", "fomaml", "joint", "random"):
        assert name in text
    import xarray as xr

    for split in ("test-interpolate", "test-extrapolate"):
        with xr.open_dataset(out / "run" / "evaluation" / f"{split}.nc",
                             engine="h5netcdf") as ds:
            assert ds["query_mse"].dims == ("init", "optimizer", "budget", "task")
            assert list(ds["budget"].values) == [0, 1, 5, 10] and ds.sizes["task"] == 50
            # rates were chosen on the validation store, never on the test store
            assert ds.attrs["rates_tuned"] == 1
            assert "unforced-validation.h5" in ds.attrs["validation_store"]
            assert np.isfinite(ds["chosen_rate"].values).all()
        assert (out / "run" / "evaluation" / f"{split}.png").stat().st_size > 0


def test_cosine_schedule_anneals_the_outer_rate_step_by_step(stores, tmp_path, monkeypatch):
    from scimeta.train import loop as loop_module

    cfg = small_config(stores, optim__schedule="cosine", optim__lr=0.02,
                       optim__iterations=8)
    seen = []
    real = loop_module.meta_step

    def step(learner, params, batch, opt, *args, **kwargs):
        seen.append(opt.param_groups[0]["lr"])
        return real(learner, params, batch, opt, *args, **kwargs)

    monkeypatch.setattr(loop_module, "meta_step", step)
    train(cfg, tmp_path / "run")
    want = [0.02 * 0.5 * (1 + np.cos(np.pi * i / 8)) for i in range(8)]
    np.testing.assert_allclose(seen, want, rtol=1e-12)  # lr at step 0, then down to ~0
    with pytest.raises(ConfigError, match="schedule"):
        small_config(stores, optim__schedule="linear")
