"""The parameter-conditioned baseline: batch transform, training phase, resume, refusals."""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest
import torch
from torch.func import functional_call

from scimeta import registry
from scimeta.batch import TaskBatch
from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.errors import ConfigError, RunError
from scimeta.family import OdeFamily, SolverInfo
from scimeta.meta import Conditioned
from scimeta.params import ParamSpec, Regime, TimeGrid
from scimeta.runtime import load_checkpoint
from scimeta.runtime.config import from_dict
from scimeta.train import RunDir, TrainConfig, train
from scimeta.train import loop as loop_module
from scimeta.train.conditioned import (
    CONDITIONED,
    ConditionedReader,
    box_of,
    condition_batch,
    condition_batches,
    conditioned_model,
    param_box,
)
from scimeta.train.models import build_model
from scimeta.train.setup import load_init


class Decay(OdeFamily):
    """y' = -a y + b, y(0) = 1: the solution is a function of (t, a, b) alone."""

    name = "test_decay"
    equation = "y' = -a*y + b"
    params = (ParamSpec("a", "1/s", (0.0, math.inf)), ParamSpec("b", "1/s", (-10.0, 10.0)))
    state_names = ("y",)
    time = TimeGrid(0.0, 2.0, 21)
    regimes = {"train": Regime("train", box={"a": (0.5, 2.0), "b": (0.0, 0.0)}),
               "ext": Regime("ext", box={"a": (2.5, 3.0), "b": (0.0, 0.0)})}
    solver = SolverInfo("scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-10)
    initial_box = ((1.0, 1.0),)

    def rhs(self, t, y, p, xp):
        return (-p[0] * y[0] + p[1],)


if "test_decay" not in registry.names():
    registry.register("test_decay", Decay)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("decay")
    for regime, n, seed in (("train", 24, 0), ("ext", 6, 1)):
        generate(GenerationConfig("test_decay", regime, tasks=n, seed=seed, support=5,
                                  query=10), d / f"{regime}.h5")
    return d


def config(stores, **over) -> TrainConfig:
    raw = {
        "data": {"train": str(stores / "train.h5"), "validation": {"ext": str(stores / "ext.h5")}},
        "model": {"hidden": [16], "normalize": "both"},
        "meta": {"inner_lr": 0.05, "inner_steps": 1, "meta_batch": 6,
                 "baselines": [CONDITIONED, "joint"]},
        "optim": {"lr": 1e-2, "iterations": 150},
        "run": {"seed": 2, "checkpoint_every": 50, "validate_every": 75, "log_every": 50,
                "deterministic": True},
    }
    for key, value in over.items():
        section, name = key.split("__")
        raw[section][name] = value
    return from_dict(TrainConfig, raw)


@pytest.fixture(scope="module")
def run(stores, tmp_path_factory):
    """A run with baselines conditioned and joint (algorithm fomaml: cheap)."""
    path = tmp_path_factory.mktemp("runs") / "run"
    cfg = config(stores, meta__algorithm="fomaml")
    assert train(cfg, path).completed
    return path, cfg


# ---- the batch transform -------------------------------------------------------------
def test_condition_batch_appends_the_scaled_parameters():
    g = torch.Generator().manual_seed(0)
    sx, qx = torch.randn(2, 3, 2, generator=g), torch.randn(2, 4, 2, generator=g)
    sy, qy = torch.randn(2, 3, 1, generator=g), torch.randn(2, 4, 1, generator=g)
    params = torch.tensor([[1.0, 10.0], [2.0, 15.0]])
    b = TaskBatch(sx, sy, qx, qy, torch.zeros(2, 7, 2), params)
    out = condition_batch(b, [1.0, 0.0], [3.0, 10.0])
    # by hand: 2 (p - lo) / (hi - lo) - 1; (1, 10) is the box's lower/upper end, 15 is
    # outside it and is not clipped
    want = torch.tensor([[-1.0, 1.0], [0.0, 2.0]])
    assert out.support_x.shape == (2, 3, 4) and out.query_x.shape == (2, 4, 4)
    assert torch.equal(out.support_x[..., :2], sx) and torch.equal(out.query_x[..., :2], qx)
    for x, n in ((out.support_x, 3), (out.query_x, 4)):
        assert torch.equal(x[..., 2:], want[:, None, :].expand(2, n, 2))
    assert out.support_y is sy and out.query_y is qy and out.params is params
    # collocation points are widened the same way (test-time physics on this baseline)
    assert out.collocation_x.shape == (2, 7, 4)
    assert torch.equal(out.collocation_x[..., 2:], want[:, None, :].expand(2, 7, 2))
    with pytest.raises(ConfigError, match=r"params has shape \(2, 2\).*1 lower"):
        condition_batch(b, [0.0], [1.0])
    with pytest.raises(ConfigError, match="params has shape None"):
        condition_batch(b._replace(params=None), [1.0, 0.0], [3.0, 10.0])


def test_param_box_ends_map_to_plus_minus_one_and_a_constant_column_to_minus_one(stores):
    reader = TaskReader(stores / "train.h5")
    lo, hi = param_box(reader)
    p = reader.params
    assert lo == [p[:, 0].min(), 0.0] and hi == [p[:, 0].max(), 1.0]  # b = 0: hi = lo + 1
    c = ConditionedReader(reader, lo, hi)
    b = c.batch(range(len(c)))
    a = b.support_x[:, 0, 1]
    assert float(a.min()) == -1.0 and float(a.max()) == 1.0
    assert bool((b.query_x[..., 2] == -1.0).all())
    ext = ConditionedReader(TaskReader(stores / "ext.h5"), lo, hi).batch(range(6))
    assert bool((ext.query_x[..., 1] > 1.0).all())  # extrapolation maps outside the box


def test_reader_wrapper_samples_the_same_tasks_and_keeps_the_coordinates(stores):
    reader = TaskReader(stores / "train.h5", n_collocation=4)
    c = ConditionedReader(reader, *param_box(reader))
    assert (len(c), c.in_dim, c.out_dim) == (24, 3, 1)
    assert c.meta is reader.meta and np.array_equal(c.params, reader.params)
    assert np.array_equal(c.tasks, reader.tasks)
    # the loop draws rng = default_rng([seed, k]) per phase; the wrapper draws exactly
    # what the wrapped reader draws from the same generator state
    i1 = c.sample_indices(6, np.random.default_rng([2, 3]))
    i2 = reader.sample_indices(6, np.random.default_rng([2, 3]))
    assert np.array_equal(i1, i2)
    plain, cond = reader.batch(i1), c.batch(i1)
    assert torch.equal(cond.support_x[..., :1], plain.support_x)
    assert torch.equal(cond.query_y, plain.query_y)
    assert torch.equal(cond.collocation_x[..., :1], plain.collocation_x)
    assert torch.equal(cond.collocation_x[..., 1:], cond.support_x[:, :1, 1:].expand(
        -1, plain.collocation_x.shape[1], -1))
    with pytest.raises(ConfigError, match="has 2 parameters"):
        ConditionedReader(reader, [0.0], [1.0])


# ---- the training phase ----------------------------------------------------------------
def _pooled_mse(model, params, batch) -> float:
    names = {n for n, _ in model.named_parameters()}
    p = {k: v for k, v in params.items() if k in names}
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    return float((functional_call(model, p, (x,)) - y).square().mean())


def test_run_trains_the_conditioned_init_with_parameter_inputs(run, stores):
    path, cfg = run
    rd = RunDir(path)
    info = rd.load_info()
    assert {p.stem for p in rd.inits.glob("*.pt")} == {"fomaml", "joint", CONDITIONED}
    assert box_of(info) == param_box(TaskReader(stores / "train.h5"))
    theta = load_init(rd, CONDITIONED)
    first = next(v for v in theta.values() if v.ndim == 2)
    assert first.shape == (16, info["in_dim"] + 2)
    rows = rd.read_metrics()
    assert any(r["phase"] == CONDITIONED and r["metric"] == "val_mse/ext" for r in rows)
    # zero-shot on the training tasks: the conditioned network knows a, the joint one
    # can only predict a mean curve
    reader = TaskReader(stores / "train.h5")
    plain = reader.batch(range(len(reader)))
    joint_model = build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], 0)
    cond_model = conditioned_model(cfg, info, "cpu", torch.float32)
    (cond,) = condition_batches([plain], info)
    joint_mse = _pooled_mse(joint_model, load_init(rd, "joint"), plain)
    cond_mse = _pooled_mse(cond_model, theta, cond)
    assert cond_mse < 0.4 * joint_mse, (cond_mse, joint_mse)  # measured: 0.16


def test_a_stopped_conditioned_phase_resumes_exactly(run, stores, tmp_path, monkeypatch):
    ref, _ = run
    cfg = config(stores, meta__algorithm="fomaml", meta__baselines=[CONDITIONED])
    real, calls = loop_module.meta_step, []

    def step(learner, *args, **kwargs):
        if isinstance(learner, Conditioned):
            calls.append(1)
            if len(calls) == 70:
                os.kill(os.getpid(), signal.SIGUSR1)
        return real(learner, *args, **kwargs)

    monkeypatch.setattr(loop_module, "meta_step", step)
    res = train(cfg, tmp_path / "cut")
    assert not res.completed
    ck = load_checkpoint(RunDir(tmp_path / "cut").checkpoint)
    assert ck["phase"] == CONDITIONED and ck["iteration"] == 70
    monkeypatch.setattr(loop_module, "meta_step", real)
    assert train(cfg, tmp_path / "cut", resume=True).completed
    for name in ("fomaml", CONDITIONED):  # phases 0 and 1 of both runs
        a, b = load_init(RunDir(ref), name), load_init(RunDir(tmp_path / "cut"), name)
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)


def test_a_run_without_a_parameter_box_cannot_train_it(stores, tmp_path):
    cfg = config(stores, meta__baselines=[], optim__iterations=2)
    train(cfg, tmp_path / "old")
    rd = RunDir(tmp_path / "old")
    info = json.loads(rd.info.read_text())
    del info["norm"]["p_lo"], info["norm"]["p_hi"]
    rd.info.write_text(json.dumps(info))
    cfg2 = config(stores, meta__baselines=[CONDITIONED], optim__iterations=2)
    with pytest.raises(ConfigError, match=r"no parameter box.*new run directory"):
        train(cfg2, tmp_path / "old", resume=True, allow_changes=["meta.baselines"])
    assert not rd.init_path(CONDITIONED).exists()


# ---- consumers that use the coordinate-only network refuse it ----------------------------
def test_adapt_posterior_landscape_and_diagnose_refuse_the_conditioned_init(run, stores,
                                                                            tmp_path):
    from scimeta.bayes import posterior
    from scimeta.landscape import diagnose, landscape
    from scimeta.train.adapt import adapt

    path, _ = run
    csv = tmp_path / "obs.csv"
    csv.write_text("t,y\n0,1\n1,0.5\n")
    only = "evaluated by `scimeta evaluate` only"
    with pytest.raises(ConfigError, match=only):
        adapt(path, csv, init=CONDITIONED)
    with pytest.raises(ConfigError, match=only + "; use one of: fomaml, joint"):
        posterior(path, stores / "ext.h5", init=CONDITIONED, write=False)
    with pytest.raises(RunError, match=r"trained inits: fomaml, joint$"):
        posterior(path, stores / "ext.h5", init="maml", write=False)
    with pytest.raises(ConfigError, match=only):
        landscape(path, stores / "ext.h5", init=CONDITIONED, write=False)
    with pytest.raises(ConfigError, match=r"learner='conditioned' is not allowed"):
        landscape(path, stores / "ext.h5", learner=CONDITIONED, write=False)
    with pytest.raises(ConfigError, match=only):
        diagnose(path, [stores / "ext.h5"], init=CONDITIONED, write=False)
