"""The meta-landscape (scimeta.landscape) and the meta-overfitting diagnostics.

Exact answers (float64, ORACLES.md): on quadratic tasks with a shared Hessian H
(linear model, MSE, every task's support and query inputs equal) the meta-Hessian
is (I − αH)^K H (I − αH)^K, eigenvalues λ(1 − αλ)^{2K}; the support loss of a
linear least-squares task has Hessian 2X̃ᵀX̃/K (X̃ with a column of ones for the
bias), so its largest stable rate is 2/λ_max of that. Rademacher Hutchinson is
exact on a diagonal matrix; SLQ weights sum to 1 per probe. Tolerances: closed
forms 1e-10, Lanczos 1e-8 (quadratic) and 1e-6 (tiny MLP) relative, finite
differences 1e-6.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from scimeta import problems
from scimeta.errors import ConfigError, RunError
from scimeta.landscape import (
    MetaHessian,
    eigenpairs,
    gradient_coherence,
    hutchinson,
    inner_top_eigenvalues,
    layer_shares,
    loss_slices,
    slq,
    stable_inner_rates,
    support_swap,
)
from scimeta.meta import MAML, PhysicsLoss, TaskBatch, get_learner
from scimeta.nn import CoordinateMLP
from scimeta.runtime.names import safe_name

DT = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def flat_params(h: MetaHessian) -> torch.Tensor:
    return h.flat.flatten(h.theta)


# ---- quadratic tasks: the closed form ------------------------------------------
def shared_quadratic(d=40, k=60, n_tasks=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k, d, generator=g, dtype=DT) * torch.linspace(0.3, 1.5, d, dtype=DT)
    w_star = torch.randn(n_tasks, d, generator=g, dtype=DT)
    xs = x.expand(n_tasks, k, d).clone()
    y = xs @ w_star[..., None]
    return TaskBatch(xs, y, xs.clone(), y.clone()), 2 * x.T @ x / k


def test_meta_hessian_equals_closed_form_on_quadratic_tasks():
    batch, h = shared_quadratic()
    lam = torch.linalg.eigvalsh(h)
    alpha, steps = 0.9 / float(lam[-1]), 3
    torch.manual_seed(0)
    maml = MAML(nn.Linear(40, 1, bias=False).to(DT), inner_lr=alpha, inner_steps=steps)
    hess = MetaHessian(maml, maml.init_params(), batch)
    a = torch.eye(40, dtype=DT) - alpha * h
    ak = torch.linalg.matrix_power(a, steps)
    closed = ak @ h @ ak
    assert torch.allclose(hess.dense(), closed, rtol=0, atol=1e-10 * float(closed.abs().max()))
    exact = np.sort((lam * (1 - alpha * lam) ** (2 * steps)).numpy())[::-1]
    top = eigenpairs(hess, 4, "top", method="lanczos", tol=1e-12)
    assert top.method == "lanczos"
    np.testing.assert_allclose(top.values, exact[:4], rtol=1e-8)
    assert np.all(top.residuals <= 1e-8 * exact[0])
    bottom = eigenpairs(hess, 2, "bottom", method="lanczos", tol=1e-12)
    np.testing.assert_allclose(bottom.values, exact[::-1][:2], rtol=1e-8, atol=1e-12 * exact[0])


# ---- a tiny MLP: against a dense Hessian from autograd --------------------------
def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(),
                         nn.Linear(5, 2)).to(DT)


def mlp_batch(n_tasks=4, k=6, q=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = lambda n: torch.rand(n_tasks, n, 1, generator=g, dtype=DT) * 2 - 1  # noqa: E731
    y = lambda n: torch.randn(n_tasks, n, 2, generator=g, dtype=DT)  # noqa: E731
    return TaskBatch(x(k), y(k), x(q), y(q))


def dense_meta_hessian(learner, params, batch, hess: MetaHessian) -> torch.Tensor:
    flat = hess.flat
    rest = {k: v.detach() for k, v in params.items() if k not in flat.names}

    def f(vec):
        return learner.meta_loss({**rest, **flat.unflatten(vec)}, batch)

    return torch.autograd.functional.hessian(f, flat_params(hess))


@pytest.mark.parametrize("name", ["maml", "fomaml", "metasgd", "anil", "mamlpp", "joint"])
def test_lanczos_matches_dense_meta_hessian(name):
    learner = get_learner(name).build(mlp(), inner_lr=0.3, inner_steps=2)
    params = learner.init_params()
    batch = mlp_batch()
    hess = MetaHessian(learner, params, batch)
    dense = dense_meta_hessian(learner, params, batch, hess)
    assert torch.allclose(dense, dense.T, atol=1e-12)
    w, u = np.linalg.eigh(dense.numpy())
    scale = np.abs(w).max()
    for which, ref, ref_u in (("top", w[::-1][:3], u[:, ::-1][:, :3]), ("bottom", w[:3], u[:, :3])):
        got = eigenpairs(hess, 3, which, method="lanczos", tol=1e-12)
        np.testing.assert_allclose(got.values, ref, rtol=0, atol=1e-6 * scale)
        assert np.all(got.residuals <= 1e-6 * scale)
        overlap = np.abs(np.sum(got.vectors * ref_u, 0))
        np.testing.assert_allclose(overlap, 1.0, atol=1e-6)
    v = torch.randn(hess.dim, dtype=DT, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(hess.matvec(v), dense @ v, rtol=0, atol=1e-12 * float(dense.abs().max()))


def oscillator_batch(n_tasks=3, k=5, q=6, c=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = lambda n: 2.0 * torch.rand(n_tasks, n, 1, generator=g, dtype=DT)  # noqa: E731
    p = torch.rand(n_tasks, 4, generator=g, dtype=DT) * torch.tensor([2.0, 0.3, 1.0, 2.0],
                                                                      dtype=DT) + 0.2
    return TaskBatch(t(k), torch.randn(n_tasks, k, 2, generator=g, dtype=DT),
                     t(q), torch.randn(n_tasks, q, 2, generator=g, dtype=DT), t(c), p)


@pytest.mark.parametrize("where", [None, "inner", "both"])
def test_hvp_equals_finite_difference_of_meta_gradients(where):
    physics = None if where is None else PhysicsLoss(problems.get("oscillator"), 0.5, where)
    torch.manual_seed(0)
    model = CoordinateMLP(1, 2, hidden=(5, 5), activation="tanh").to(DT)
    maml = MAML(model, inner_lr=0.1, inner_steps=2, physics=physics)
    batch = oscillator_batch()
    params = maml.init_params()
    hess = MetaHessian(maml, params, batch)
    v = torch.randn(hess.dim, dtype=DT, generator=torch.Generator().manual_seed(2))
    v = v / v.norm()
    eps = 1e-5

    def meta_grad(vec):
        leaves = {n: t.requires_grad_(True) for n, t in hess.flat.unflatten(vec.clone()).items()}
        loss = maml.meta_loss({**params, **leaves}, batch)
        return hess.flat.flatten(dict(zip(leaves, torch.autograd.grad(loss, list(
            leaves.values())), strict=True)))

    theta = flat_params(hess)
    fd = (meta_grad(theta + eps * v) - meta_grad(theta - eps * v)) / (2 * eps)
    hv = hess.matvec(v)
    assert float((hv - fd).norm() / fd.norm()) <= 1e-6
    assert torch.allclose(hess.gradient, meta_grad(theta), rtol=1e-12, atol=1e-14)


def test_fast_and_vmap_paths_give_the_same_products():
    batch = mlp_batch()
    fast = MAML(mlp(), inner_lr=0.3, inner_steps=3, fast=True)
    slow = MAML(mlp(), inner_lr=0.3, inner_steps=3, fast=False)
    params = fast.init_params()
    a = MetaHessian(fast, params, batch)
    b = MetaHessian(slow, params, batch)
    c = MetaHessian(fast, params, batch, path="vmap")
    assert a.path == "auto" and c.path == "vmap"
    v = torch.randn(a.dim, dtype=DT, generator=torch.Generator().manual_seed(3))
    ref = a.matvec(v)
    for other in (b, c):
        assert float((other.matvec(v) - ref).norm() / ref.norm()) <= 1e-12
    assert abs(a.loss - c.loss) <= 1e-14 * abs(a.loss)


class _OnceIdentity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        return g


class OnceMAML(MAML):
    """A meta_loss that can be differentiated twice but not three times."""

    def meta_loss(self, params, batch):
        return super().meta_loss({k: _OnceIdentity.apply(v) for k, v in params.items()}, batch)


def test_falls_back_to_vmap_when_meta_loss_has_no_third_derivative(caplog):
    batch = mlp_batch()
    once = OnceMAML(mlp(), inner_lr=0.3, inner_steps=2)
    plain = MAML(mlp(), inner_lr=0.3, inner_steps=2)
    params = plain.init_params()
    with caplog.at_level(logging.WARNING, logger="scimeta.landscape"):
        hess = MetaHessian(once, params, batch)
    assert hess.path == "vmap" and "cannot be differentiated a third time" in caplog.text
    v = torch.randn(hess.dim, dtype=DT, generator=torch.Generator().manual_seed(4))
    ref = MetaHessian(plain, params, batch).matvec(v)
    assert float((hess.matvec(v) - ref).norm() / ref.norm()) <= 1e-12


# ---- estimators on known matrices ---------------------------------------------
def test_hutchinson_is_exact_on_a_diagonal_operator():
    d = np.random.default_rng(0).normal(size=50)
    est = hutchinson(np.diag(d), probes=7, seed=3)
    assert abs(est.value - d.sum()) <= 1e-12 * np.abs(d).sum()
    assert est.stderr <= 1e-12 and est.samples.shape == (7,)
    a = np.random.default_rng(1).normal(size=(30, 30))
    sym = a + a.T
    many = hutchinson(sym, probes=400, seed=0)
    assert abs(many.value - np.trace(sym)) <= 4 * many.stderr


def test_slq_weights_sum_to_one_and_match_the_spectrum():
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    lam = np.linspace(-1.0, 5.0, 40)
    sym = (q * lam) @ q.T
    dens = slq(sym, probes=4, steps=15, seed=5)
    np.testing.assert_allclose(dens.weights.sum(1), 1.0, rtol=0, atol=1e-12)
    assert dens.nodes.shape == (4, 15)
    grid = dens.grid(2000)
    assert abs(np.trapezoid(dens.density(grid), grid) - 1.0) <= 1e-3
    # n Σ w θ = zᵀHz: the SLQ trace is the Hutchinson estimate with the same probes
    assert abs(dens.trace() - hutchinson(sym, probes=4, seed=5).value) <= 1e-9
    full = slq(sym, probes=1, steps=40, seed=0)  # m = n: the exact spectrum
    np.testing.assert_allclose(np.sort(full.nodes[0]), lam, atol=1e-9)


def test_layer_shares_and_slices():
    learner = MAML(mlp(), inner_lr=0.3, inner_steps=1)
    hess = MetaHessian(learner, learner.init_params(), mlp_batch())
    top = eigenpairs(hess, 2, "top")
    layers, shares = layer_shares(hess, top.vectors)
    assert layers == ["0", "2", "4"]
    np.testing.assert_allclose(shares.sum(1), 1.0, atol=1e-12)
    e = np.zeros((hess.dim, 1))
    e[hess.flat.slice("2.bias").start] = 1.0
    assert layer_shares(hess, e)[1][0].tolist() == [0.0, 1.0, 0.0]
    radii = np.array([-1e-3, 0.0, 1e-3])
    sl = loss_slices(hess, top.vectors[:, :1], radii)
    assert abs(sl[0, 1] - hess.loss) <= 1e-14
    # second difference along an eigenvector: its eigenvalue
    curv = (sl[0, 0] - 2 * sl[0, 1] + sl[0, 2]) / 1e-6
    assert abs(curv - top.values[0]) <= 1e-4 * abs(top.values[0])


# ---- stable inner rates ----------------------------------------------------------
def test_stable_rate_matches_least_squares_closed_form(caplog):
    g = torch.Generator().manual_seed(0)
    n_tasks, k, d = 5, 12, 4
    scales = torch.tensor([0.5, 1.0, 1.5, 2.0, 3.0], dtype=DT)[:, None, None]
    xs = torch.randn(n_tasks, k, d, generator=g, dtype=DT) * scales
    ys = torch.randn(n_tasks, k, 1, generator=g, dtype=DT)
    batch = TaskBatch(xs, ys, xs, ys)
    torch.manual_seed(0)
    maml = MAML(nn.Linear(d, 1).to(DT), inner_lr=0.1, inner_steps=1)
    xt = torch.cat([xs, torch.ones(n_tasks, k, 1, dtype=DT)], -1)
    exact = torch.linalg.eigvalsh(2 * xt.mT @ xt / k)[:, -1].numpy()
    lam = inner_top_eigenvalues(maml, maml.init_params(), batch)
    np.testing.assert_allclose(lam, exact, rtol=1e-10)
    with caplog.at_level(logging.WARNING, logger="scimeta.landscape"):
        rates = stable_inner_rates(maml, maml.init_params(), batch, label="toy")
    np.testing.assert_allclose(rates.rate, 2 / exact, rtol=1e-10)
    n_bad = int((0.1 > 2 / exact).sum())
    assert 0 < n_bad < n_tasks and rates.share_unstable == n_bad / n_tasks
    assert f"for {n_bad} of {n_tasks} tasks of toy" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scimeta.landscape"):
        stable_inner_rates(maml, maml.init_params(), batch, warn_share=0.99)
    assert "exceeds" not in caplog.text


# ---- memorising versus learning to adapt --------------------------------------------
class Amplitude(nn.Module):
    """y = (w + u·c) sin t for inputs (t, c): c is a task-identity column."""

    def __init__(self, w: float, u: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w], dtype=DT))
        self.u = nn.Parameter(torch.tensor([u], dtype=DT))

    def forward(self, x):
        return ((self.w + self.u * x[:, 1:2]) * torch.sin(x[:, :1]))


def amplitude_tasks(readable: bool, n_tasks=8, k=10, q=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    amp = torch.linspace(1.0, 3.0, n_tasks, dtype=DT)[:, None, None]
    t = lambda n: torch.rand(n_tasks, n, 1, generator=g, dtype=DT) * 6  # noqa: E731
    ts, tq = t(k), t(q)
    ident = amp if readable else torch.zeros_like(amp)
    xs = torch.cat([ts, ident.expand(-1, k, 1)], -1)
    xq = torch.cat([tq, ident.expand(-1, q, 1)], -1)
    noise = 0.05 * torch.randn(n_tasks, q, 1, generator=g, dtype=DT)
    return TaskBatch(xs, amp * torch.sin(ts), xq, amp * torch.sin(tq) + noise)


def test_support_swap_flags_a_memorising_learner_and_not_a_proper_one():
    # memorised: the network reads the amplitude from the inputs (u = 1) and the
    # inner loop has nothing left to do, whoever's support set it sees
    mem = MAML(Amplitude(0.0, 1.0), inner_lr=1.0, inner_steps=3)
    swap_mem = support_swap(mem, mem.init_params(), amplitude_tasks(readable=True))
    assert swap_mem.flagged and abs(swap_mem.ratio - 1.0) < 1e-9
    # proper: the amplitude is only in the support data; the inner loop finds it
    ok = MAML(Amplitude(2.0, 0.0), inner_lr=1.0, inner_steps=3)
    batch = amplitude_tasks(readable=False)
    swap_ok = support_swap(ok, ok.init_params(), batch)
    assert not swap_ok.flagged and swap_ok.ratio > 10
    coh = gradient_coherence(ok, ok.init_params(), batch)
    assert -1.0 <= coh <= 1.0


def test_gradient_coherence_of_identical_tasks_is_one():
    b = mlp_batch(n_tasks=1)
    same = TaskBatch(*(t.expand(3, *t.shape[1:]) for t in b[:4]))
    learner = MAML(mlp(), inner_lr=0.2, inner_steps=2)
    assert abs(gradient_coherence(learner, learner.init_params(), same) - 1.0) <= 1e-12


# ---- bad input ---------------------------------------------------------------------
def test_bad_input_gives_clear_errors():
    learner = MAML(mlp(), inner_lr=0.3, inner_steps=1)
    hess = MetaHessian(learner, learner.init_params(), mlp_batch())
    with pytest.raises(ConfigError, match=rf"k={hess.dim + 1} is not allowed.*\[1, {hess.dim}\]"):
        eigenpairs(hess, hess.dim + 1)
    with pytest.raises(ConfigError, match="which='middle'"):
        eigenpairs(hess, 2, "middle")
    reptile = get_learner("reptile").build(mlp(), inner_lr=0.1, inner_steps=1)
    with pytest.raises(ConfigError, match="no differentiable meta-objective"):
        MetaHessian(reptile, reptile.init_params(), mlp_batch())
    with pytest.raises(ConfigError, match="names="):
        MetaHessian(learner, learner.init_params(), mlp_batch(), names=["nope"])
    for bad in ("../x", "a/b", "..", ".hidden", "", "a\\b"):
        with pytest.raises(ConfigError, match="cannot be used as a file name"):
            safe_name(bad, "label")
    assert safe_name("unforced-test-extrapolate", "label") == "unforced-test-extrapolate"


def test_non_finite_products_name_the_task():
    batch = mlp_batch()
    big = batch.support_x.clone()
    big[2] *= 1e80
    batch = batch._replace(support_x=big)
    torch.manual_seed(0)
    learner = MAML(nn.Sequential(nn.Linear(1, 2)).to(DT), inner_lr=1.0, inner_steps=3)
    with pytest.raises(RunError, match=r"task 12 \(batch index 2\)"):
        MetaHessian(learner, learner.init_params(), batch, task_ids=[10, 11, 12, 13])


# ---- a tiny run end to end: Python and the command line ------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from scimeta.data import GenerationConfig, generate
    from scimeta.runtime.config import from_dict
    from scimeta.train import TrainConfig, train

    root = tmp_path_factory.mktemp("landscape")
    stores = {}
    for k, regime in enumerate(("unforced-train", "unforced-test-extrapolate")):
        stores[regime] = root / f"{regime}.h5"
        generate(GenerationConfig("oscillator", regime, tasks=8, seed=k, support=6, query=10),
                 stores[regime])
    stores["other"] = root / "lv.h5"
    generate(GenerationConfig("lotka_volterra", "train", tasks=3, seed=0, support=4, query=4),
             stores["other"])

    def config(**run):
        return from_dict(TrainConfig, {
            "data": {"train": str(stores["unforced-train"])}, "model": {"hidden": [6]},
            "meta": {"inner_lr": 0.02, "inner_steps": 2, "meta_batch": 4,
                     "baselines": ["joint"]},
            "optim": {"lr": 1e-2, "iterations": 6},
            "run": {"seed": 1, "checkpoint_every": 3, "validate_every": 3, "log_every": 3,
                    "dtype": "float64", **run}})

    train(config(snapshot_every=3), root / "run")
    train(config(), root / "plain")
    return root, stores


def test_cli_landscape_and_diagnose_end_to_end(tiny_run, capsys):
    import xarray as xr

    from scimeta.cli import main

    root, stores = tiny_run
    run = root / "run"
    held = str(stores["unforced-test-extrapolate"])
    assert main(["landscape", str(run), "--data", held, "--k", "3", "--max-tasks", "4",
                 "--probes", "4", "--slq-probes", "2", "--slq-steps", "8"]) == 0
    out = capsys.readouterr().out
    assert "top eigenvalues:" in out and "stable inner rate" in out
    path = run / "landscape" / "unforced-test-extrapolate.nc"
    assert path.exists() and path.with_suffix(".png").exists()
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["eigenvalue"].shape == (2, 3) and ds.sizes["task"] == 4
        assert bool((ds["residual"] <= 1e-6 * abs(ds["eigenvalue"]).max()).all())
        assert ds["eigenvalue"].sel(end="top").values[0] >= ds["eigenvalue"].sel(
            end="bottom").values[0]
        np.testing.assert_allclose(ds["layer_share"].sum("layer"), 1.0, atol=1e-12)
        assert list(ds["layer"].values) == ["net.0", "net.2"]
        assert np.isfinite(ds["stable_rate"]).all() and ds.attrs["hvp_path"] == "auto"

    assert main(["diagnose", str(run), "--data", held, "--max-tasks", "4"]) == 0
    out = capsys.readouterr().out
    assert "Recommended stopping iteration:" in out and "| unforced-train | train |" in out
    with xr.open_dataset(run / "diagnose" / "maml.nc", engine="h5netcdf") as ds:
        assert list(ds["iteration"].values) == [0, 3, 6]
        assert list(ds["regime"].values) == ["unforced-train", "unforced-test-extrapolate"]
        assert ds.attrs["recommended_stop"] in (0, 3, 6)
        assert np.isfinite(ds["coherence"]).all() and np.isfinite(ds["gap"][:, 1]).all()
    assert (run / "diagnose" / "maml.md").exists() and (run / "diagnose" / "maml.png").exists()


def test_cli_bad_input_is_one_line(tiny_run, capsys):
    from scimeta.cli import main

    root, stores = tiny_run
    held = str(stores["unforced-test-extrapolate"])
    assert main(["diagnose", str(root / "plain"), "--data", held]) == 2
    assert "run.snapshot_every" in capsys.readouterr().err
    assert main(["landscape", str(root / "run"), "--data", str(stores["other"])]) == 2
    assert "family 'lotka_volterra'" in capsys.readouterr().err
    assert main(["landscape", str(root / "run"), "--data", held, "--k", "100000"]) == 2
    err = capsys.readouterr().err
    assert "--k=100000 is not allowed" in err and err.count("\n") == 1
    assert main(["landscape", str(root / "run"), "--data", held, "--learner", "reptile"]) == 2
    assert "no differentiable meta-objective" in capsys.readouterr().err
