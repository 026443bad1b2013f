"""The hand-written inner gradient of the physics-informed loss (``_taylor_grad``)
equals autograd's gradient of the same loss to round-off (float64), for every
activation, with and without the fixed input/output maps, shared and per-task
weights, derivative orders 1-3, and for ANIL's head-only gradient."""

from __future__ import annotations

import pytest
import torch
from meta_checks import assert_hand_grads_equal_autograd
from torch import nn

from scimeta import problems
from scimeta.meta import PhysicsLoss
from scimeta.meta._fast import SequentialPlan
from scimeta.meta._fast_physics import PhysicsPlan
from scimeta.meta._taylor import compose
from scimeta.meta._taylor_grad import TaylorGrad, compose_backward
from scimeta.nn import Rescaled, Sine

DT = torch.float64


def _model(din, dout, act, rescaled):
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(din, 7), act(), nn.Linear(7, 7), act(), nn.Linear(7, dout))
    m = m.to(DT)
    if rescaled:
        m = Rescaled(m, [0.1] * din, [1.7] * din, [0.2] * dout, [2.5] * dout, dtype=DT)
    return m


@pytest.mark.parametrize("family,din,dout", [("oscillator", 1, 2), ("burgers", 2, 1),
                                             ("kdv", 2, 1)])
@pytest.mark.parametrize("act", [nn.Tanh, nn.SiLU, lambda: Sine(1.3), nn.ReLU])
@pytest.mark.parametrize("rescaled", [False, True])
@pytest.mark.parametrize("per_task", [False, True])
def test_hand_gradient_equals_autograd(family, din, dout, act, rescaled, per_task):
    fam = problems.get(family)
    physics = PhysicsLoss(fam, 0.7, "inner", scale=[2.0] * dout)
    model = _model(din, dout, act, rescaled)
    plan = PhysicsPlan.build(SequentialPlan.build(model), physics)
    assert plan is not None and plan.hand is not None
    g = torch.Generator().manual_seed(0)
    b = 3
    sx, sy = torch.rand(b, 4, din, generator=g, dtype=DT), torch.randn(b, 4, dout, generator=g,
                                                                       dtype=DT)
    cx = torch.rand(b, 6, din, generator=g, dtype=DT)
    tp = torch.rand(b, len(fam.params), generator=g, dtype=DT) + 0.5
    base = dict(model.named_parameters())
    p = {k: (v.detach().unsqueeze(0).repeat(b, *[1] * v.dim())
             + 0.05 * torch.randn(b, *v.shape, generator=g, dtype=DT)) if per_task
         else v.detach().clone() for k, v in base.items()}
    assert_hand_grads_equal_autograd(plan, p, (sx, sy, cx, tp), per_task)
    got = plan.hand.grads(p, plan.hand.inputs(sx, cx), sy, cx, tp, 0, create_graph=False)
    head = plan.hand.grads(p, plan.hand.inputs(sx, cx), sy, cx, tp, 2, create_graph=False)
    assert set(head) == {k for k in p if k.split(".")[-2] in ("4",)}
    for name in head:
        assert torch.allclose(head[name], got[name], rtol=0, atol=1e-14)


@pytest.mark.parametrize("m", [1, 2, 3])
def test_compose_backward_is_the_vjp_of_compose(m):
    g = torch.Generator().manual_seed(m)
    s = [torch.randn(4, 5, generator=g, dtype=DT).requires_grad_() for _ in range(m + 2)]
    zs = [torch.randn(4, 5, generator=g, dtype=DT).requires_grad_() for _ in range(m)]
    dh = [torch.randn(4, 5, generator=g, dtype=DT) for _ in range(m)]
    out = compose(s, zs)
    vjp = torch.autograd.grad(out, [*zs, *s[1:m + 1]], dh)
    dz, extra = compose_backward(s, zs, dh)
    for a, w in zip(dz, vjp[:m], strict=True):
        assert torch.allclose(a, w, rtol=1e-13, atol=1e-13)
    # extra = sum_j (dL/ds_j) s_{j+1}: the chain rule through s_j = sigma^(j)(z0)
    want = sum(vjp[m + j] * s[j + 2] for j in range(m))
    assert torch.allclose(extra, want, rtol=1e-13, atol=1e-13)


def test_order_four_keeps_the_autograd_path():
    model = _model(2, 1, nn.Tanh, False)
    physics = PhysicsLoss(problems.get("burgers"))
    plan = PhysicsPlan.build(SequentialPlan.build(model), physics)
    plan.taylor.orders[1] = 4  # as a family with a fourth derivative would ask
    with pytest.raises(ValueError, match="orders <= 3"):
        TaylorGrad(plan.plan, plan.taylor.orders, physics)


@pytest.mark.parametrize("physics_where", [None, "inner", "outer"])
@pytest.mark.parametrize("head_only", [False, True])
def test_support_grads_hand_path_equals_vmap(physics_where, head_only):
    """MAML.support_grads (the adaptation loops' step) on the hand-batched path equals
    the vmap-of-grad path, for data only and physics in or out of the inner loss."""
    from scimeta.meta import MAML, TaskBatch

    fam = problems.get("oscillator")
    physics = None if physics_where is None else PhysicsLoss(fam, 0.4, physics_where)
    model = _model(1, 2, nn.Tanh, True)
    fast_l = MAML(model, 0.1, 2, physics=physics)
    slow_l = MAML(model, 0.1, 2, physics=physics, fast=False)
    assert fast_l._fast is not None and slow_l._fast is None
    g = torch.Generator().manual_seed(5)
    b = TaskBatch(torch.rand(3, 4, 1, generator=g, dtype=DT),
                  torch.randn(3, 4, 2, generator=g, dtype=DT),
                  torch.rand(3, 5, 1, generator=g, dtype=DT),
                  torch.randn(3, 5, 2, generator=g, dtype=DT),
                  torch.rand(3, 6, 1, generator=g, dtype=DT),
                  torch.rand(3, len(fam.params), generator=g, dtype=DT) + 0.5)
    p = {k: v.detach() for k, v in model.named_parameters()}
    names = [k for k in p if k.startswith("net.4")] if head_only else list(p)
    fast = {k: p[k].unsqueeze(0).repeat(3, *[1] * p[k].dim())
            + 0.03 * torch.randn(3, *p[k].shape, generator=g, dtype=DT) for k in names}
    fixed = {k: v for k, v in p.items() if k not in names}
    lf, gf = fast_l.support_grads(fast, fixed, b)
    ls, gs = slow_l.support_grads(fast, fixed, b)
    assert torch.allclose(lf, ls, rtol=1e-12, atol=0)
    assert set(gf) == set(gs) == set(names)
    for k in names:
        assert torch.allclose(gf[k], gs[k], rtol=1e-10, atol=1e-13), k
