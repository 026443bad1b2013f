"""Fixed input maps of CoordinateMLP (periodic embedding, Fourier features) on every path.

Exact answers (float64): the periodic network is periodic to round-off, through the
run's affine input map too; the input derivatives through the map (Taylor mode, orders
1-4) equal nested ``jvp``; the hand-batched data and physics meta-gradients equal the
``torch.func`` path; the hand-written physics inner gradient equals autograd's.
"""

from __future__ import annotations

import math

import pytest
import torch
from meta_checks import (
    assert_hand_grads_equal_autograd,
    assert_hand_path_equals_generic,
    assert_taylor_equals_nested,
    data_batch,
    physics_batch,
)

from scimeta import problems
from scimeta.errors import ConfigError
from scimeta.meta import MAML, MetaSGD, PhysicsLoss
from scimeta.meta._fast import SequentialPlan
from scimeta.meta._fast_physics import PhysicsPlan
from scimeta.nn import CoordinateMLP, Rescaled
from scimeta.runtime.config import from_dict
from scimeta.train.config import TrainConfig
from scimeta.train.models import build_model, input_periods

DT = torch.float64
MAPS = {"periodic": {"periods": [None, 0.8], "periodic_modes": 3},
        "fourier": {"fourier_features": 4, "fourier_scale": 0.7}}


def net(kind, din=2, dout=1, rescaled=False, act="tanh"):
    torch.manual_seed(0)
    m = CoordinateMLP(din, dout, hidden=(6, 5), activation=act, **MAPS[kind]).to(DT)
    if rescaled:
        m = Rescaled(m, [0.1, -0.4], [1.3, 0.9], [0.2] * dout, [1.7] * dout, dtype=DT)
    return m


def test_periodic_network_is_periodic_and_passes_time_through():
    m = net("periodic")
    x = torch.rand(7, 2, dtype=DT)
    for shift in (0.8, -1.6, 2.4):
        assert torch.allclose(m(x + torch.tensor([0.0, shift], dtype=DT)), m(x),
                              rtol=0, atol=1e-13)
    assert m.keep == (0,) and m.net[0].in_features == 1 + 2 * 3
    f = m.features(torch.tensor([[0.3, 0.2]], dtype=DT))[0]
    k = torch.arange(1, 4, dtype=DT)
    want = torch.cat([torch.tensor([0.3], dtype=DT), torch.sin(2 * math.pi * k * 0.2 / 0.8),
                      torch.cos(2 * math.pi * k * 0.2 / 0.8)])
    assert torch.allclose(f, want, rtol=0, atol=1e-15)
    # not periodic in time
    assert not torch.allclose(m(x + torch.tensor([0.8, 0.0], dtype=DT)), m(x), atol=1e-3)


def test_build_model_periods_in_physical_units_through_the_input_map():
    cfg = from_dict(TrainConfig, {"data": {"train": "x.h5"}, "model": {
        "hidden": [8], "normalize": "both", "periodic_modes": 2}}, "config")
    family = problems.get("burgers")
    periods = input_periods(family, 2)
    assert periods == [None, 2.0]
    assert input_periods(problems.get("oscillator"), 1) == [None]
    # the training grid's box: x in [-1, 1 - dx], as the periodic grid stores it
    norm = {"lo": [0.0, -1.0], "hi": [1.0, 1.0 - 2 / 1024], "y_shift": [0.1],
            "y_scale": [0.6]}
    default = torch.get_default_dtype()
    torch.set_default_dtype(DT)  # the input map's buffers in float64 too
    try:
        model = build_model(cfg, 2, 1, norm, 0, periods=periods)
    finally:
        torch.set_default_dtype(default)
    x = torch.rand(9, 2, dtype=DT) * 2 - 1
    assert torch.allclose(model(x + torch.tensor([0.0, 2.0], dtype=DT)), model(x),
                          rtol=0, atol=1e-12)
    with pytest.raises(ConfigError, match="periods"):
        build_model(cfg, 2, 1, norm, 0, periods=None)
    with pytest.raises(ConfigError, match="exclude each other"):
        from_dict(TrainConfig, {"data": {"train": "x.h5"}, "model": {
            "periodic_modes": 2, "fourier_features": 4}}, "config")


@pytest.mark.parametrize("kw,match", [
    ({"periods": None, "periodic_modes": 2}, "periods"),
    ({"periods": [None], "periodic_modes": 2}, "one entry"),
    ({"periods": [None, None], "periodic_modes": 2}, "no input column is periodic"),
    ({"periods": [None, -1.0], "periodic_modes": 2}, r"periods\[1\]"),
    ({"periods": [None, 1.0], "periodic_modes": 2, "fourier_features": 3}, "exclude"),
    ({"periods": [None, 1.0], "periodic_modes": -1}, "periodic_modes"),
])
def test_bad_periodic_arguments_are_refused_by_name(kw, match):
    with pytest.raises(ConfigError, match=match):
        CoordinateMLP(2, 1, **kw)


@pytest.mark.parametrize("kind", ["periodic", "fourier"])
@pytest.mark.parametrize("rescaled", [False, True])
def test_taylor_derivatives_through_the_map_equal_nested_jvp(kind, rescaled):
    model = net(kind, dout=2, rescaled=rescaled, act="silu")
    plan = SequentialPlan.build(model)
    assert plan is not None and plan.embed is not None
    assert_taylor_equals_nested(model, 2, {0: 2, 1: 4}, n_points=4)


@pytest.mark.parametrize("kind", ["periodic", "fourier"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("cls", [MAML, MetaSGD])
def test_hand_batched_data_meta_gradient_equals_generic(kind, first_order, cls):
    model = net(kind, rescaled=True)
    assert_hand_path_equals_generic(
        lambda fast: cls(model, 0.1, 3, first_order=first_order, fast=fast), data_batch())


@pytest.mark.parametrize("kind", ["periodic", "fourier"])
@pytest.mark.parametrize("name", ["burgers", "kdv"])
@pytest.mark.parametrize("first_order", [False, True])
def test_hand_batched_physics_meta_gradient_equals_generic(kind, name, first_order):
    physics = PhysicsLoss(problems.get(name), 0.3, "inner")
    model = net(kind, rescaled=True)
    assert_hand_path_equals_generic(
        lambda fast: MAML(model, 0.05, 2, physics=physics, first_order=first_order,
                          fast=fast), physics_batch(problems.get(name), 2, 1))


def test_hand_physics_inner_gradient_through_the_map_equals_autograd():
    fam = problems.get("burgers")
    physics = PhysicsLoss(fam, 0.7, "inner", scale=[2.0])
    model = net("periodic", rescaled=True)
    plan = PhysicsPlan.build(SequentialPlan.build(model), physics)
    assert plan is not None and plan.hand is not None
    g = torch.Generator().manual_seed(4)
    sx, sy = torch.rand(3, 4, 2, generator=g, dtype=DT), torch.randn(3, 4, 1, generator=g,
                                                                     dtype=DT)
    cx = torch.rand(3, 6, 2, generator=g, dtype=DT)
    tp = torch.rand(3, 1, generator=g, dtype=DT) + 0.5
    p = {k: v.detach().unsqueeze(0).repeat(3, *[1] * v.dim())
         + 0.05 * torch.randn(3, *v.shape, generator=g, dtype=DT)
         for k, v in model.named_parameters()}
    assert_hand_grads_equal_autograd(plan, p, (sx, sy, cx, tp), per_task=True)
