"""Kept parameter snapshots (run.snapshot_every) for meta-overfitting diagnostics."""

from __future__ import annotations

import pytest
import torch

from scimeta.data import GenerationConfig, generate
from scimeta.errors import ConfigError
from scimeta.runtime import load_checkpoint
from scimeta.runtime.config import from_dict
from scimeta.train import RunDir, TrainConfig, train


def config(store, **run) -> TrainConfig:
    return from_dict(TrainConfig, {
        "data": {"train": str(store)}, "model": {"hidden": [6]},
        "meta": {"inner_lr": 0.05, "inner_steps": 1, "meta_batch": 3, "baselines": ["joint"]},
        "optim": {"lr": 1e-2, "iterations": 10},
        "run": {"seed": 1, "checkpoint_every": 3, "validate_every": 5, "log_every": 5, **run}})


def test_snapshots_every_n_iterations_and_at_the_end(tmp_path):
    store = tmp_path / "train.h5"
    generate(GenerationConfig("oscillator", "unforced-train", tasks=8, seed=0, support=5,
                              query=6), store)
    train(config(store, snapshot_every=4), tmp_path / "run")
    rd = RunDir(tmp_path / "run")
    for name in ("maml", "joint"):
        snaps = rd.list_snapshots(name)
        assert [it for it, _ in snaps] == [4, 8, 10]
        last = load_checkpoint(snaps[-1][1])
        final = load_checkpoint(rd.init_path(name))["params"]
        assert last["iteration"] == 10 and last["init"] == name
        assert all(torch.equal(last["params"][k], final[k]) for k in final)
    train(config(store), tmp_path / "none")
    assert RunDir(tmp_path / "none").list_snapshots("maml") == []
    with pytest.raises(ConfigError, match="snapshot_every must be >= 0"):
        config(store, snapshot_every=-1)
