"""bench/meta_pinn.py --smoke runs the meta-learned-PINN protocol end to end for Burgers
and Allen-Cahn (a pipeline check at tiny sizes, not the numbers; ~15 s each on one
core), the IC/BC targets it fits are the families' reference solutions at t = 0 and at
the boundary, and the maths of its helpers (scimeta.train.pinn, .pinn_periodic) is
exact."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from scimeta.batch import TaskBatch
from scimeta.meta import MAML, PhysicsLoss
from scimeta.train.adaptation import adapt_curve
from scimeta.train.pinn import (
    adapt_pinn,
    ic_bc_support,
    minus_sine,
    pinn_batch,
    relative_l2,
    steps_to_threshold,
    uniform_collocation,
)

ROOT = Path(__file__).resolve().parents[1]


def _smoke(tmp_path: Path, out: str, *extra: str) -> subprocess.CompletedProcess:
    """``bench/meta_pinn.py --smoke --out tmp_path/out *extra`` on one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "bench" / "meta_pinn.py"), "--smoke",
                           *extra, "--out", str(tmp_path / out)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_smoke_runs_end_to_end(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    out = _smoke(tmp_path, "out", "--weights", "0.1,1", "--adapt-lrs", "1e-3,1e-2")
    assert out.returncode == 0, out.stderr
    ds = xr.open_dataset(tmp_path / "out" / "meta_pinn.nc")
    assert set(ds["init"].values) == {"maml", "random", "joint", "conditioned"}
    # λ and the Adam rate: the pair with the least median validation error, per init and
    # setting (a diverged validation task counts as infinite)
    val = ds["val_rel_l2"].transpose("init", "setting", "weight", "rate", "val_task").values
    assert val.shape[2:4] == (2, 2)
    med = np.median(np.where(np.isfinite(val), val, np.inf), axis=-1)
    for a, init in enumerate(ds["init"].values):
        for b, setting in enumerate(ds["setting"].values):
            c, d = np.unravel_index(np.argmin(med[a, b]), (2, 2))
            assert float(ds["chosen_weight"].sel(init=init, setting=setting)) == [0.1, 1][c]
            assert float(ds["chosen_rate"].sel(init=init, setting=setting)) == [1e-3, 1e-2][d]
    assert set(ds["setting"].values) == {"zero-data", "10-points"}
    assert set(ds["split"].values) == {"extrapolate", "interpolate"}
    assert list(ds["step"].values) == [0, 5, 10]
    rel = ds["rel_l2"].values
    assert rel.shape == (2, 4, 2, 3, 2)
    assert np.isfinite(rel).all() and (rel > 0).all()
    assert ds["steps_to_1e-2"].shape == (2, 4, 2, 2)
    nu = ds["nu"].sel(split="extrapolate").values
    assert ((nu >= 0.04) & (nu <= 0.07)).all()
    for key in ("command", "seeds", "wall_times", "hardware_platform", "hardware_torch",
                "hardware_cpus"):
        assert key in ds.attrs
    # step 0 of every init is the same for both settings (adaptation has not started)
    np.testing.assert_array_equal(rel[:, :, 0, 0], rel[:, :, 1, 0])
    ds.close()
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| zero-data | maml |" in table and "| 10-points | conditioned |" in table
    assert (tmp_path / "out" / "meta_pinn.png").stat().st_size > 0
    # scimeta report renders the run: the same table rows, the command, a figure
    from scimeta.report import build_report

    md = build_report(tmp_path / "out", out=tmp_path / "doc" / "r.md").read_text()
    assert "## Meta-learned PINN initialisation: burgers (regime `classic`, smoke size)" in md
    assert "| setting | init | λ | Adam rate | @0 |" in table
    rows = [x for x in table.splitlines() if x.startswith(("| zero-data", "| 10-points"))]
    assert len(rows) == 16 and all(r in md.splitlines() for r in rows)
    assert "bench/meta_pinn.py --smoke" in md and "total_s" in md
    png = re.search(r"!\[adaptation curves, burgers\]\((.+?)\)", md)
    assert png is not None and (tmp_path / "doc" / png.group(1)).stat().st_size > 1000


def test_ic_bc_support_is_exact() -> None:
    x, y = ic_bc_support(9, 4, t_end=1.0, dtype=torch.float64)
    assert x.shape == (9 + 8, 2) and y.shape == (17, 1)
    ic = x[:, 0] == 0
    assert int(ic.sum()) == 9
    np.testing.assert_array_equal(y[ic, 0].numpy(), -np.sin(np.pi * x[ic, 1].numpy()))
    assert x[ic, 1].min() == -1 and x[ic, 1].max() == 1
    bc = ~ic
    assert set(x[bc, 1].tolist()) == {-1.0, 1.0}
    assert (y[bc] == 0).all()
    assert torch.allclose(torch.sort(x[bc, 0]).values,
                          torch.tensor([0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1],
                                       dtype=torch.float64))
    # the IC values meet the BC at the corners (−sin(±π) = 0 to round-off)
    assert abs(float(minus_sine(torch.tensor([1.0], dtype=torch.float64)))) < 1e-15


def test_relative_l2_and_steps_to_threshold() -> None:
    ref = torch.randn(3, 50, 1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(relative_l2(ref, ref), torch.zeros(3))
    assert torch.allclose(relative_l2(torch.zeros_like(ref), ref), torch.ones(3))
    assert torch.allclose(relative_l2(2 * ref, ref), torch.ones(3))
    err = np.array([[1.0, 1.0, 1.0], [0.5, 0.009, np.nan], [0.01, 0.5, np.nan]])
    got = steps_to_threshold(err, [0, 10, 20], 1e-2)
    np.testing.assert_array_equal(got, [20.0, 10.0, np.nan])


def _tiny_problem() -> tuple[MAML, dict[str, torch.Tensor], TaskBatch]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    phys = PhysicsLoss("burgers", 0.5, "inner", scale=[1.0])
    learner = MAML(net, inner_lr=0.01, inner_steps=1, physics=phys)
    sx, sy = ic_bc_support(6, 3)
    q = uniform_collocation(np.random.default_rng(1), 2, 20, ((0, 1), (-1, 1)))
    base_y = minus_sine(q[..., 1:]).to(torch.float32)
    base = TaskBatch(q[:, :4], base_y[:, :4], q, base_y,
                     uniform_collocation(np.random.default_rng(2), 2, 16, ((0, 1), (-1, 1))),
                     torch.tensor([[0.05], [0.3]]))
    batch = pinn_batch(base, (sx, sy), n_data=4)
    assert batch.support_x.shape == (2, 6 + 6 + 4, 2)
    return learner, learner.init_params(), batch


def test_adapt_pinn_matches_adapt_curve() -> None:
    """Our Adam on the hand-batched physics path equals scimeta's adapt_curve (generic
    vmap path, same Adam update) at every recorded step: same loss, same trajectory."""
    learner, params, batch = _tiny_problem()
    budgets = (0, 1, 5)

    def query_mse(fast: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = learner.predict(fast, batch.query_x)
        return (pred - batch.query_y).square().mean(dim=(-2, -1))

    ours, _ = adapt_pinn(learner, params, batch, 1e-2, 5, budgets, query_mse)
    ref = adapt_curve(learner, params, batch, "adam", 1e-2, budgets, factor=1e6)
    assert torch.allclose(ours, ref.query_mse, rtol=1e-4, atol=1e-7)
    assert math.isfinite(float(ours[-1].sum())) and bool((ours[-1] < ours[0]).all())


def test_pinn_batch_rejects_too_many_points() -> None:
    from scimeta.errors import ConfigError

    _, _, batch = _tiny_problem()
    with pytest.raises(ConfigError):
        pinn_batch(batch, ic_bc_support(4, 2), n_data=100)
    with pytest.raises(ConfigError):
        ic_bc_support(1, 2)


def test_one_split_trains_on_the_full_runs_training_set(tmp_path: Path) -> None:
    """`--splits extrapolate` still holds the interpolation band out of training (it
    used to train on it, so its inits differed from the full run's)."""
    xr = pytest.importorskip("xarray")
    from scimeta.data import TaskReader

    out = _smoke(tmp_path, "o", "--splits", "extrapolate")
    assert out.returncode == 0, out.stderr
    nu = TaskReader(tmp_path / "o" / "train.h5").params[:, 0]
    outside = int(((nu < 0.2) | (nu >= 0.3)).sum())   # Burgers' interpolation band
    assert 0 < outside < len(nu)                       # the smoke draw holds some out
    with xr.open_dataset(tmp_path / "o" / "meta_pinn.nc") as ds:
        assert list(ds["split"].values) == ["extrapolate"]
        assert int(ds.attrs["training_tasks"]) == outside


def test_bad_rate_grid_is_refused_before_any_work(tmp_path: Path) -> None:
    for bad in ("0,1e-3", "fast", ""):
        out = _smoke(tmp_path, "o", "--adapt-lrs", bad)
        assert out.returncode == 2 and f"--adapt-lrs {bad!r}: give positive rates" in out.stderr
        assert not (tmp_path / "o").exists()


# ---- families other than Burgers (allen_cahn: periodic, IC from the family's rule) ----

def test_allen_cahn_smoke_runs_end_to_end(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    out = _smoke(tmp_path, "out", "--family", "allen_cahn")
    assert out.returncode == 0, out.stderr
    ds = xr.open_dataset(tmp_path / "out" / "meta_pinn.nc")
    assert ds.attrs["family"] == "allen_cahn" and ds.attrs["boundary"] == "periodic"
    assert set(ds["init"].values) == {"maml", "random", "joint", "conditioned"}
    assert set(ds["split"].values) == {"extrapolate", "interpolate"}
    rel = ds["rel_l2"].values
    assert rel.shape == (2, 4, 2, 3, 2)
    assert np.isfinite(rel).all() and (rel > 0).all()
    eps = ds["eps"].sel(split="extrapolate").values
    assert ((eps >= 0.05) & (eps <= 0.07)).all()
    np.testing.assert_array_equal(rel[:, :, 0, 0], rel[:, :, 1, 0])
    ds.close()
    table = (tmp_path / "out" / "table.md").read_text()
    assert "(ε ∈ [" in table and "| 10-points | conditioned |" in table


def _bench_common(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import _pinn_common

    return _pinn_common


@pytest.mark.parametrize("family", ["burgers", "allen_cahn"])
def test_protocol_ic_bc_targets_equal_the_reference(tmp_path: Path, family: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The IC (and Dirichlet BC) targets the protocol fits are the stored reference
    solution at t = 0 (and at x = ±1), at the same points; the periodic pairs sit at the
    two ends of the family's period, at output times."""
    import dataclasses

    from scimeta.data import TaskReader
    from scimeta.registry import get

    pc = _bench_common(monkeypatch)
    setup = pc.SETUPS[family]
    path = pc.make_store(setup, tmp_path / "s.h5", setup.splits["extrapolate"], 2, 0, 10)
    reader = TaskReader(path, in_memory=True)
    grid, times = reader.meta.space[0], reader.meta.time
    # n_ic, n_bc chosen so that every target point is a grid point (or its periodic image)
    n_ic = 65 if setup.boundary == "dirichlet" else 64
    problem = pc.Problem(setup, dataclasses.replace(pc.SMOKE, n_ic=n_ic, n_bc=20))
    x, y = (v.double().numpy() for v in problem.ic_bc)
    (lo, hi), = get(family).domain.values()
    period = hi - lo
    ic = x[:, 0] == times[0]
    assert ic.sum() == n_ic
    col = np.rint((x[ic, 1] - lo) / (grid[1] - grid[0])).astype(int)
    np.testing.assert_array_equal(grid[col % len(grid)] + period * (col // len(grid)), x[ic, 1])
    y0 = get(family).initial_state(setup.rule, np.random.default_rng(0))[:, 0]
    for i in range(len(reader)):
        ref = reader.fields(i)[..., 0].astype(np.float64)
        # to round-off: the stored t = 0 field passes through the solver's FFTs
        # (allen_cahn: -2.8e-17 where u0 = 1.5e-17), Burgers' sin(±π) = ±1.2e-16
        np.testing.assert_allclose(y[ic, 0], ref[0, col % len(grid)], rtol=0, atol=1e-15)
        if setup.boundary == "dirichlet":
            bc = ~ic
            k = np.rint((x[bc, 0] - times[0]) / (times[1] - times[0])).astype(int)
            np.testing.assert_allclose(times[k], x[bc, 0], rtol=0, atol=1e-7)
            assert set(x[bc, 1]) == {lo, hi}
            np.testing.assert_allclose(ref[k, 0], y[bc, 0], rtol=0, atol=1e-15)  # x = ±1
    # the family's own initial_state, rounded as the (float32) targets are
    y0 = y0[col % len(grid)].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(y[ic, 0], y0, rtol=0, atol=1e-15)
    if setup.boundary == "periodic":
        assert problem.pairs is not None
        p = problem.pairs.double().numpy()
        m = len(p) // 2
        np.testing.assert_array_equal(p[:m, 0], p[m:, 0])
        assert (p[:m, 1] == lo).all() and (p[m:, 1] == hi).all()
        k = np.rint(p[:m, 0] / (times[1] - times[0])).astype(int)
        np.testing.assert_allclose(times[k], p[:m, 0], rtol=0, atol=1e-7)
        assert p[:m, 0].min() > times[0] and p[:m, 0].max() == times[-1]


def _periodic_problem(fast: bool | None) -> tuple[MAML, dict[str, torch.Tensor], TaskBatch]:
    from scimeta.registry import get
    from scimeta.train.pinn_periodic import (
        PeriodicPhysicsLoss,
        initial_support,
        periodic_pairs,
        with_pairs,
    )

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    net = net.double()
    phys = PeriodicPhysicsLoss("allen_cahn", 0.5, "inner", scale=[2.0], pairs=3)
    learner = MAML(net, inner_lr=0.01, inner_steps=1, physics=phys, fast=fast)
    box = ((0.0, 1.0), (-1.0, 1.0))
    cx = with_pairs(uniform_collocation(np.random.default_rng(2), 2, 16, box, torch.float64),
                    periodic_pairs(3, 1.0, -1.0, 1.0, torch.float64))
    q = uniform_collocation(np.random.default_rng(1), 2, 20, box, torch.float64)
    base = TaskBatch(q[:, :4], q[:, :4, :1], q, q[..., :1], cx,
                     torch.tensor([[0.05, 5.0], [0.1, 5.0]], dtype=torch.float64))
    ic = initial_support(get("allen_cahn"), "x2cos", 8, torch.float64)
    return learner, learner.init_params(), pinn_batch(base, ic, n_data=2)


def test_periodic_loss_same_on_both_paths_and_adds_the_jumps() -> None:
    """The hand-batched (Taylor) path and the generic torch.func path give the same
    support loss, gradient and meta-loss; the loss is the interior residual term plus
    the jumps of u and u_x across the period, computed here by autograd."""
    got = []
    for fast in (None, False):
        learner, params, batch = _periodic_problem(fast)
        assert (learner._fast is None) == (fast is False)
        b = batch.num_tasks
        per = {k: v.detach().unsqueeze(0).expand(b, *v.shape).clone() for k, v in params.items()}
        loss, g = learner.support_grads(per, {}, batch)
        got.append((loss, g, learner.meta_loss(params, batch).detach()))
    for a, c in zip(got[0][1].values(), got[1][1].values(), strict=True):
        assert torch.allclose(a, c, rtol=1e-10, atol=1e-12)
    assert torch.allclose(got[0][0], got[1][0], rtol=1e-12)
    assert torch.allclose(got[0][2], got[1][2], rtol=1e-12)
    # by hand: support MSE + λ·mean((r/s)²) over the interior + jumps at the 3 pairs
    learner, params, batch = _periodic_problem(False)
    phys = learner.physics
    assert phys is not None
    net = learner.model
    for i in range(batch.num_tasks):
        cx = batch.collocation_x[i]
        r = phys.residual(net, dict(params), cx[:16], batch.params[i])
        xb = cx[16:].clone().requires_grad_(True)
        u = net(xb)
        ux = torch.autograd.grad(u.sum(), xb)[0][:, 1:]
        jump = (u[:3] - u[3:]).square().mean() + (ux[:3] - ux[3:]).square().mean()
        mse = (net(batch.support_x[i]) - batch.support_y[i]).square().mean()
        want = mse + 0.5 * r.square().mean() + jump
        assert float(jump.detach()) > 1e-6
        assert torch.allclose(got[1][0][i], want.detach(), rtol=1e-12)


def test_initial_support_is_the_family_rule_on_its_grid() -> None:
    from scimeta.errors import ConfigError
    from scimeta.registry import get
    from scimeta.train.pinn_periodic import initial_support, periodic_pairs

    fam = get("allen_cahn")
    x, y = initial_support(fam, "x2cos", 64, torch.float64)
    full = fam.initial_state("x2cos", np.random.default_rng(0))[:, 0]
    np.testing.assert_array_equal(x[:, 1].numpy(), fam.space["x"][::16])
    assert (x[:, 0] == 0).all()
    np.testing.assert_array_equal(y[:, 0].numpy(), full[::16])  # bitwise: the same code
    with pytest.raises(ConfigError):
        initial_support(fam, None, 64)
    with pytest.raises(ConfigError):
        periodic_pairs(0, 1.0, -1.0, 1.0)


def test_periodic_loss_without_slope_term() -> None:
    """slope=False: the boundary term is the jump of u only, on both paths."""
    from scimeta.train.pinn_periodic import PeriodicPhysicsLoss

    learner, params, batch = _periodic_problem(None)
    with_slope = learner.physics
    assert isinstance(with_slope, PeriodicPhysicsLoss)
    phys = PeriodicPhysicsLoss("allen_cahn", 0.5, "inner", scale=[2.0], pairs=3, slope=False)
    net = learner.model
    b = batch.num_tasks
    per = {k: v.detach().unsqueeze(0).expand(b, *v.shape).clone() for k, v in params.items()}
    losses = [MAML(net, inner_lr=0.01, inner_steps=1, physics=phys, fast=fast)
              .support_grads(per, {}, batch)[0] for fast in (None, False)]
    assert torch.allclose(losses[0], losses[1], rtol=1e-12)
    full = learner.support_grads(per, {}, batch)[0]
    for i in range(b):
        cx = batch.collocation_x[i]
        u = net(cx[16:]).detach()
        xb = cx[16:].clone().requires_grad_(True)
        ux = torch.autograd.grad(net(xb).sum(), xb)[0][:, 1:]
        slope = (ux[:3] - ux[3:]).square().mean()
        assert float((u[:3] - u[3:]).square().mean()) > 0
        assert torch.allclose(full[i] - losses[0][i], slope.detach(), rtol=1e-10)
