"""Stopping by validation (run.keep = "best-validation"): the init written is the
validated iterate with the least validation MSE, also across a resume."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from scimeta.data import GenerationConfig, generate
from scimeta.errors import ConfigError
from scimeta.runtime import load_checkpoint
from scimeta.runtime.config import from_dict
from scimeta.train import RunDir, TrainConfig, train
from scimeta.train.keep_best import KeepBest


def config(train_store, val_store=None, **run) -> TrainConfig:
    data = {"train": str(train_store)}
    if val_store is not None:
        data["validation"] = {"held": str(val_store)}
    return from_dict(TrainConfig, {
        "data": data, "model": {"hidden": [6]},
        "meta": {"inner_lr": 0.05, "inner_steps": 1, "meta_batch": 3, "baselines": ["joint"]},
        "optim": {"lr": 5e-2, "iterations": 12},
        "run": {"seed": 1, "checkpoint_every": 3, "validate_every": 2, "log_every": 4, **run}})


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("keep")
    kw = {"support": 5, "query": 6}
    generate(GenerationConfig("oscillator", "unforced-train", tasks=8, seed=0, **kw),
             d / "train.h5")
    generate(GenerationConfig("oscillator", "unforced-test-extrapolate", tasks=4, seed=1,
                              **kw), d / "val.h5")
    return d / "train.h5", d / "val.h5"


def test_the_init_is_the_snapshot_with_the_least_validation_mse(stores, tmp_path):
    train(config(*stores, keep="best-validation", snapshot_every=2), tmp_path / "run")
    rd = RunDir(tmp_path / "run")
    with rd.metrics.open() as f:
        rows = list(csv.DictReader(f))
    for name in ("maml", "joint"):
        val = {int(r["iteration"]): float(r["value"]) for r in rows
               if r["phase"] == name and r["metric"] == "val_mse/held"}
        assert sorted(val) == [2, 4, 6, 8, 10, 12]
        best = min(val, key=val.get)
        kept = [int(float(r["value"])) for r in rows
                if r["phase"] == name and r["metric"] == "kept_iteration"]
        assert kept == [best]
        init = load_checkpoint(rd.init_path(name))
        assert init["iteration"] == best and init["keep"] == "best-validation"
        snap = load_checkpoint(rd.snapshot_path(name, best))["params"]
        assert all(torch.equal(snap[k], init["params"][k]) for k in snap)
        assert not rd.best_path(name).exists()  # the record is gone once the init is written
    # the last iterate differs from the kept one unless the last was the best
    last = load_checkpoint(rd.snapshot_path("maml", 12))["params"]
    init = load_checkpoint(rd.init_path("maml"))
    assert (init["iteration"] == 12) == all(torch.equal(last[k], init["params"][k])
                                            for k in last)


def test_keep_last_is_the_default_and_best_needs_a_validation_store(stores, tmp_path):
    train(config(*stores), tmp_path / "run")
    init = load_checkpoint(RunDir(tmp_path / "run").init_path("maml"))
    assert init["iteration"] == 12 and init["keep"] == "last"
    with pytest.raises(ConfigError, match=r"run\.keep = 'best-validation' needs data\.validation"):
        config(stores[0], keep="best-validation")
    with pytest.raises(ConfigError, match="keep"):
        config(*stores, keep="best")


def test_keep_best_tracks_the_minimum_and_survives_a_resume(tmp_path):
    w = torch.zeros(3, requires_grad=True)
    params = {"w": w}
    path = tmp_path / "best-maml.pt"
    keep = KeepBest(path, params, start=0)
    for it, (value, mse) in enumerate([(1.0, 0.5), (2.0, 0.2), (3.0, math.nan),
                                       (4.0, 0.3)], start=1):
        with torch.no_grad():
            w.fill_(value)
        keep(it, mse)
    it, kept = keep.kept(4, {})
    assert it == 2 and torch.equal(kept["w"], torch.full((3,), 2.0))
    # resumed from a checkpoint at iteration 3: the record (iteration 2) carries over
    again = KeepBest(path, params, start=3)
    again(4, 0.25)  # worse than 0.2: not kept
    assert again.kept(4, {})[0] == 2
    # resumed from iteration 1: the record of iteration 2 is stale and dropped
    stale = KeepBest(path, params, start=1)
    assert not path.exists() and stale.kept(4, {})[0] == 4
    # a fresh phase (start 0) never inherits a record
    KeepBest(path, params, start=0)(2, 0.2)
    assert path.exists()
    assert KeepBest(path, params, start=0).kept(4, {})[0] == 4 and not path.exists()
