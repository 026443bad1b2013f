"""The ``sinusoid`` family (Finn et al. 2017): stored fields are the closed form
A sin(x - phi), parameters follow Finn's ranges, the split regimes are disjoint, the
residual y' - A cos(x - phi) is exact, and the family passes the contract."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scimeta import registry
from scimeta.data import GenerationConfig, TaskReader, generate, open_xarray
from scimeta.params import overlap, split_groups
from scimeta.problems.sinusoid import sinusoid
from scimeta.testing import assert_family_contract
from scimeta.train.suite import load_suite, run_suite

SUITES = Path(__file__).resolve().parents[1] / "problems" / "suites"


@pytest.fixture(scope="module")
def fam():
    return registry.get("sinusoid")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sinusoid") / "train.h5"
    return generate(GenerationConfig("sinusoid", "train", tasks=6, seed=3, support=10,
                                     query=20, dtype="float64"), path, progress=False)


def test_declarations_follow_finn(fam) -> None:
    fam.check()
    assert fam.param_names == ("A", "phi") and fam.state_names == ("y",)
    grid = fam.time.values()  # the input x lives on the time axis
    assert grid[0] == -5.0 and grid[-1] == 5.0 and len(grid) == 1001
    assert fam.regime("train").box == {"A": (0.1, 5.0), "phi": (0.0, math.pi)}
    assert fam.regime("test").box == fam.regime("train").box


def test_stored_fields_are_the_closed_form(fam, store) -> None:
    with open_xarray(store) as ds:
        x = ds["time"].values
        p = ds["params"].values
        u = ds["u"].values[..., 0]
        assert list(ds["channel"].values) == ["y"]
    a, phi = p[:, :1], p[:, 1:]
    assert np.abs(u - a * np.sin(x[None] - phi)).max() <= 1e-15 * np.abs(a).max()
    # and against hand-picked values: sin(pi/2) = 1 at x - phi = pi/2
    ref = sinusoid(np.array([[2.0, 0.5], [0.1, math.pi]]),
                   np.array([0.5 + math.pi / 2, 0.0, -5.0]))
    np.testing.assert_allclose(ref, [[2.0, 2 * math.sin(-0.5), 2 * math.sin(-5.5)],
                                     [-0.1 * math.cos(0.5), 0.0, 0.1 * math.sin(-5 - math.pi)]],
                               rtol=0, atol=1e-15)


def test_support_and_query_sets_are_the_closed_form(store) -> None:
    reader = TaskReader(store, dtype=torch.float64)
    b = reader.batch(range(len(reader)))
    amp, phi = b.params[:, None, :1], b.params[:, None, 1:]
    for x, y in ((b.support_x, b.support_y), (b.query_x, b.query_y)):
        assert x.shape[-1] == 1 and y.shape[-1] == 1
        assert float((y - amp * torch.sin(x - phi)).abs().max()) <= 1e-14
    assert b.support_x.shape[1] == 10 and b.query_x.shape[1] == 20


def test_float32_store_is_rounded_closed_form(tmp_path) -> None:
    path = generate(GenerationConfig("sinusoid", "test-extrapolate", tasks=3, seed=0),
                    tmp_path / "f32.h5", progress=False)
    with open_xarray(path) as ds:
        u, p, x = ds["u"].values[..., 0], ds["params"].values, ds["time"].values
    assert u.dtype == np.float32
    exact = sinusoid(p, x)
    assert np.abs(u - exact).max() <= 6e-8 * np.abs(p[:, 0]).max()


@pytest.mark.parametrize(("regime", "amp"), [("train", (0.1, 5.0)), ("test", (0.1, 5.0)),
                                             ("test-extrapolate", (5.0, 7.0))])
def test_parameters_fall_in_the_ranges(fam, regime: str, amp) -> None:
    rng = np.random.default_rng(0)
    p = np.stack([fam.regime(regime).sample(fam.params, rng) for _ in range(2000)])
    assert (p[:, 0] >= amp[0]).all() and (p[:, 0] < amp[1]).all()
    assert (p[:, 1] >= 0).all() and (p[:, 1] < math.pi).all()
    # uniform: the sample mean is within 4 standard errors of the midpoint
    for col, (lo, hi) in ((0, amp), (1, (0.0, math.pi))):
        se = (hi - lo) / math.sqrt(12 * len(p))
        assert abs(p[:, col].mean() - (lo + hi) / 2) < 4 * se


def test_regimes_disjoint_where_claimed(fam) -> None:
    assert split_groups(fam.regimes) == [("train", "test-extrapolate")]
    assert overlap(fam.params, fam.regime("train"), fam.regime("test-extrapolate")) is None
    # test is the training distribution on purpose (Finn's held-out tasks)
    assert overlap(fam.params, fam.regime("train"), fam.regime("test")) is not None
    edge = np.array([5.0, 1.0])  # A = 5 belongs to test-extrapolate only
    assert fam.regime("test-extrapolate").contains(fam.params, edge)
    assert not fam.regime("train").contains(fam.params, edge)


def test_residual_is_exact_and_moves_with_the_parameters(fam) -> None:
    t = torch.linspace(-5, 5, 201, dtype=torch.float64, requires_grad=True)
    p = torch.tensor([3.0, 1.2], dtype=torch.float64).expand(201, 2)
    y = (p[:, 0] * torch.sin(t - p[:, 1]))[:, None]
    (dydt,) = torch.autograd.grad(y.sum(), t)
    r = fam.residual(t.detach(), y.detach(), dydt[:, None], p)
    assert r.shape == (201, 1) and float(r.abs().max()) <= 1e-14
    moved = fam.residual(t.detach(), y.detach(), dydt[:, None],
                         torch.tensor([3.0, 1.5], dtype=torch.float64).expand(201, 2))
    assert float(moved.abs().max()) > 0.5


def test_solve_batch_ignores_the_placeholder_state(fam) -> None:
    rng = np.random.default_rng(0)
    y0 = fam.sample_initial_state(rng, fam.regime("train"))
    assert y0.shape == (1,) and y0[0] == 0.0
    t = fam.time.values()
    fields, status = fam.solve_batch(np.array([[1.5, 0.3]]), y0[None], t)
    assert fields.shape == (1, 1001, 1) and status.tolist() == [0]
    np.testing.assert_array_equal(fields[0, :, 0], 1.5 * np.sin(t - 0.3))
    with pytest.raises(ValueError, match=r"expected \[N, 2\]"):
        sinusoid(np.zeros((2, 3)), t)


def test_sinusoid_passes_the_contract() -> None:
    assert_family_contract("sinusoid")


def test_finn_suites_plan_the_same_steps(tmp_path) -> None:
    """The full and smoke suites check out (every run config included) and differ only
    in sizes: the same stores, runs and evaluations, Finn's model and rates."""
    full, smoke = (load_suite(SUITES / f) for f in ("finn-sinusoid.toml",
                                                     "finn-sinusoid-smoke.toml"))
    for kind in ("stores", "runs", "evaluations"):
        assert getattr(full, kind).keys() == getattr(smoke, kind).keys()
    assert full.evaluations == smoke.evaluations
    for name, store in full.stores.items():
        assert store.family == "sinusoid" and store.support == smoke.stores[name].support
    assert {s.support for s in full.stores.values()} == {5, 10, 20}
    assert full.stores["test-k10"].tasks == 600
    for spec in full.runs.values():
        cfg = spec.config
        assert isinstance(cfg, dict)
        assert cfg["model"]["hidden"] == [40, 40] and cfg["model"]["activation"] == "relu"
        assert cfg["meta"]["inner_lr"] == 0.01 and cfg["meta"]["meta_batch"] == 25
        assert cfg["optim"]["lr"] == 0.001
    status = run_suite(SUITES / "finn-sinusoid.toml", tmp_path / "out", dry_run=True)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert status
