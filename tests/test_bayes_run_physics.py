"""Run-level posteriors of a run that adapts with the equation residual."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from scimeta.bayes import posterior
from scimeta.bayes._run import physics_lambda
from scimeta.data import GenerationConfig, generate
from scimeta.meta import MAML, PhysicsLoss, TaskBatch
from scimeta.nn import CoordinateMLP
from scimeta.runtime.config import from_dict
from scimeta.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bayes_phys")
    generate(GenerationConfig("oscillator", "unforced-train", tasks=8, support=6, query=12),
             d / "train.h5")
    generate(GenerationConfig("oscillator", "unforced-test-interpolate", tasks=3, seed=1,
                              support=6, query=10), d / "test.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(d / "train.h5"), "n_collocation": 5},
        "model": {"hidden": [6]},
        "meta": {"inner_lr": 0.01, "inner_steps": 2, "meta_batch": 4, "baselines": [],
                 "physics_weight": 0.1},
        "optim": {"lr": 1e-2, "iterations": 2},
        "run": {"seed": 3, "checkpoint_every": 5, "validate_every": 5, "log_every": 5},
    })
    train(cfg, d / "run")
    return d


def test_physics_lambda_maps_the_training_weight_to_a_precision():
    model = CoordinateMLP(1, 2, hidden=[4])
    learner = MAML(model, physics=PhysicsLoss("oscillator", weight=0.3))
    b = TaskBatch(torch.zeros(2, 6, 1), torch.zeros(2, 6, 2), torch.zeros(2, 3, 1),
                  torch.zeros(2, 3, 2), torch.zeros(2, 5, 1), torch.zeros(2, 4))
    sigma = torch.tensor([0.1, 0.2], dtype=torch.float64)
    # λ = N C w / (σ² M C_r): N = 6 points, C = 2 channels, M = 5 points, C_r = 2
    want = 6 * 2 * 0.3 / (float(sigma.square().mean()) * 5 * 2)
    assert physics_lambda(learner, b, sigma, "diag") == pytest.approx(want, rel=1e-12)
    assert physics_lambda(learner, b, sigma, "kron") is None
    assert physics_lambda(learner, b._replace(collocation_x=None), sigma, "diag") is None
    assert physics_lambda(MAML(model), b, sigma, "diag") is None


def test_posterior_puts_the_residual_in_the_likelihood_unless_kron(run, caplog):
    ds = posterior(run / "run", run / "test.h5", structure="diag", write=False)
    assert ds.attrs["physics_in_likelihood"] == 1
    assert np.isfinite(ds["nll"]).all() and bool((ds["pred_std"] > 0).all())
    with caplog.at_level(logging.WARNING, logger="scimeta.bayes"):
        kr = posterior(run / "run", run / "test.h5", write=False)
    assert kr.attrs["physics_in_likelihood"] == 0
    assert "kron cannot carry its block" in caplog.text
