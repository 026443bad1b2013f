"""ConvVectorField: shapes in both layouts, exact periodic translation equivariance,
float64 gradients, use inside Forecaster (RK4) with torch.func, argument errors."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, grad, vmap

from scimeta.errors import ConfigError
from scimeta.nn import ConvVectorField, Forecaster


def _net(**kw) -> ConvVectorField:
    torch.manual_seed(0)
    args = dict(channels=2, shape=(8, 6), hidden=(5, 5), activation="silu")
    args.update(kw)
    return ConvVectorField(**args)  # type: ignore[arg-type]


def test_shapes_flat_and_grid_layouts_agree():
    flat, grid = _net(), _net(layout="grid")
    y = torch.randn(3, 4, 8, 6, 2)                       # [..., H, W, C]
    out = flat(y.reshape(3, 4, -1))
    assert out.shape == (3, 4, 96) and flat.state_dim == 96
    out_grid = grid(y.permute(0, 1, 4, 2, 3))             # [..., C, H, W]
    assert out_grid.shape == (3, 4, 2, 8, 6)
    torch.testing.assert_close(out_grid.permute(0, 1, 3, 4, 2).reshape(3, 4, -1), out)
    assert flat(y[0, 0].reshape(-1)).shape == (96,)       # no leading dims


@pytest.mark.parametrize("shift", [(1, 0), (0, -2), (3, 5), (-7, 4)])
def test_rolling_the_field_rolls_the_output_exactly(shift):
    net = _net(layout="grid", param_dim=2, hidden=(4, 4, 4)).double()
    y = torch.rand(2, 2, 8, 6, dtype=torch.float64)
    c = torch.tensor([0.3, -0.1], dtype=torch.float64)
    rolled = net(torch.roll(y, shift, dims=(-2, -1)), c)
    assert torch.equal(rolled, torch.roll(net(y, c), shift, dims=(-2, -1)))
    # across the periodic seam a zero-padded conv would differ: check it is not trivial
    assert not torch.equal(net(y, c), torch.roll(net(y, c), shift, dims=(-2, -1)))


def test_scale_multiplies_the_output():
    y = torch.randn(2, 96)
    torch.testing.assert_close(_net(scale=1e-3)(y), 1e-3 * _net()(y))


def test_gradcheck_float64_tiny_net():
    net = _net(shape=(4, 3), hidden=(3,), param_dim=1).double()
    y = torch.randn(2, 24, dtype=torch.float64, requires_grad=True)
    p = torch.randn(1, dtype=torch.float64, requires_grad=True)
    w = net.net[0].weight

    def f(y, p, w):
        return functional_call(net, {"net.0.weight": w}, (y, p), strict=False)

    assert torch.autograd.gradcheck(f, (y, p, w.detach().clone().requires_grad_()))


def test_inside_forecaster_rk4_with_torch_func():
    net = _net(scale=0.1)
    model = Forecaster(net, torch.linspace(0.0, 1.0, 4))
    y0 = torch.rand(5, 96)
    out = model(y0)
    assert out.shape == (5, 4 * 96) and torch.equal(out[:, :96], y0)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, y):
        return functional_call(model, p, (y,)).square().mean()

    g = vmap(grad(loss), in_dims=(None, 0))(params, y0.reshape(5, 1, 96))
    assert all(torch.isfinite(v).all() and v.shape[0] == 5 for v in g.values())
    assert any(v.abs().sum() > 0 for v in g.values())


@pytest.mark.parametrize("kw, words", [
    (dict(channels=0), "channels=0"),
    (dict(shape=(8,)), "shape=(8,)"),
    (dict(shape=(8, 0)), "two positive ints"),
    (dict(shape=5), "shape=5"),
    (dict(hidden=(4, -1)), "hidden"),
    (dict(kernel_size=4), "odd int"),
    (dict(kernel_size=19), "too large"),
    (dict(activation="gelu"), "allowed: tanh"),
    (dict(scale=0.0), "scale=0.0"),
    (dict(scale=float("inf")), "finite number > 0"),
    (dict(layout="chw"), "use one of flat, grid"),
    (dict(param_dim=-1), "param_dim=-1"),
])
def test_bad_arguments_raise_config_error(kw, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        _net(**kw)


def test_bad_inputs_raise_config_error():
    with pytest.raises(ConfigError, match=r"\[\.\.\., 96\]"):
        _net()(torch.randn(3, 95))
    with pytest.raises(ConfigError, match=r"\[\.\.\., 2, 8, 6\]"):
        _net(layout="grid")(torch.randn(3, 2, 6, 8))
    with pytest.raises(ConfigError, match="pass params"):
        _net(param_dim=2)(torch.randn(96))
    with pytest.raises(ConfigError, match="params must be None"):
        _net()(torch.randn(96), torch.zeros(2))
