"""Fair evaluation: rates tuned on validation only, learned rates, Adam, divergence, intervals."""

from __future__ import annotations

import importlib
import logging

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from scimeta import registry
from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.errors import ConfigError
from scimeta.meta import MAML, MAMLPlusPlus, MetaSGD, TaskBatch
from scimeta.params import overlap
from scimeta.runtime.config import from_dict
from scimeta.train import TrainConfig, train
from scimeta.train.adaptation import adapt_curve
from scimeta.train.evaluate import evaluate, format_table, summary_table
from scimeta.train.selection import (
    GRIDS,
    bootstrap_ratio,
    bounds_of,
    pick,
    select_rate,
    split_validation,
)
from scimeta.train.setup import load_init

select_mod = importlib.import_module("scimeta.train.eval_select")  # calls select_rate
D = torch.float64


def _linear_tasks(rng: np.random.Generator, b: int, k: int, scale: float) -> TaskBatch:
    """B linear-regression tasks y = x·w_t + c_t + noise, x ~ scale * N(0, 1) in 3-D."""
    def xs(n):
        return scale * rng.standard_normal((b, n, 3))
    w = rng.standard_normal((b, 1, 3))
    sx, qx = xs(k), xs(2 * k)
    sy = (sx * w).sum(-1, keepdims=True) + 0.3 + 0.1 * rng.standard_normal((b, k, 1))
    qy = (qx * w).sum(-1, keepdims=True) + 0.3 + 0.1 * rng.standard_normal((b, 2 * k, 1))
    return TaskBatch(*(torch.tensor(a, dtype=D) for a in (sx, sy, qx, qy)))


def _linear_learner() -> MAML:
    model = nn.Linear(3, 1).to(D)
    with torch.no_grad():
        model.weight.fill_(0.2)
        model.bias.fill_(-0.1)
    return MAML(model, inner_lr=0.01, inner_steps=1)


def test_selection_picks_the_closed_form_best_rate_of_a_linear_model():
    """One SGD step on a linear model: φ(α) = θ − α g, so each task's query MSE and
    support loss are known in closed form for every α of the grid."""
    learner = _linear_learner()
    batch = _linear_tasks(np.random.default_rng(0), b=9, k=12, scale=3.0)
    grid = GRIDS["sgd"]
    sel = select_rate(learner, learner.init_params(), [batch], "sgd", grid, budget=1)

    theta = np.array([0.2, 0.2, 0.2, -0.1])  # weights, then the bias

    def design(x):
        return np.concatenate([x, np.ones((*x.shape[:-1], 1))], -1)

    sx, sy, qx, qy = (t.numpy() for t in batch[:4])
    meds, fracs = [], []
    for a in grid:
        q, div = [], []
        for t in range(batch.num_tasks):
            xs, xq = design(sx[t]), design(qx[t])
            r0 = xs @ theta - sy[t, :, 0]
            phi = theta - a * 2 / len(r0) * xs.T @ r0
            s1 = np.mean((xs @ phi - sy[t, :, 0]) ** 2)
            q.append(np.mean((xq @ phi - qy[t, :, 0]) ** 2))
            div.append(not s1 <= 10 * np.mean(r0 ** 2))
        q = np.where(div, np.inf, q)
        meds.append(np.median(q))
        fracs.append(np.mean(div))
    meds, fracs = np.array(meds), np.array(fracs)
    expected = grid[int(np.argmin(np.where(fracs <= 0.1, meds, np.inf)))]
    assert sel.rate == expected
    assert 1e-3 < expected < 1.0  # an interior optimum, not an edge of the grid
    np.testing.assert_allclose(sel.median, meds, rtol=1e-10)
    np.testing.assert_array_equal(sel.diverged, fracs)
    assert fracs[-1] == 1.0  # α = 1 is far above 2 / λ_max here: every task diverges


def test_pick_excludes_rates_with_too_many_diverged_tasks():
    mse = np.array([[3.0] * 10, [1.0] * 8 + [np.nan] * 2, [2.0] * 9 + [np.nan]])
    sel = pick([0.01, 0.1, 0.03], mse)  # unsorted grid: sorted inside
    np.testing.assert_array_equal(sel.grid, [0.01, 0.03, 0.1])
    assert sel.rate == 0.03 and sel.eligible  # 0.1 is best but 20% diverged
    np.testing.assert_array_equal(sel.diverged, [0.0, 0.1, 0.2])
    none = pick([0.1, 1.0], np.full((2, 4), np.nan))
    assert not none.eligible and none.rate == 0.1


def test_divergence_above_two_over_lambda_max_is_flagged_not_a_number():
    learner = _linear_learner()
    batch = _linear_tasks(np.random.default_rng(1), b=3, k=8, scale=1.0)
    x = torch.cat([batch.support_x, torch.ones(3, 8, 1, dtype=D)], -1)
    lam = torch.linalg.eigvalsh(2 / 8 * x.transpose(1, 2) @ x)[:, -1]  # Hessian of the MSE
    params = learner.init_params()
    bad = adapt_curve(learner, params, batch, "sgd", 10 * 2 / lam, (0, 1, 5, 20))
    assert not bad.diverged[0].any() and bad.diverged[1:].all()
    assert torch.isfinite(bad.query_mse[0]).all() and torch.isnan(bad.query_mse[1:]).all()
    good = adapt_curve(learner, params, batch, "sgd", 0.5 / lam, (0, 1, 5, 20))
    assert not good.diverged.any() and torch.isfinite(good.query_mse).all()
    assert (good.query_mse[-1] < good.query_mse[0]).all()


def test_learned_meta_sgd_and_maml_pp_rates_are_the_ones_applied():
    torch.manual_seed(0)
    batch = _linear_tasks(np.random.default_rng(2), b=4, k=6, scale=1.0)
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).to(D)
    msgd = MetaSGD(net, inner_lr=0.01, inner_steps=3)
    params = msgd.init_params()
    with torch.no_grad():
        for k, v in params.items():
            if k.startswith("inner_lr."):
                v.copy_(torch.rand_like(v) * 0.2 + 0.05)  # far from inner_lr = 0.01
    c = adapt_curve(msgd, params, batch, "learned", None, (0, 3), keep_params=True)
    for t in range(4):
        phi = msgd.inner_loop(params, batch.support_x[t], batch.support_y[t], steps=3)
        for n in msgd.names:
            torch.testing.assert_close(c.params[n][t], phi[n], rtol=1e-12, atol=1e-12)
        mse = msgd.data_loss(phi, batch.query_x[t], batch.query_y[t]).detach()
        assert abs(float(c.query_mse[1, t]) - float(mse)) < 1e-12
    plain = adapt_curve(msgd, params, batch, "sgd", 0.01, (3,))
    assert not torch.allclose(plain.query_mse, c.query_mse[1:])

    # MAML++: per-step rates for the 2 trained steps, step 1's rates beyond them
    pp = MAMLPlusPlus(net, inner_lr=0.01, inner_steps=2)
    params = pp.init_params()
    with torch.no_grad():
        for k, v in params.items():
            if k.startswith("inner_lr."):
                v.fill_(0.3 if ".step1." in k else 0.02)
    c = adapt_curve(pp, params, batch, "learned", None, (4,), keep_params=True)
    for t in range(4):
        phi = pp.inner_loop(params, batch.support_x[t], batch.support_y[t], steps=2)
        for _ in range(2):
            g = torch.func.grad(pp.support_loss)(phi, batch.support_x[t], batch.support_y[t])
            phi = {n: phi[n] - 0.3 * g[n] for n in pp.names}
        for n in pp.names:
            torch.testing.assert_close(c.params[n][t], phi[n], rtol=1e-12, atol=1e-12)


def test_batched_adam_equals_torch_optim_adam_per_task():
    torch.manual_seed(1)
    batch = _linear_tasks(np.random.default_rng(3), b=3, k=7, scale=1.0)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)).to(D)
    learner = MAML(net, inner_lr=0.01, inner_steps=1)
    batch = batch._replace(support_y=batch.support_y.repeat(1, 1, 2),
                           query_y=batch.query_y.repeat(1, 1, 2))
    rates = torch.tensor([1e-3, 1e-2, 5e-2], dtype=D)
    theta = learner.init_params()
    c = adapt_curve(learner, theta, batch, "adam", rates, (9,), keep_params=True)
    for t in range(3):
        p = {n: v.detach().clone().requires_grad_(True) for n, v in theta.items()}
        opt = torch.optim.Adam(p.values(), lr=float(rates[t]))
        for _ in range(9):
            opt.zero_grad()
            learner.support_loss(p, batch.support_x[t], batch.support_y[t]).backward()
            opt.step()
        for n in learner.names:
            torch.testing.assert_close(c.params[n][t], p[n].detach(), rtol=1e-10, atol=1e-10)


def test_bootstrap_interval_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(5)
    ref = rng.lognormal(0.0, 1.0, 40)
    a = ref * rng.lognormal(-0.5, 0.3, 40)
    point, low, high = bootstrap_ratio(a, ref, n=1000, seed=3)
    assert point == np.median(a) / np.median(ref)
    assert low <= point <= high and low < high
    assert bootstrap_ratio(a, ref, n=1000, seed=3) == (point, low, high)
    assert bootstrap_ratio(a, ref, n=1000, seed=4) != (point, low, high)
    assert bootstrap_ratio(2 * ref, ref, n=200, seed=0) == (2.0, 2.0, 2.0)
    nan = np.where(np.arange(40) < 30, np.nan, a)  # 75% diverged: no finite estimate
    p, lo, hi = bootstrap_ratio(nan, ref)
    assert p == np.inf and np.isnan(lo) and np.isnan(hi)


def test_split_validation_parts_are_disjoint_from_each_other_and_from_train():
    fam = registry.get("oscillator")
    specs = fam.params
    for name in ("unforced-test-extrapolate", "unforced-test-interpolate"):
        val, test = split_validation(fam.regime(name), "omega0")
        assert overlap(specs, val, test) is None
        assert overlap(specs, val, fam.regime("unforced-train")) is None
        assert overlap(specs, test, fam.regime("unforced-train")) is None
    val, test = split_validation(fam.regime("unforced-test-extrapolate"), "omega0", 3.0)
    assert dict((k, (lo, hi)) for k, lo, hi in bounds_of(val))["omega0"] == (2.5, 3.0)
    assert test.box["omega0"] == (3.0, 3.5) and val.name.endswith("-validation")
    with pytest.raises(ConfigError, match=r"param='nu' is not a parameter"):
        split_validation(fam.regime("unforced-train"), "nu")
    with pytest.raises(ConfigError, match=r"at=4.0 is not allowed"):
        split_validation(fam.regime("unforced-test-extrapolate"), "omega0", 4.0)


# ---- end to end on a tiny run ------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("fair")
    fam = registry.get("oscillator")
    val, test = split_validation(fam.regime("unforced-test-extrapolate"), "omega0", 3.0)
    specs = {"train": ("unforced-train", 40, ()),
             "val": ("unforced-test-extrapolate", 8, bounds_of(val)),
             "test": ("unforced-test-extrapolate", 8, bounds_of(test)),
             "other": ("test-interpolate", 8, ())}  # forced, omega0 in train's hole
    for k, (key, (regime, n, bounds)) in enumerate(specs.items()):
        generate(GenerationConfig("oscillator", regime, tasks=n, seed=k, support=6, query=12,
                                  bounds=bounds), d / f"{key}.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(d / "train.h5")}, "model": {"hidden": [8]},
        "meta": {"inner_lr": 0.05, "inner_steps": 2, "meta_batch": 4, "baselines": ["joint"]},
        "optim": {"lr": 1e-2, "iterations": 12},
        "run": {"seed": 3, "checkpoint_every": 100, "validate_every": 100, "log_every": 100}})
    assert train(cfg, d / "run").completed
    return d


def test_rates_are_chosen_on_validation_and_the_test_store_is_not_read_before(run,
                                                                             monkeypatch):
    events = []
    batch, select = TaskReader.batch, select_mod.select_rate

    def spy_batch(self, indices):
        events.append(("batch", self.path.name))
        return batch(self, indices)

    def spy_select(*args, **kwargs):
        events.append(("select", None))
        return select(*args, **kwargs)

    monkeypatch.setattr(TaskReader, "batch", spy_batch)
    monkeypatch.setattr(select_mod, "select_rate", spy_select)
    kw = {"validation": run / "val.h5", "budgets": (0, 5, 10), "bootstrap": 50}
    ds = evaluate(run / "run", run / "test.h5", **kw)
    last_select = max(i for i, e in enumerate(events) if e[0] == "select")
    assert all(e == ("batch", "val.h5") for e in events[:last_select] if e[0] == "batch")
    assert all(e == ("batch", "test.h5") for e in events[last_select:] if e[0] == "batch")
    assert ("batch", "test.h5") in events
    # a test store whose data would choose other rates does not change the choice
    other = evaluate(run / "run", run / "other.h5", write=False, **kw)
    xr.testing.assert_equal(other["chosen_rate"], ds["chosen_rate"])
    by_other = evaluate(run / "run", run / "test.h5", write=False,
                        **{**kw, "validation": run / "other.h5"})
    assert not np.array_equal(by_other["chosen_rate"].values, ds["chosen_rate"].values)

    assert ds["query_mse"].dims == ("init", "optimizer", "budget", "task")
    assert list(ds["init"].values) == ["maml", "joint", "random"]
    assert list(ds["optimizer"].values) == ["sgd", "adam"]
    assert ds.attrs["rates_tuned"] == 1 and ds.attrs["select_budget"] == 10
    rates = ds["chosen_rate"].values
    assert np.isin(rates[:, 0], GRIDS["sgd"]).all() and np.isin(rates[:, 1], GRIDS["adam"]).all()
    for i in range(3):  # the chosen rate has the least validation median among eligible ones
        med = ds["validation_median"].isel(init=i, optimizer=0).values
        ok = ds["validation_diverged_fraction"].isel(init=i, optimizer=0).values <= 0.1
        assert rates[i, 0] == ds["grid_rate"].isel(optimizer=0).values[
            np.argmin(np.where(ok, med, np.inf))]
    assert (ds["seconds_per_task"].values > 0).all()
    path = run / "run" / "evaluation" / "unforced-test-extrapolate.nc"
    assert path.exists() and not list(path.parent.glob("*.tmp*"))
    with xr.open_dataset(path, engine="h5netcdf") as back:
        assert back["diverged"].dtype == bool
        np.testing.assert_array_equal(back["query_mse"].values, ds["query_mse"].values)


def test_validation_must_be_disjoint_from_train_and_test(run):
    for store, what in (("train.h5", "train"), ("test.h5", "test")):
        with pytest.raises(ConfigError, match=f"not disjoint from the {what} store"):
            evaluate(run / "run", run / "test.h5", validation=run / store, write=False,
                     budgets=(0, 1))


def test_untuned_evaluation_says_so_and_keeps_the_old_call(run, caplog):
    with caplog.at_level(logging.WARNING, logger="scimeta.train.evaluate"):
        ds = evaluate(run / "run", run / "test.h5", steps=3, write=False, bootstrap=20)
    assert "rates were NOT tuned" in caplog.text
    assert ds.attrs["rates_tuned"] == 0 and "NOT tuned" in ds.attrs["rate_selection"]
    assert list(ds["budget"].values) == [0, 1, 2, 3]
    np.testing.assert_array_equal(ds["chosen_rate"].sel(optimizer="sgd").values, 0.05)
    # the sgd curve at meta.inner_lr is the run's inner loop, as before
    from scimeta.train.models import build_learner, build_model
    from scimeta.train.run_dir import RunDir
    rd = RunDir(run / "run")
    cfg, info = rd.load_config(), rd.load_info()
    learner = build_learner(cfg, build_model(cfg, 1, 2, info["norm"], 3), None, "maml")
    theta = {k: v for k, v in load_init(rd, "maml").items()}
    curve = learner.adaptation_curve(theta, TaskReader(run / "test.h5").batch(range(8)), 3)
    np.testing.assert_allclose(ds["query_mse"].sel(init="maml", optimizer="sgd").values,
                               curve.numpy(), rtol=1e-5)
    text = format_table(summary_table(ds), "t")
    assert "0.05*" in text and "rate NOT tuned" in text


def test_diverged_cells_print_as_diverged_and_the_layout_holds(run):
    ds = evaluate(run / "run", run / "test.h5", validation=run / "val.h5", label="div",
                  budgets=(0, 3), grids={"sgd": (1e3,)}, optimizers=("sgd", "learned"),
                  bootstrap=20)
    assert ds["diverged"].sel(optimizer="sgd", budget=3).all()
    assert np.isnan(ds["query_mse"].sel(optimizer="sgd", budget=3)).all()
    assert (ds["n_diverged"].sel(optimizer="sgd", budget=3) == 8).all()
    assert np.isposinf(ds["median_mse"].sel(optimizer="sgd", budget=3)).all()
    assert (run / "run" / "evaluation" / "div.png").exists()
    text = format_table(summary_table(ds), "title")
    lines = text.splitlines()[1:]
    assert sum("diverged (8/8)" in ln for ln in lines) == 3
    assert len({len(ln) for ln in lines}) == 1  # every row as wide as the header
    starts = [ln.index("MSE@0") for ln in lines[:1]]
    assert all(ln[starts[0] - 2:starts[0]] == "  " for ln in lines)


def test_bad_requests_are_refused_before_any_adaptation(run, tmp_path):
    from scimeta.errors import RunError

    store = run / "test.h5"
    with pytest.raises(ConfigError, match=r"label '\.\./x' cannot be used as a file name"):
        evaluate(run / "run", store, label="../x", steps=1)
    with pytest.raises(ConfigError, match="max_tasks=0 is not allowed"):
        evaluate(run / "run", store, max_tasks=0, steps=1)
    with pytest.raises(ConfigError, match="steps=100000000 would record"):
        evaluate(run / "run", store, steps=100_000_000)
    # an unfinished run: a baseline's init is missing
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(run / "run", partial, ignore=shutil.ignore_patterns("evaluation"))
    (partial / "inits" / "joint.pt").unlink()
    with pytest.raises(RunError, match="unfinished: no trained init joint"):
        evaluate(partial, store, steps=1)
    assert not (partial / "evaluation").exists()
