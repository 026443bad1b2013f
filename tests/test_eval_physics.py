"""New regimes: the normalized residual, backtracking steps, test-time physics-informed
adaptation and the parameter-conditioned baseline in ``scimeta evaluate``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from scimeta import registry
from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.errors import ConfigError
from scimeta.meta import MAML, PhysicsLoss, TaskBatch
from scimeta.nn import CoordinateMLP
from scimeta.runtime.config import from_dict
from scimeta.train import RunDir, TrainConfig, train
from scimeta.train.adaptation import adapt_curve
from scimeta.train.conditioned import condition_batch
from scimeta.train.evaluate import evaluate, format_table, summary_table
from scimeta.train.selection import GRIDS, bounds_of, split_validation
from scimeta.train.setup import derivative_scale, load_init

D = torch.float64


# ---- the normalized residual -----------------------------------------------------

def test_scaled_residual_is_the_family_residual_divided_per_channel():
    fam = registry.get("oscillator")
    torch.manual_seed(0)
    model = CoordinateMLP(1, 2, hidden=[6]).to(D)
    params = dict(model.named_parameters())
    x = torch.linspace(0, 10, 9, dtype=D)[:, None]
    p = torch.tensor([2.0, 0.1, 0.0, 1.0], dtype=D)
    raw = PhysicsLoss(fam, 1.0).residual(model, params, x, p)
    scaled = PhysicsLoss(fam, 1.0, scale=[0.5, 4.0]).residual(model, params, x, p)
    torch.testing.assert_close(scaled, raw / torch.tensor([0.5, 4.0], dtype=D), rtol=0,
                               atol=1e-15)
    loss = PhysicsLoss(fam, 3.0, scale=[0.5, 4.0])(model, params, x, p)
    torch.testing.assert_close(loss, 3.0 * scaled.square().mean(), rtol=1e-15, atol=0)
    for bad in ([1.0], [1.0, 0.0], [1.0, float("nan")]):
        with pytest.raises(ConfigError, match=r"scale=.*one per channel"):
            PhysicsLoss(fam, 1.0, scale=bad)


def test_extra_inputs_are_carried_and_never_differentiated():
    """A network of (t, a) where a is a constant extra input: the residual equals that
    of the same network with a folded into its bias (the t-only network)."""
    fam = registry.get("oscillator")
    torch.manual_seed(1)
    wide = CoordinateMLP(2, 2, hidden=[5]).to(D)
    narrow = CoordinateMLP(1, 2, hidden=[5]).to(D)
    a = 0.7
    with torch.no_grad():
        w = wide.net[0].weight
        narrow.net[0].weight.copy_(w[:, :1])
        narrow.net[0].bias.copy_(wide.net[0].bias + a * w[:, 1])
        for (_, dst), (_, src) in zip(list(narrow.named_parameters())[2:],
                                      list(wide.named_parameters())[2:], strict=True):
            dst.copy_(src)
    t = torch.linspace(0, 10, 7, dtype=D)[:, None]
    p = torch.tensor([1.5, 0.2, 0.0, 1.0], dtype=D)
    r_wide = PhysicsLoss(fam, 1.0, extra_inputs=1).residual(
        wide, dict(wide.named_parameters()), torch.cat([t, torch.full_like(t, a)], 1), p)
    r_narrow = PhysicsLoss(fam, 1.0).residual(narrow, dict(narrow.named_parameters()), t, p)
    torch.testing.assert_close(r_wide, r_narrow, rtol=1e-12, atol=1e-12)
    with pytest.raises(ConfigError, match="extra_inputs=-1"):
        PhysicsLoss(fam, 1.0, extra_inputs=-1)


def test_derivative_scale_of_x_is_the_spread_of_v(tmp_path):
    """dx/dt = v exactly, so the spread of the finite-difference dx/dt over a store is
    the spread of its v channel (second-order differences on a fine grid)."""
    generate(GenerationConfig("oscillator", "unforced-train", tasks=6, seed=0, support=4,
                              query=4), tmp_path / "s.h5")
    reader = TaskReader(tmp_path / "s.h5")
    scale = derivative_scale(reader)
    v = np.concatenate([reader.fields(i)[:, 1] for i in range(len(reader))])
    assert scale[0] == pytest.approx(v.std(), rel=2e-3)
    assert len(scale) == 2 and all(s > 0 for s in scale)


# ---- backtracking steps ----------------------------------------------------------

def _linear(b: int, k: int, seed: int) -> tuple[MAML, TaskBatch]:
    rng = np.random.default_rng(seed)
    sx, qx = rng.standard_normal((b, k, 3)), rng.standard_normal((b, 2 * k, 3))
    w = rng.standard_normal((b, 1, 3))
    batch = TaskBatch(*(torch.tensor(a, dtype=D) for a in (
        sx, (sx * w).sum(-1, keepdims=True), qx, (qx * w).sum(-1, keepdims=True))))
    model = nn.Linear(3, 1).to(D)
    with torch.no_grad():
        model.weight.fill_(0.1)
        model.bias.zero_()
    return MAML(model, inner_lr=0.01, inner_steps=1), batch


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_backtracking_changes_nothing_while_every_step_lowers_the_loss(optimizer):
    learner, batch = _linear(4, 10, 0)
    params = learner.init_params()
    rate = 0.05 if optimizer == "sgd" else 0.01
    plain = adapt_curve(learner, params, batch, optimizer, rate, (0, 1, 5, 30))
    safe = adapt_curve(learner, params, batch, optimizer, rate, (0, 1, 5, 30), backtrack=True)
    torch.testing.assert_close(safe.query_mse, plain.query_mse, rtol=0, atol=0)


def test_backtracking_tames_a_rate_far_above_the_stability_edge():
    learner, batch = _linear(4, 10, 1)
    params = learner.init_params()
    x = torch.cat([batch.support_x, torch.ones(4, 10, 1, dtype=D)], -1)
    lam = torch.linalg.eigvalsh(2 / 10 * x.transpose(1, 2) @ x)[:, -1]
    rate = 20 * 2 / lam  # plain SGD diverges at once
    budgets = tuple(range(61))
    plain = adapt_curve(learner, params, batch, "sgd", rate, budgets)
    assert plain.diverged[-1].all()
    safe = adapt_curve(learner, params, batch, "sgd", rate, budgets, backtrack=True,
                       keep_params=True)
    assert not safe.diverged.any()
    # halving from 20 * 2/λ reaches a stable rate after at most 6 undone steps, then the
    # iterates converge towards each task's least-squares solution (no noise: query MSE
    # -> 0), at least a hundredfold in 60 steps on these condition numbers
    assert torch.isfinite(safe.query_mse).all()
    assert (safe.query_mse[-1] < 1e-2 * safe.query_mse[0]).all()
    with pytest.raises(ConfigError, match="backtrack=True is not allowed"):
        adapt_curve(learner, params, batch, "learned", None, (1,), backtrack=True)


# ---- end to end: physics-informed optimizers and the conditioned baseline -----------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("newreg")
    fam = registry.get("oscillator")
    val, test = split_validation(fam.regime("unforced-test-extrapolate"), "omega0", 3.0)
    specs = {"train": ("unforced-train", 24, ()), "val": (val, 4), "test": (test, 5)}
    generate(GenerationConfig("oscillator", "unforced-train", tasks=24, seed=0, support=6,
                              query=12), d / "train.h5")
    for k, key in enumerate(("val", "test")):
        regime, n = specs[key]
        generate(GenerationConfig("oscillator", "unforced-test-extrapolate", tasks=n,
                                  seed=k + 1, support=6, query=12, bounds=bounds_of(regime)),
                 d / f"{key}.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(d / "train.h5")}, "model": {"hidden": [8]},
        "meta": {"inner_lr": 0.05, "inner_steps": 2, "meta_batch": 4,
                 "baselines": ["joint", "conditioned"]},
        "optim": {"lr": 1e-2, "iterations": 10},
        "run": {"seed": 3, "checkpoint_every": 100, "validate_every": 100, "log_every": 100}})
    assert train(cfg, d / "run").completed
    return d


def test_physics_optimizers_choose_rate_and_weight_on_validation(run):
    ds = evaluate(run / "run", run / "test.h5", validation=run / "val.h5", write=False,
                  optimizers=("sgd", "sgd+physics"), budgets=(0, 2), bootstrap=20,
                  physics_weights=(1.0, 0.1), n_collocation=8,
                  grids={"sgd": (0.01, 0.03)})
    assert list(ds["init"].values) == ["maml", "joint", "conditioned", "random"]
    lam = ds["chosen_physics_weight"]
    assert np.isnan(lam.sel(optimizer="sgd")).all()
    assert set(lam.sel(optimizer="sgd+physics").values) <= {1.0, 0.1}
    assert set(ds["chosen_rate"].values.ravel()) <= {0.01, 0.03}
    gain = ds["ratio_to_data_only"]
    assert np.isnan(gain.sel(optimizer="sgd")).all()
    assert np.isfinite(gain.sel(optimizer="sgd+physics", budget=2)).all()
    # budget 0 is the init itself, whatever the optimizer
    q0 = ds["query_mse"].sel(budget=0)
    np.testing.assert_array_equal(q0.sel(optimizer="sgd"), q0.sel(optimizer="sgd+physics"))
    assert ds.attrs["backtrack"] == "sgd+physics" and ds.attrs["n_collocation"] == 8
    text = format_table(summary_table(ds), "t")
    assert "/data-only" in text and "sgd+physics" in text


@pytest.mark.parametrize("base", ["sgd", "lbfgs"])
def test_a_vanishing_residual_weight_is_data_only_adaptation(run, base):
    """λ → 0 turns the physics-informed loss into the data misfit: same curves as the
    data-only optimizer (at a stable rate no backtracking step is undone)."""
    ds = evaluate(run / "run", run / "test.h5", write=False,
                  optimizers=(base, f"{base}+physics"), budgets=(0, 1, 3, 8), bootstrap=0,
                  physics_weights=(1e-30,), n_collocation=4)
    q = ds["query_mse"]
    np.testing.assert_allclose(q.sel(optimizer=f"{base}+physics"), q.sel(optimizer=base),
                               rtol=1e-5, atol=0)
    assert not ds["diverged"].any()


def test_lbfgs_rates_come_from_its_own_grid_and_its_support_loss_never_grows(run):
    ds = evaluate(run / "run", run / "test.h5", validation=run / "val.h5", write=False,
                  optimizers=("lbfgs", "lbfgs+physics"), budgets=(0, 5), bootstrap=0,
                  physics_weights=(1.0, 0.1), n_collocation=8)
    assert set(ds["chosen_rate"].values.ravel()) <= set(GRIDS["lbfgs"])
    assert not ds["diverged"].any()  # the line search never accepts a growing loss
    assert np.isfinite(ds["ratio_to_data_only"].sel(optimizer="lbfgs+physics")).all()


def test_conditioned_baseline_is_scored_zero_shot_on_conditioned_inputs(run):
    ds = evaluate(run / "run", run / "test.h5", write=False, optimizers=("sgd",),
                  budgets=(0, 1), bootstrap=0)
    rd = RunDir(run / "run")
    info = rd.load_info()
    from scimeta.train.conditioned import conditioned_model

    model = conditioned_model(rd.load_config(), info, "cpu", torch.float32)
    params = load_init(rd, "conditioned")
    batch = condition_batch(TaskReader(run / "test.h5").batch(range(5)),
                            info["norm"]["p_lo"], info["norm"]["p_hi"])
    pred = functional_call(model, params, (batch.query_x,))
    want = (pred - batch.query_y).square().mean(dim=(1, 2)).double().numpy()
    got = ds["query_mse"].sel(init="conditioned", optimizer="sgd", budget=0).values
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.isfinite(ds["query_mse"].sel(init="conditioned", budget=1)).all()


def test_physics_options_are_checked_before_any_work(run):
    with pytest.raises(ConfigError, match=r"optimizer=.newton. is not allowed.*lbfgs\+physics"):
        evaluate(run / "run", run / "test.h5", optimizers=("newton",), write=False)
    with pytest.raises(ConfigError, match=r"optimizer=.learned\+physics. is not allowed"):
        evaluate(run / "run", run / "test.h5", optimizers=("learned+physics",), write=False)
    with pytest.raises(ConfigError, match=r"physics_weights=.*finite numbers > 0"):
        evaluate(run / "run", run / "test.h5", physics_weights=(0.0,), write=False)
    with pytest.raises(ConfigError, match="n_collocation=0"):
        evaluate(run / "run", run / "test.h5", optimizers=("sgd+physics",), n_collocation=0,
                 write=False)
    with pytest.raises(ConfigError, match="backtrack='some'"):
        evaluate(run / "run", run / "test.h5", backtrack="some", write=False)


def test_a_repeated_selection_is_read_from_the_cache_and_a_changed_one_is_not(
        run, tmp_path, monkeypatch):
    import shutil

    import scimeta.train.eval_select as ev  # where the selection calls select_rate
    from scimeta.train.selection_cache import FOLDER

    shutil.copytree(run / "run", tmp_path / "run")
    kw = dict(validation=run / "val.h5", optimizers=("sgd", "sgd+physics"),
              budgets=(0, 2), bootstrap=0, physics_weights=(1.0,), n_collocation=8,
              grids={"sgd": (0.01, 0.03)})
    first = evaluate(tmp_path / "run", run / "test.h5", label="a", **kw)
    files = sorted((tmp_path / "run" / "evaluation" / FOLDER).glob("*.npz"))
    assert len(files) == 4 * 2  # 4 inits × (sgd, sgd+physics)
    calls = []
    real = ev.select_rate
    monkeypatch.setattr(ev, "select_rate", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = evaluate(tmp_path / "run", run / "test.h5", label="b", **kw)
    assert not calls  # every selection came from the cache
    for name in ("chosen_rate", "chosen_physics_weight", "validation_query_mse", "query_mse"):
        np.testing.assert_array_equal(again[name].values, first[name].values)
    files[0].write_bytes(b"not an npz")  # an unreadable entry is recomputed
    evaluate(tmp_path / "run", run / "test.h5", label="c", **kw)
    assert len(calls) == 1
    evaluate(tmp_path / "run", run / "test.h5", label="d",
             **{**kw, "physics_weights": (0.5,)})  # a new λ: new selections
    assert len(calls) == 1 + 4


@pytest.fixture(scope="module")
def physics_run(run, tmp_path_factory):
    """A run meta-trained with the residual in its inner loss (λ = 0.01)."""
    d = tmp_path_factory.mktemp("physrun")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(run / "train.h5"), "n_collocation": 4},
        "model": {"hidden": [8]},
        "meta": {"inner_lr": 0.05, "inner_steps": 2, "meta_batch": 4, "baselines": [],
                 "physics_weight": 0.01},
        "optim": {"lr": 1e-2, "iterations": 5},
        "run": {"seed": 3, "checkpoint_every": 100, "validate_every": 100, "log_every": 100}})
    assert train(cfg, d / "run").completed
    return d / "run"


def test_data_only_optimizers_ignore_the_runs_training_residual(run, physics_run):
    """A run meta-trained with the residual: sgd adapts on the data alone (= sgd+physics
    at a vanishing λ), while 'learned' runs the trained rule, residual included (=
    sgd+physics at the run's λ and inner rate, without backtracking)."""
    kw = {"budgets": (0, 1, 3), "bootstrap": 0, "n_collocation": 4, "backtrack": "none",
          "write": False}
    tiny = evaluate(physics_run, run / "test.h5", optimizers=("sgd", "sgd+physics"),
                    physics_weights=(1e-30,), **kw)
    q = tiny["query_mse"].sel(init="maml")
    np.testing.assert_allclose(q.sel(optimizer="sgd+physics"), q.sel(optimizer="sgd"),
                               rtol=1e-5, atol=0)
    own = evaluate(physics_run, run / "test.h5", optimizers=("learned", "sgd+physics"),
                   physics_weights=(0.01,), **kw)
    q = own["query_mse"].sel(init="maml", budget=3)
    assert np.isfinite(q).all()
    np.testing.assert_allclose(q.sel(optimizer="learned"), q.sel(optimizer="sgd+physics"),
                               rtol=1e-5, atol=0)
    assert not np.allclose(q.sel(optimizer="learned"),
                           tiny["query_mse"].sel(init="maml", budget=3, optimizer="sgd"),
                           rtol=1e-4)
