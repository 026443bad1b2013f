"""System-identification reference: exact recovery on noise-free data, NaN, PDE, evaluate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scimeta import registry
from scimeta.data import GenerationConfig, generate
from scimeta.errors import ConfigError
from scimeta.meta import TaskBatch
from scimeta.runtime.config import from_dict
from scimeta.train import TrainConfig, train
from scimeta.train.evaluate import evaluate, format_table, summary_table
from scimeta.train.sysid import fit_system, predict_system, sysid_query_mse

P_TRUE = np.array([1.1, 0.1, 0.5, 1.3])  # omega0, zeta, F, Omega: forced, all identifiable
Y0_TRUE = np.array([0.3, -0.4])


@pytest.fixture(scope="module")
def task():
    """A noise-free oscillator task from the family's own solver; K = 10 support times
    that exclude t0, 40 query times."""
    fam = registry.get("oscillator")
    t = fam.time.values()
    y = fam.solve(P_TRUE, Y0_TRUE, t)
    rng = np.random.default_rng(0)
    idx = rng.permutation(np.arange(1, len(t)))
    s, q = np.sort(idx[:10]), np.sort(idx[10:50])
    return fam, t[s], y[s], t[q], y[q]


def test_fit_recovers_parameters_and_initial_state_exactly(task):
    fam, ts, ys, tq, yq = task
    assert ts.min() > fam.time.t0
    fit = fit_system(fam, ts, ys, regime=fam.regime("train"), starts=4, seed=0)
    assert fit.converged
    np.testing.assert_allclose(fit.params, P_TRUE, rtol=1e-6)
    np.testing.assert_allclose(fit.y0, Y0_TRUE, rtol=1e-6)
    assert np.mean((predict_system(fam, fit, tq) - yq) ** 2) <= 1e-10
    assert fit.residual_rms < 1e-6 and fit.seconds > 0


def test_known_parameters_are_held_and_y0_recovered(task):
    fam, ts, ys, tq, yq = task
    fit = fit_system(fam, ts, ys, known_params=P_TRUE)
    np.testing.assert_array_equal(fit.params, P_TRUE)
    np.testing.assert_allclose(fit.y0, Y0_TRUE, rtol=1e-6)
    assert np.mean((predict_system(fam, fit, tq) - yq) ** 2) <= 1e-10


def test_missing_values_are_ignored(task):
    fam, ts, ys, tq, yq = task
    holes = ys.copy()
    holes[2, 0] = holes[5, 1] = np.nan
    holes[7] = np.nan
    fit = fit_system(fam, ts, holes, known_params=P_TRUE)
    np.testing.assert_allclose(fit.y0, Y0_TRUE, rtol=1e-6)
    assert np.isfinite(fit.residual_rms) and fit.residual_rms < 1e-6
    assert np.mean((predict_system(fam, fit, tq) - yq) ** 2) <= 1e-10


def test_batch_mse_and_errors(task):
    fam, ts, ys, tq, yq = task

    def t(a):
        return torch.tensor(np.asarray(a)[None], dtype=torch.float64)

    batch = TaskBatch(t(ts[:, None]), t(ys), t(tq[:, None]), t(yq), None, t(P_TRUE))
    mse, sec, ok = sysid_query_mse(fam, batch, known=True)
    assert mse.shape == sec.shape == ok.shape == (1,)
    assert mse[0] <= 1e-10 and sec[0] > 0 and ok[0]
    with pytest.raises(ConfigError, match=r"family='burgers'.*sysid_pde"):
        fit_system(registry.get("burgers"), ts, ys)
    with pytest.raises(ConfigError, match=r"y_support has shape \(10, 1\)"):
        fit_system(fam, ts, ys[:, :1])
    with pytest.raises(ConfigError, match=r"starts=0 is not allowed"):
        fit_system(fam, ts, ys, starts=0)
    with pytest.raises(ConfigError, match=r"known_params=\[1.0\] is not allowed"):
        fit_system(fam, ts, ys, known_params=[1.0])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sysid")
    for k, (key, regime, n) in enumerate((("train", "unforced-train", 20),
                                          ("test", "unforced-test-extrapolate", 3))):
        generate(GenerationConfig("oscillator", regime, tasks=n, seed=k, support=8, query=12),
                 d / f"{key}.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(d / "train.h5")}, "model": {"hidden": [8]},
        "meta": {"inner_lr": 0.05, "inner_steps": 1, "meta_batch": 4},
        "optim": {"lr": 1e-2, "iterations": 4},
        "run": {"seed": 3, "checkpoint_every": 100, "validate_every": 100, "log_every": 100}})
    assert train(cfg, d / "run").completed
    return d


def test_evaluate_adds_the_reference_variables_and_row(run):
    kw = {"budgets": (0, 5), "bootstrap": 20, "write": False, "optimizers": ("sgd",)}
    plain = evaluate(run / "run", run / "test.h5", **kw)
    assert "sysid_mse" not in plain
    assert all(r["init"] != "sysid (reference)" for r in summary_table(plain))
    ds = evaluate(run / "run", run / "test.h5", reference="sysid-known", **kw)
    for name in ("sysid_mse", "sysid_seconds", "sysid_converged"):
        assert ds[name].dims == ("task",) and ds.sizes["task"] == 3
    assert np.all(ds["sysid_mse"].values < 1e-6) and np.all(ds["sysid_seconds"].values > 0)
    assert ds.attrs["reference"] == "sysid-known"
    rows = summary_table(ds)
    ref = rows[-1]
    assert ref["init"] == "sysid (reference)" and ref["reference"]
    assert ref["ratio_to_random"] < 1e-3
    text = format_table(rows)
    assert "sysid (reference)" in text and "a reference, not a competitor" in text
    fitted = evaluate(run / "run", run / "test.h5", reference="sysid", **kw)
    assert fitted.attrs["reference"] == "sysid" and fitted["sysid_mse"].sizes["task"] == 3
    assert np.all(np.isfinite(fitted["sysid_mse"].values))
    assert "parameters fitted" in format_table(summary_table(fitted))
    with pytest.raises(ConfigError, match=r"reference='fit' is not allowed"):
        evaluate(run / "run", run / "test.h5", reference="fit", **kw)
