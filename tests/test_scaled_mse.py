"""The normalized runs' loss, MSE in units of the output spread (``ScaledMSE``), on the
hand-batched paths (float64).

A run with ``model.normalize != "none"`` trains a :class:`Rescaled` network on
mean(((pred − y) / y_scale)²). The hand-batched paths divide their error by the scale
(unit slope in the network's own output), so such runs keep the fast path. Exact
answers: data and physics-informed meta-gradients equal the ``torch.func`` path for
MAML, Meta-SGD, ANIL and CAVIA, first and second order; Reptile's loss and
pseudo-gradient equal it; test-time support gradients equal ``vmap(grad)``; a scale the
plan does not apply (another model's) falls back to the generic path.
"""

from __future__ import annotations

import pytest
import torch
from meta_checks import assert_hand_path_equals_generic, data_batch, physics_batch

from scimeta import problems
from scimeta.errors import ConfigError
from scimeta.meta import PhysicsLoss, ScaledMSE, get_learner
from scimeta.meta._fast import SequentialPlan
from scimeta.nn import CoordinateMLP, Rescaled
from scimeta.runtime.config import from_dict
from scimeta.train.config import TrainConfig
from scimeta.train.models import build_learner, build_model

DT = torch.float64


def net(context=False, dout=1):
    torch.manual_seed(0)
    m = CoordinateMLP(2, dout, hidden=(6, 5), context_dim=3 if context else 0,
                      periods=[None, 0.8], periodic_modes=2).to(DT)
    return Rescaled(m, [0.1, -0.4], [1.3, 0.9], [0.2] * dout, [1.7, 0.3][:dout], dtype=DT)


def test_scaled_mse_is_the_normalized_error():
    model = net(dout=2)
    pred, y = torch.randn(5, 2, dtype=DT), torch.randn(5, 2, dtype=DT)
    want = (((pred - y) / torch.tensor([1.7, 0.3], dtype=DT)) ** 2).mean()
    assert torch.allclose(ScaledMSE(model)(pred, y), want, rtol=1e-15, atol=0)
    with pytest.raises(ConfigError, match="output scale"):
        ScaledMSE(torch.nn.Linear(2, 1))


def test_a_normalized_run_takes_the_hand_batched_path():
    cfg = from_dict(TrainConfig, {"data": {"train": "x.h5"},
                                  "model": {"hidden": [6, 5], "normalize": "both"}})
    norm = {"lo": [0.0, -1.0], "hi": [1.0, 1.0], "y_shift": [0.1], "y_scale": [0.4]}
    model = build_model(cfg, 2, 1, norm, 0).to(DT)
    learner = build_learner(cfg, model, None, "maml")
    assert isinstance(learner.loss, ScaledMSE)
    assert isinstance(learner._fast, SequentialPlan) and learner._fast.scaled_error


@pytest.mark.parametrize("algorithm,context", [("maml", False), ("metasgd", False),
                                               ("anil", False), ("cavia", True)])
@pytest.mark.parametrize("first_order", [False, True])
def test_hand_batched_data_meta_gradient_equals_generic(algorithm, context, first_order):
    model, entry = net(context, dout=2), get_learner(algorithm)
    g = torch.Generator().manual_seed(1)
    b = data_batch()
    b = b._replace(support_y=torch.randn(4, 5, 2, generator=g, dtype=DT),
                   query_y=torch.randn(4, 6, 2, generator=g, dtype=DT))
    assert_hand_path_equals_generic(
        lambda fast: entry.build(model, inner_lr=0.2, inner_steps=3, first_order=first_order,
                                 loss=ScaledMSE(model), fast=fast), b)


@pytest.mark.parametrize("algorithm,context", [("maml", False), ("cavia", True)])
@pytest.mark.parametrize("first_order", [False, True])
def test_hand_batched_physics_meta_gradient_equals_generic(algorithm, context, first_order):
    fam = problems.get("burgers")
    physics = PhysicsLoss(fam, 0.3, "inner", scale=[2.0])
    model, entry = net(context), get_learner(algorithm)
    assert_hand_path_equals_generic(
        lambda fast: entry.build(model, inner_lr=0.05, inner_steps=2, physics=physics,
                                 first_order=first_order, loss=ScaledMSE(model), fast=fast),
        physics_batch(fam, 2, 1))


def test_reptile_loss_and_pseudo_gradient_equal_generic():
    model, entry = net(), get_learner("reptile")
    fast = entry.build(model, inner_lr=0.1, inner_steps=3, loss=ScaledMSE(model), fast=True)
    slow = entry.build(model, inner_lr=0.1, inner_steps=3, loss=ScaledMSE(model), fast=False)
    assert isinstance(fast._fast, SequentialPlan) and slow._fast is None
    p, b = fast.init_params(), data_batch()
    (la, ga), (lb, gb) = fast.meta_gradient(p, b), slow.meta_gradient(p, b)
    assert torch.allclose(la, lb, rtol=1e-12, atol=0)
    for n in ga:
        assert torch.allclose(ga[n], gb[n], rtol=1e-11, atol=1e-14), n


@pytest.mark.parametrize("physics", [False, True])
def test_support_grads_equal_vmap_grad(physics):
    fam = problems.get("burgers")
    loss = PhysicsLoss(fam, 0.5, "inner") if physics else None
    model = net()
    fast = get_learner("maml").build(model, inner_lr=0.1, inner_steps=1, physics=loss,
                                      loss=ScaledMSE(model), fast=True)
    slow = get_learner("maml").build(model, inner_lr=0.1, inner_steps=1, physics=loss,
                                      loss=ScaledMSE(model), fast=False)
    assert fast._fast is not None and slow._fast is None
    p = {k: v.detach() for k, v in fast.init_params().items()}
    g = torch.Generator().manual_seed(3)
    per_task = {k: v.unsqueeze(0).repeat(3, *[1] * v.dim())
                + 0.05 * torch.randn(3, *v.shape, generator=g, dtype=DT) for k, v in p.items()}
    batch = physics_batch(fam, 2, 1)
    la, ga = fast.support_grads(per_task, {}, batch)
    lb, gb = slow.support_grads(per_task, {}, batch)
    assert torch.allclose(la, lb, rtol=1e-12, atol=0)
    for n in ga:
        assert torch.allclose(ga[n], gb[n], rtol=1e-11, atol=1e-14), n


def test_another_models_scale_takes_the_generic_path():
    model, other = net(), net()
    learner = get_learner("maml").build(model, loss=ScaledMSE(other))
    assert learner._fast is None


def test_the_learner_names_its_path():
    fam = problems.get("burgers")
    model = net()
    plain = get_learner("maml").build(model, loss=ScaledMSE(model))
    physics = get_learner("maml").build(model, loss=ScaledMSE(model),
                                        physics=PhysicsLoss(fam, 0.1, "inner"))
    generic = get_learner("maml").build(model, loss=lambda a, b: (a - b).abs().mean())
    assert (plain.path, physics.path, generic.path) == (
        "hand-batched", "hand-batched + Taylor", "torch.func")
