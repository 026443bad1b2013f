"""The hand-batched physics-informed path: Taylor-mode input derivatives and the
meta-loss built on them.

Exact answers (float64): input derivatives of orders 1-4 equal nested forward-mode
``jvp`` to 1e-12 relative; the physics-informed meta-loss and its meta-gradient
equal the ``torch.func`` path (nested ``jvp`` per point under ``vmap``) to 1e-12
relative, for ODE and PDE families, first and second order, learned rates,
multi-step loss and ANIL.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from meta_checks import assert_same_meta_gradient, assert_taylor_equals_nested, physics_batch
from torch import nn

from scimeta import problems
from scimeta.meta import ANIL, MAML, MAMLPlusPlus, MetaSGD, PhysicsLoss
from scimeta.meta._fast_physics import PhysicsPlan, derivative_orders
from scimeta.nn import Rescaled, Sine

DT = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def mlp(din, dout, act, seed=0, width=6):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(din, width), act(), nn.Linear(width, width), act(),
                         nn.Linear(width, dout)).to(DT)


@pytest.mark.parametrize("act", [nn.Tanh, nn.SiLU, lambda: Sine(1.7), nn.ReLU])
@pytest.mark.parametrize("rescaled", [False, True])
def test_taylor_derivatives_equal_nested_jvp(act, rescaled):
    model = mlp(2, 3, act)
    if rescaled:
        model = Rescaled(model, [0.0, -1.0], [2.0, 3.0], [0.1, 0.2, 0.3], [2.0, 0.5, 3.0],
                         dtype=DT)
    assert_taylor_equals_nested(model, 2, {0: 4, 1: 3}, n_points=5)


CASES = [("oscillator", 1, 2), ("burgers", 2, 1), ("kdv", 2, 1)]


@pytest.mark.parametrize("name,din,dout", CASES)
@pytest.mark.parametrize("where", ["inner", "both", "outer"])
@pytest.mark.parametrize("first_order", [False, True])
def test_fast_physics_meta_gradient_equals_generic(name, din, dout, where, first_order):
    family = problems.get(name)
    physics = PhysicsLoss(family, 0.3, where)
    model = mlp(din, dout, nn.Tanh)
    fast = MAML(model, 0.05, 2, physics=physics, first_order=first_order, fast=True)
    slow = MAML(model, 0.05, 2, physics=physics, first_order=first_order, fast=False)
    assert isinstance(fast._fast, PhysicsPlan) and slow._fast is None
    assert_same_meta_gradient(fast, slow, fast.init_params(), physics_batch(family, din, dout))


@pytest.mark.parametrize("cls,kw", [(MetaSGD, {}), (MAMLPlusPlus, {}), (ANIL, {}),
                                    (MAML, {"chunk_size": 2})])
def test_fast_physics_variants_equal_generic(cls, kw):
    family = problems.get("oscillator")
    physics = PhysicsLoss(family, 0.5, "inner")
    model = mlp(1, 2, nn.SiLU)
    fast = cls(model, 0.05, 3, physics=physics, fast=True, **kw)
    slow = cls(model, 0.05, 3, physics=physics, fast=False, **kw)
    b = physics_batch(family, 1, 2, n_tasks=5)
    p = fast.init_params()
    if cls is MetaSGD:  # rates that differ from inner_lr and between entries
        for k in p:
            if k.startswith("inner_lr."):
                p[k] = (p[k] * (1 + torch.rand(p[k].shape, dtype=DT))).detach().requires_grad_()
    assert_same_meta_gradient(fast, slow, p, b)


def test_eligibility_of_the_taylor_path():
    assert derivative_orders(SimpleNamespace(derivatives={"x": (1,), "xxx": (1, 1, 1)})) == {
        0: 1, 1: 3}
    assert derivative_orders(SimpleNamespace(derivatives={"xy": (1, 2)})) is None
    assert derivative_orders(SimpleNamespace(derivatives={"x5": (1,) * 5})) is None
    physics = PhysicsLoss(problems.get("oscillator"), 0.1)
    torch.manual_seed(0)
    fourier = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 2))
    fourier.register_buffer("b", torch.ones(1))  # buffers rule out the hand-batched path
    assert MAML(fourier, physics=physics)._fast is None
    assert isinstance(MAML(mlp(1, 2, nn.Tanh), physics=physics)._fast, PhysicsPlan)
