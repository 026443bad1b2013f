"""A context vector (``CoordinateMLP(context_dim=d)``) on the hand-batched paths, float64.

The context enters the first layer as a bias, W [φ(x); c] + b = W_x φ(x) + (W_c c + b),
and its gradient is W_cᵀ (the first pre-activation's cotangent summed over points).
Exact answers: the hand-batched data and physics-informed meta-gradients of every
parameter (context included) equal the ``torch.func`` path for MAML (everything
adapts), CAVIA (the context alone) and Meta-SGD, first and second order, with and
without an input map and the run's affine maps; Taylor-mode input derivatives with
per-task contexts equal nested ``jvp``; the written-out physics inner gradient equals
autograd's; the test-time support gradients of the context alone equal ``vmap(grad)``.
"""

from __future__ import annotations

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
from scimeta.meta import MAML, PhysicsLoss, get_learner
from scimeta.meta._fast import SequentialPlan
from scimeta.meta._fast_physics import PhysicsPlan
from scimeta.nn import CoordinateMLP, Rescaled

DT = torch.float64


def net(din=2, dout=1, rescaled=True, periodic=True, act="tanh", bias=True):
    torch.manual_seed(0)
    kw = {"periods": [None, 0.8], "periodic_modes": 2} if periodic else {}
    m = CoordinateMLP(din, dout, hidden=(6, 5), activation=act, context_dim=3, **kw).to(DT)
    with torch.no_grad():
        m.context.normal_()  # a trained starting value, not zeros
    if not bias:
        m.net[0].bias = None
    if rescaled:
        m = Rescaled(m, [0.1, -0.4], [1.3, 0.9][:din], [0.2] * dout, [1.7] * dout, dtype=DT)
    return m


def test_plan_takes_the_context_as_a_first_layer_bias():
    model = net()
    plan = SequentialPlan.build(model)
    assert plan is not None and plan.context == "net.context" and plan.context_dim == 3
    p = dict(model.named_parameters())
    x = torch.rand(2, 7, 2, dtype=DT)
    y, _ = plan.forward(p, x, cache=False)
    assert torch.allclose(y, model(x), rtol=0, atol=1e-14)
    # per-task contexts [B, d]: each task's output is the model's with its own context
    pb = {**p, "net.context": torch.stack([p["net.context"], -p["net.context"]])}
    y, _ = plan.forward(pb, x, cache=False)
    with torch.no_grad():
        model.net.context.neg_()
        assert torch.allclose(y[1], model(x[1]), rtol=0, atol=1e-14)


@pytest.mark.parametrize("algorithm", ["maml", "cavia", "metasgd"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("periodic,bias", [(True, True), (False, True), (False, False)])
def test_hand_batched_data_meta_gradient_equals_generic(algorithm, first_order, periodic,
                                                        bias):
    model = net(periodic=periodic, bias=bias)
    entry = get_learner(algorithm)
    assert_hand_path_equals_generic(
        lambda fast: entry.build(model, inner_lr=0.2, inner_steps=3,
                                 first_order=first_order, fast=fast), data_batch())


@pytest.mark.parametrize("algorithm", ["maml", "cavia"])
@pytest.mark.parametrize("name", ["burgers", "kdv"])
@pytest.mark.parametrize("first_order", [False, True])
def test_hand_batched_physics_meta_gradient_equals_generic(algorithm, name, first_order):
    physics = PhysicsLoss(problems.get(name), 0.3, "inner")
    model = net()
    entry = get_learner(algorithm)
    assert_hand_path_equals_generic(
        lambda fast: entry.build(model, inner_lr=0.05, inner_steps=2, physics=physics,
                                 first_order=first_order, fast=fast),
        physics_batch(problems.get(name), 2, 1))


@pytest.mark.parametrize("periodic", [True, False])
def test_taylor_derivatives_with_per_task_contexts_equal_nested_jvp(periodic):
    assert_taylor_equals_nested(net(dout=2, periodic=periodic, act="silu"), 2,
                                {0: 2, 1: 4}, n_points=3)


@pytest.mark.parametrize("per_task", [True, False])
def test_hand_physics_inner_gradient_with_a_context_equals_autograd(per_task):
    physics = PhysicsLoss(problems.get("burgers"), 0.7, "inner", scale=[2.0])
    model = net()
    plan = PhysicsPlan.build(SequentialPlan.build(model), physics)
    assert plan is not None and plan.hand is not None
    g = torch.Generator().manual_seed(4)
    sx, sy = torch.rand(3, 4, 2, generator=g, dtype=DT), torch.randn(3, 4, 1, generator=g,
                                                                     dtype=DT)
    cx = torch.rand(3, 6, 2, generator=g, dtype=DT)
    tp = torch.rand(3, 1, generator=g, dtype=DT) + 0.5
    p = {k: v.detach() for k, v in model.named_parameters()}
    if per_task:
        p = {k: v.unsqueeze(0).repeat(3, *[1] * v.dim())
             + 0.05 * torch.randn(3, *v.shape, generator=g, dtype=DT) for k, v in p.items()}
    assert_hand_grads_equal_autograd(plan, p, (sx, sy, cx, tp), per_task=per_task)


@pytest.mark.parametrize("physics", [False, True])
def test_support_grads_of_the_context_alone_equal_vmap_grad(physics):
    fam = problems.get("burgers")
    loss = PhysicsLoss(fam, 0.5, "inner") if physics else None
    model = net()
    fast = MAML(model, 0.1, 2, physics=loss, fast=True)
    slow = MAML(model, 0.1, 2, physics=loss, fast=False)
    assert fast._fast is not None and slow._fast is None
    batch = physics_batch(fam, 2, 1)
    p = fast.init_params()
    ctx = {"net.context": p["net.context"].detach().unsqueeze(0).repeat(3, 1)
           + 0.1 * torch.randn(3, 3, dtype=DT, generator=torch.Generator().manual_seed(3))}
    fixed = {k: v.detach() for k, v in p.items() if k != "net.context"}
    la, ga = fast.support_grads(ctx, fixed, batch)
    lb, gb = slow.support_grads(ctx, fixed, batch)
    assert list(ga) == ["net.context"]
    assert torch.allclose(la, lb, rtol=1e-12, atol=0)
    assert torch.allclose(ga["net.context"], gb["net.context"], rtol=1e-11, atol=1e-14)
