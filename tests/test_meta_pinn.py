"""bench/meta_pinn.py --smoke runs the meta-learned-PINN protocol end to end (a pipeline
check at tiny sizes, not the numbers; ~15 s on one core), and the maths of its helpers
(scimeta.train.pinn) is exact."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

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


def test_smoke_runs_end_to_end(tmp_path: Path) -> None:
    xr = pytest.importorskip("xarray")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "meta_pinn.py"), "--smoke",
                          "--out", str(tmp_path / "out")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    ds = xr.open_dataset(tmp_path / "out" / "meta_pinn.nc")
    assert set(ds["init"].values) == {"maml", "random", "joint", "conditioned"}
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
                "hardware_cpu_count"):
        assert key in ds.attrs
    # step 0 of every init is the same for both settings (adaptation has not started)
    np.testing.assert_array_equal(rel[:, :, 0, 0], rel[:, :, 1, 0])
    ds.close()
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| zero-data | maml |" in table and "| 10-points | conditioned |" in table
    assert (tmp_path / "out" / "meta_pinn.png").stat().st_size > 0


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
