"""Clipped inner steps (``inner_grad_clip``, InnerRule.max_norm), float64.

Exact answers: on a linear model with the MSE the clipped step is
``w − α · c · g / ‖g‖`` with ``g = (2/K) Xᵀ(Xw − y)`` in closed form; a clip above
every gradient norm changes nothing (1e-12); the hand-batched paths (data-only and
physics-informed) equal the ``torch.func`` path to round-off, meta-gradient
included; the second-order meta-gradient through the clip matches central finite
differences (relative 1e-6).
"""

from __future__ import annotations

import pytest
import torch
from meta_checks import assert_same_meta_gradient, physics_batch
from torch import nn

from scimeta import problems
from scimeta.errors import ConfigError
from scimeta.meta import MAML, InnerRule, MetaSGD, PhysicsLoss, TaskBatch

DT = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def mlp(din=1, dout=2, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(din, 6), nn.Tanh(), nn.Linear(6, 5), nn.Tanh(),
                         nn.Linear(5, dout)).to(DT)


def batch(n_tasks=4, k=6, q=5, din=1, dout=2, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=DT)  # noqa: E731
    return TaskBatch(r(n_tasks, k, din), scale * r(n_tasks, k, dout), r(n_tasks, q, din),
                     scale * r(n_tasks, q, dout))


def test_clipped_step_closed_form_on_a_linear_model():
    b = batch(n_tasks=3, din=3, dout=1)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 1, bias=False)).to(DT)
    alpha, c = 0.2, 0.05
    w = model[0].weight.detach()[0]
    x, y = b.support_x, b.support_y[..., 0]
    g = 2.0 / x.shape[1] * torch.einsum("tkd,tk->td", x, x @ w - y)
    assert bool((g.norm(dim=1) > c).all())  # every task is clipped
    expected = w - alpha * c * g / g.norm(dim=1, keepdim=True)
    for fast in (None, False):
        learner = MAML(model, alpha, 1, fast=fast, inner_grad_clip=c)
        phi = learner.adapt_batch(learner.init_params(), b)["0.weight"][:, 0]
        assert torch.allclose(phi, expected, rtol=1e-13, atol=1e-15), fast
        one = learner.adapt(learner.init_params(), b.support_x[1], b.support_y[1])
        assert torch.allclose(one["0.weight"][0], expected[1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("fast", [None, False])
def test_a_clip_above_every_norm_changes_nothing(fast):
    b, model = batch(), mlp()
    plain = MAML(model, 0.05, 3, fast=fast)
    loose = MAML(model, 0.05, 3, fast=fast, inner_grad_clip=1e6)
    p = plain.init_params()
    assert torch.allclose(plain.meta_loss(p, b), loose.meta_loss(p, b), rtol=1e-13, atol=0)
    tight = MAML(model, 0.05, 3, fast=fast, inner_grad_clip=1e-3)
    assert not torch.allclose(plain.meta_loss(p, b), tight.meta_loss(p, b), rtol=1e-6)


@pytest.mark.parametrize("cls", [MAML, MetaSGD])
@pytest.mark.parametrize("first_order", [False, True])
def test_hand_batched_equals_vmap_with_the_clip_active(cls, first_order):
    b, model = batch(n_tasks=5), mlp()
    kw = {"inner_grad_clip": 0.3, "first_order": first_order, "chunk_size": 2}
    fast, slow = cls(model, 0.05, 3, fast=True, **kw), cls(model, 0.05, 3, fast=False, **kw)
    p = fast.init_params()
    if cls is MetaSGD:
        for k in p:
            if k.startswith("inner_lr."):
                p[k] = (p[k] * (1 + torch.rand(p[k].shape, dtype=DT))).detach().requires_grad_()
    assert_same_meta_gradient(fast, slow, p, b)


@pytest.mark.parametrize("name,din,dout", [("oscillator", 1, 2), ("burgers", 2, 1)])
def test_physics_hand_path_equals_vmap_with_the_clip_active(name, din, dout):
    family = problems.get(name)
    physics = PhysicsLoss(family, 0.3, "inner")
    model = mlp(din, dout)
    kw = {"physics": physics, "inner_grad_clip": 0.2}
    fast, slow = MAML(model, 0.05, 2, fast=True, **kw), MAML(model, 0.05, 2, fast=False, **kw)
    b = physics_batch(family, din, dout)
    # the clip must bind for this to test anything
    unclipped = MAML(model, 0.05, 2, fast=True, physics=physics)
    p = fast.init_params()
    assert not torch.allclose(fast.meta_loss(p, b), unclipped.meta_loss(p, b), rtol=1e-6)
    assert_same_meta_gradient(fast, slow, p, b)


def test_second_order_meta_gradient_through_the_clip_matches_finite_differences():
    b, model = batch(), mlp()
    learner = MAML(model, 0.05, 2, inner_grad_clip=0.4)
    p = learner.init_params()
    loss = learner.meta_loss(p, b)
    grads = torch.autograd.grad(loss, list(p.values()))
    g = torch.Generator().manual_seed(3)
    direction = {k: torch.randn(v.shape, generator=g, dtype=DT) for k, v in p.items()}
    analytic = sum((gi * direction[k]).sum() for k, gi in zip(p, grads, strict=True))
    h = 1e-6
    with torch.no_grad():
        plus = learner.meta_loss({k: v + h * direction[k] for k, v in p.items()}, b)
        minus = learner.meta_loss({k: v - h * direction[k] for k, v in p.items()}, b)
    numeric = (plus - minus) / (2 * h)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=0)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "1"])
def test_bad_clip_is_refused_by_name(bad):
    with pytest.raises(ConfigError, match="inner_grad_clip"):
        MAML(mlp(), inner_grad_clip=bad)
    with pytest.raises(ConfigError, match="inner_grad_clip"):
        InnerRule(0.1, max_norm=bad)


def test_run_config_passes_the_clip_to_every_learner():
    from scimeta.train.config import DataConfig, MetaConfig, TrainConfig
    from scimeta.train.models import build_learner

    cfg = TrainConfig(DataConfig(train="unused.h5"), meta=MetaConfig(inner_grad_clip=0.5))
    for name in ("maml", "fomaml", "metasgd", "anil", "reptile"):
        assert build_learner(cfg, mlp(), None, name).rule.max_norm == 0.5
    with pytest.raises(ConfigError, match=r"meta\.inner_grad_clip"):
        TrainConfig(DataConfig(train="unused.h5"), meta=MetaConfig(inner_grad_clip=-0.1))
