"""Run-level posteriors: `scimeta posterior`, `scimeta adapt --uncertainty`, calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from scimeta.bayes import fit_laplace, metrics, posterior
from scimeta.bayes._hyper import fit_hyper
from scimeta.cli import main
from scimeta.data import GenerationConfig, generate
from scimeta.errors import ConfigError
from scimeta.runtime.config import from_dict
from scimeta.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bayes_run")
    generate(GenerationConfig("oscillator", "unforced-train", tasks=8, support=6, query=12),
             d / "train.h5")
    generate(GenerationConfig("oscillator", "unforced-test-interpolate", tasks=5, seed=1,
                              support=10, query=15), d / "test.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(d / "train.h5")},
        "model": {"hidden": [8]},
        "meta": {"inner_lr": 0.05, "inner_steps": 2, "meta_batch": 4, "baselines": []},
        "optim": {"lr": 1e-2, "iterations": 2},
        "run": {"seed": 3, "checkpoint_every": 5, "validate_every": 5, "log_every": 5},
    })
    train(cfg, d / "run")
    (d / "obs.csv").write_text("t,x,v\n0,0.5,0.0\n1,0.2,-0.4\n2,-0.1,-0.3\n3,,0.1\n")
    return d


def test_posterior_dataset_and_files(run, capsys):
    assert main(["posterior", str(run / "run"), "--data", str(run / "test.h5"),
                 "--max-tasks", "3", "--structure", "diag"]) == 0
    out = capsys.readouterr().out
    assert "coverage 50%" in out and "NLL" in out
    path = run / "run" / "posterior" / "unforced-test-interpolate.nc"
    assert path.exists() and path.with_suffix(".png").exists()
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        for name in ("pred_mean", "pred_std", "query_y"):
            assert ds[name].dims == ("task", "point", "channel")
            assert ds[name].shape == (3, 15, 2)
        assert ds["coverage"].dims == ("level", "task") and ds["coverage"].shape == (4, 3)
        for name in ("nll", "crps", "prior_precision", "base_nll", "base_crps"):
            assert ds[name].dims == ("task",)
        assert ds["noise_std"].dims == ("channel",) and bool((ds["noise_std"] > 0).all())
        assert bool((ds["pred_std"] >= ds["pred_std_f"]).all())
        assert ds.attrs["structure"] == "diag"


def test_posterior_kron_in_python(run):
    ds = posterior(run / "run", run / "test.h5", max_tasks=2, write=False, label="k")
    assert ds.sizes["task"] == 2 and np.isfinite(ds["nll"]).all()
    assert bool((ds["pred_std"] > 0).all())
    # hyperparameters from a validation store: σ fitted there, one τ for every task
    val = posterior(run / "run", run / "test.h5", max_tasks=2, write=False,
                    validation=run / "train.h5")
    assert "validation store" in val.attrs["hyperparameters"]
    assert float(val["prior_precision"].std()) == 0.0
    assert not np.allclose(val["noise_std"], ds["noise_std"])


@pytest.mark.parametrize("validation", [False, True])
def test_batched_kron_posterior_equals_the_per_task_loop(run, validation):
    kw = {"max_tasks": 3, "write": False,
          "validation": run / "train.h5" if validation else None}
    fast = posterior(run / "run", run / "test.h5", **kw)
    slow = posterior(run / "run", run / "test.h5", batched=False, **kw)
    for name in ("pred_mean", "pred_std", "pred_std_f", "noise_std", "prior_precision",
                 "log_evidence", "nll", "crps", "coverage"):
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-8, atol=1e-12,
                                   err_msg=name)


def test_adapt_uncertainty_adds_positive_std(run, capsys):
    out = run / "pred.nc"
    assert main(["adapt", str(run / "run"), "--support", str(run / "obs.csv"), "--steps", "2",
                 "--out", str(out), "--uncertainty"]) == 0
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds["pred_std"].dims == ("point", "channel")
        assert ds["pred_std"].shape == ds["prediction"].shape
        assert bool((ds["pred_std"] > 0).all()) and np.isfinite(ds["pred_std"]).all()


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("scimeta: error: ") and err.count("\n") == 1, err
    return err


def test_bad_inputs_one_line(run, capsys, monkeypatch):
    base = ["posterior", str(run / "run"), "--data", str(run / "test.h5")]
    assert main([*base, "--structure", "blocky"]) == 2
    err = _err(capsys)
    assert "--structure='blocky' is not allowed" in err
    assert "full, diag, kron, last-layer, hessian" in err
    assert main([*base, "--max-tasks", "0"]) == 2
    assert "--max-tasks=0 is not allowed; it must be an int >= 1" in _err(capsys)
    assert main([*base, "--init", "fomaml"]) == 2
    err = _err(capsys)
    assert "no trained init 'fomaml'" in err and "trained inits: maml" in err

    import scimeta.train.models as models

    build = models.build_model

    def twice(*a, **k):  # the last Linear layer is called a second time: K-FAC cannot
        model = build(*a, **k)
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        model.register_forward_hook(
            lambda m, i, o: o + 0.0 * last(torch.zeros(1, last.in_features, dtype=o.dtype)))
        return model

    monkeypatch.setattr(models, "build_model", twice)
    assert main([*base, "--max-tasks", "1"]) == 2
    assert "called more than once per forward pass" in _err(capsys)


def test_max_tasks_message(run):
    with pytest.raises(ConfigError, match=r"max_tasks=0 is not allowed; it must be an int >= 1"):
        posterior(run / "run", run / "test.h5", max_tasks=0, write=False)


def test_linear_gaussian_coverage_is_nominal():
    """Exact model, prior and noise: the 90 % interval covers 90 % of new observations."""
    g = torch.Generator().manual_seed(0)
    d, n, q, tasks, tau, sigma = 3, 10, 8, 200, 2.0, 0.3
    model = nn.Linear(d, 1, bias=False).double()
    theta = {"weight": torch.zeros(1, d, dtype=torch.float64)}
    hits, posts, ys, xq = [], [], [], []
    for _ in range(tasks):
        w = torch.randn(1, d, generator=g, dtype=torch.float64) / math.sqrt(tau)
        x = torch.randn(n + q, d, generator=g, dtype=torch.float64)
        y = x @ w.T + sigma * torch.randn(n + q, 1, generator=g, dtype=torch.float64)
        A = x[:n].T @ x[:n] / sigma ** 2 + tau * torch.eye(d, dtype=torch.float64)
        mode = torch.linalg.solve(A, x[:n].T @ y[:n] / sigma ** 2).T  # the exact MAP
        post = fit_laplace(model, {"weight": mode}, x[:n], y[:n], prior_mean=theta,
                           structure="full", prior_precision=tau, noise_std=[sigma])
        pred = post.predict(x[n:])
        hits.append(metrics.interval_hits(y[n:], pred.mean, pred.var_y, 0.9))
        posts.append(post)
        ys.append(y[n:])
        xq.append(x[n:])
    rate = float(torch.cat(hits).double().mean())
    se = math.sqrt(0.9 * 0.1 / (tasks * q))
    assert abs(rate - 0.9) < 4 * se, (rate, se)
    # the shared-noise evidence fit recovers σ (and keeps the coverage nominal)
    s2, _ = fit_hyper(posts)
    assert abs(float(s2.sqrt()) / sigma - 1) < 0.1


def test_kron_predictive_equals_dense():
    """The K-FAC fast path (g ⊗ ā per point) equals J Σ Jᵀ with the dense covariance."""
    from scimeta.bayes._curvature import model_fn

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(),
                      nn.Linear(4, 3)).double()
    params = {k: v.detach() for k, v in m.named_parameters()}
    x, y = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    post = fit_laplace(m, params, x, y, structure="kron", prior_precision=0.7,
                       noise_std=[0.3, 0.5, 1.1])
    xq = torch.randn(11, 2, dtype=torch.float64)
    fast = post.predict(xq, chunk_size=4)
    J = torch.func.jacrev(lambda v: model_fn(m, post.fixed, post.flat)(v, xq))(post.mean)
    ref = torch.einsum("ncp,pq,ncq->nc", J, post.covariance(), J)
    torch.testing.assert_close(fast.var_f, ref, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(fast.var_y, ref + post.noise_var, rtol=1e-10, atol=1e-14)


def test_diag_predictive_equals_rows():
    """The diagonal fast path equals J Σ Jᵀ with Σ = diag(1/precision)."""
    from scimeta.bayes._curvature import model_fn

    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    params = {k: v.detach() for k, v in m.named_parameters()}
    x, y = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    post = fit_laplace(m, params, x, y, structure="diag", prior_precision=0.5,
                       noise_std=[0.2, 0.4])
    xq = torch.randn(9, 2, dtype=torch.float64)
    J = torch.func.jacrev(lambda v: model_fn(m, post.fixed, post.flat)(v, xq))(post.mean)
    ref = torch.einsum("ncp,pq,ncq->nc", J, post.covariance(), J)
    torch.testing.assert_close(post.predict(xq, chunk_size=4).var_f, ref, rtol=1e-10,
                               atol=1e-14)
