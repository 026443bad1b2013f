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
from meta_checks import assert_same_meta_gradient, physics_batch
from torch import nn
from torch.func import functional_call, jvp

from scimeta import problems
from scimeta.meta import ANIL, MAML, MAMLPlusPlus, MetaSGD, PhysicsLoss
from scimeta.meta._fast import SequentialPlan
from scimeta.meta._fast_physics import PhysicsPlan, derivative_orders
from scimeta.meta._taylor import TaylorMLP
from scimeta.nn import Rescaled, Sine

DT = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def mlp(din, dout, act, seed=0, width=6):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(din, width), act(), nn.Linear(width, width), act(),
                         nn.Linear(width, dout)).to(DT)


def nested(u, x, col, order):
    """d^order u / dx_col^order at one point by nested jvp."""
    e = torch.zeros_like(x)
    e[col] = 1.0
    f = u
    for _ in range(order):
        f = (lambda g: (lambda xi: jvp(g, (xi,), (e,))[1]))(f)
    return f(x)


@pytest.mark.parametrize("act", [nn.Tanh, nn.SiLU, lambda: Sine(1.7), nn.ReLU])
@pytest.mark.parametrize("rescaled", [False, True])
def test_taylor_derivatives_equal_nested_jvp(act, rescaled):
    model = mlp(2, 3, act)
    if rescaled:
        model = Rescaled(model, [0.0, -1.0], [2.0, 3.0], [0.1, 0.2, 0.3], [2.0, 0.5, 3.0],
                         dtype=DT)
    plan = SequentialPlan.build(model)
    assert plan is not None
    taylor = TaylorMLP(plan, {0: 4, 1: 3})
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 5, 2, generator=g, dtype=DT)
    p = dict(model.named_parameters())
    # per-task weights for the second task: perturb every parameter
    pb = {k: torch.stack([v, v + 0.1 * torch.randn(v.shape, generator=g, dtype=DT)])
          for k, v in p.items()}
    y, d = taylor.forward(pb, x)
    for b in range(2):
        pt = {k: v[b] for k, v in pb.items()}

        def u(xi, pt=pt):
            return functional_call(model, pt, (xi.unsqueeze(0),)).squeeze(0)

        for i in range(5):
            assert torch.allclose(y[b, i], u(x[b, i]).detach(), rtol=1e-13, atol=1e-13)
            for col, top in ((0, 4), (1, 3)):
                for k in range(1, top + 1):
                    want = nested(u, x[b, i], col, k).detach()
                    scale = max(1.0, float(want.abs().max()))
                    assert torch.allclose(d[(col, k)][b, i], want, rtol=0,
                                          atol=1e-12 * scale), (col, k)


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
