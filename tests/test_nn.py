"""Surrogate networks: shapes, initialisation, RK4 order and use with the meta-learners."""

from __future__ import annotations

import math

import pytest
import torch

from scimeta.errors import ConfigError
from scimeta.meta import MAML, TaskBatch
from scimeta.nn import CoordinateMLP, Forecaster, VectorFieldNet, rk4_rollout

DT = torch.float64


@pytest.mark.parametrize("act", ["tanh", "silu", "relu", "sine"])
@pytest.mark.parametrize("ff", [0, 8])
def test_coordinate_mlp_shapes(act, ff):
    net = CoordinateMLP(3, 2, hidden=(16, 16), activation=act, fourier_features=ff)
    assert net(torch.randn(5, 7, 3)).shape == (5, 7, 2)
    names = [n for n, _ in net.named_parameters()]
    assert names[-2:] == ["net.4.weight", "net.4.bias"]
    assert ("fourier_B" in dict(net.named_buffers())) == bool(ff)
    if ff:
        assert net.net[0].in_features == 2 * ff


def test_siren_initialisation_bounds():
    torch.manual_seed(0)
    net = CoordinateMLP(2, 1, hidden=(64, 64), activation="sine", omega0=30.0)
    assert net.net[0].weight.abs().max() <= 1 / 2
    bound = math.sqrt(6 / 64) / 30
    assert net.net[2].weight.abs().max() <= bound
    assert net.net[2].weight.abs().max() > 0.9 * bound


def test_fourier_features_are_sin_cos_of_projection():
    net = CoordinateMLP(1, 1, fourier_features=3, fourier_scale=2.0).to(DT)
    x = torch.tensor([[0.25]], dtype=DT)
    z = 2 * math.pi * x @ net.fourier_B
    assert torch.allclose(net.features(x), torch.cat([z.sin(), z.cos()], -1))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"activation": "gelu"}, "activation"), ({"hidden": (0,)}, "hidden"),
    ({"in_dim": 0}, "in_dim"), ({"fourier_scale": -1.0}, "fourier_scale"),
])
def test_coordinate_mlp_errors(kwargs, name):
    args = {"in_dim": 1, "out_dim": 1, **kwargs}
    with pytest.raises(ConfigError, match=name):
        CoordinateMLP(**args)


def test_rk4_is_fourth_order_on_linear_oscillator():
    a = torch.tensor([[0.0, 1.0], [-4.0, -0.2]], dtype=DT)
    y0 = torch.tensor([1.0, 0.0], dtype=DT)
    t = torch.linspace(0, 2, 5, dtype=DT)
    exact = torch.stack([torch.linalg.matrix_exp(a * s) @ y0 for s in t])
    errs = [(rk4_rollout(lambda _s, y: y @ a.T, y0, t, substeps=n) - exact).abs().max()
            for n in (8, 16)]
    assert 14 < errs[0] / errs[1] < 18  # ≈ 2⁴
    traj = rk4_rollout(lambda s, y: torch.cos(s) * torch.ones_like(y), y0[:1], t, 64)
    assert torch.allclose(traj[:, 0], 1 + torch.sin(t), atol=1e-10)  # non-autonomous


def test_rk4_gradcheck():
    w = torch.randn(2, 2, dtype=DT, requires_grad=True)
    y0 = torch.randn(3, 2, dtype=DT, requires_grad=True)
    t = torch.linspace(0, 0.5, 3, dtype=DT)
    assert torch.autograd.gradcheck(
        lambda w_, y_: rk4_rollout(lambda _s, y: torch.tanh(y @ w_), y_, t, 2), (w, y0))


def test_vector_field_net_and_forecaster_with_maml():
    field = VectorFieldNet(2, param_dim=1, hidden=(8,)).to(DT)
    assert field(torch.randn(4, 2, dtype=DT), torch.ones(1, dtype=DT)).shape == (4, 2)
    with pytest.raises(ConfigError, match="param_dim"):
        field(torch.randn(4, 2, dtype=DT))
    torch.manual_seed(0)
    t = torch.linspace(0, 1, 6, dtype=DT)
    model = Forecaster(VectorFieldNet(2, hidden=(8,)), t).to(DT)
    g = torch.Generator().manual_seed(0)
    y0 = torch.randn(3, 4, 2, generator=g, dtype=DT)
    traj = torch.randn(3, 4, 12, generator=g, dtype=DT)
    batch = TaskBatch(y0, traj, y0, traj)
    maml = MAML(model, inner_lr=0.05, inner_steps=2)
    params = maml.init_params()
    loss = maml.meta_loss(params, batch)
    grads = torch.autograd.grad(loss, list(params.values()))
    assert all(torch.isfinite(gr).all() for gr in grads)
    assert maml.predict(params, y0[0]).shape == (4, 12)


def test_fourier_coordinate_mlp_with_maml_generic_path():
    torch.manual_seed(0)
    model = CoordinateMLP(1, 2, hidden=(8,), fourier_features=4).to(DT)
    maml = MAML(model, inner_lr=0.05, inner_steps=2, fast=False)
    assert maml._fast is None  # the hand-batched path equals it: tests/test_input_maps.py
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=DT)  # noqa: E731
    batch = TaskBatch(r(3, 5, 1), r(3, 5, 2), r(3, 4, 1), r(3, 4, 2))
    params = maml.init_params()
    assert "fourier_B" not in params
    grads = torch.autograd.grad(maml.meta_loss(params, batch), list(params.values()))
    assert all(torch.isfinite(gr).all() and gr.abs().sum() > 0 for gr in grads)
