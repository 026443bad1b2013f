"""The meta-learning seams: one inner-update rule, public pure per-task functions,
one registry of learners, and a train step separate from its callbacks.

Exact answers (float64): on a linear model with the MSE the support loss is the
quadratic ½(w − w*)ᵀH(w − w*) + const with H = 2XᵀX/K, so K inner steps give
φ_K − w* = (I − αH)^K (w − w*) and the per-task meta-gradient is
(I − αH_s)^K ∇L_q(φ_K) (ORACLES.md, MAML on quadratic tasks). Tolerances:
closed forms 1e-12 relative, path-vs-path 1e-12 (round-off only).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import grad, vmap

from scimeta.errors import ConfigError, UnknownNameError
from scimeta.meta import (
    ANIL,
    MAML,
    RATE_PREFIX,
    InnerLoop,
    InnerRule,
    LearnerEntry,
    MetaSGD,
    TaskBatch,
    get_learner,
    learner_names,
    register_learner,
)
from scimeta.meta._learners import _LEARNERS
from scimeta.nn import CoordinateMLP
from scimeta.train.callbacks import Callback, Checkpointer, StepInfo
from scimeta.train.step import meta_step

DT = torch.float64


def linear_task(d=3, k=8, q=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, generator=g, dtype=DT)
    sx, qx = torch.randn(k, d, generator=g, dtype=DT), torch.randn(q, d, generator=g, dtype=DT)
    return sx, (sx @ w_true)[:, None], qx, (qx @ w_true)[:, None] + 0.1, w_true


def linear_model(d=3, seed=1):
    torch.manual_seed(seed)
    return nn.Linear(d, 1, bias=False).to(DT)


def mlp_batch(n_tasks=4, k=6, q=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = lambda n: torch.rand(n_tasks, n, 1, generator=g, dtype=DT) * 2 - 1  # noqa: E731
    y = lambda n: torch.randn(n_tasks, n, 2, generator=g, dtype=DT)  # noqa: E731
    return TaskBatch(x(k), y(k), x(q), y(q))


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(),
                         nn.Linear(6, 2)).to(DT)


# ---- the inner-update rule ------------------------------------------------
def test_rule_modes_keys_and_update():
    p = {"w": torch.ones(2, 3, dtype=DT), "b": torch.zeros(2, dtype=DT)}
    g = {"w": torch.full((2, 3), 2.0, dtype=DT), "b": torch.ones(2, dtype=DT)}
    fixed = InnerRule(0.1)
    assert fixed.init(p, ["w", "b"]) == {} and not fixed.learned
    out = fixed.update(p, g, {}, 0)
    assert torch.equal(out["w"], p["w"] - 0.1 * g["w"])
    fused = fixed.update(p, g, {}, 0, grad_scale=0.5, fused=True)
    assert torch.allclose(fused["w"], p["w"] - 0.05 * g["w"], rtol=0, atol=1e-15)

    per_param = InnerRule(0.1, "per_parameter")
    rates = per_param.init(p, ["w"])
    assert list(rates) == [f"{RATE_PREFIX}w"] and rates[f"{RATE_PREFIX}w"].shape == (2, 3)
    rates[f"{RATE_PREFIX}w"] = torch.arange(6, dtype=DT).view(2, 3)
    out = per_param.update({"w": p["w"]}, g, rates, 3)
    assert torch.equal(out["w"], p["w"] - torch.arange(6, dtype=DT).view(2, 3) * 2.0)

    per_step = InnerRule(0.1, "per_step", steps=2)
    rates = per_step.init(p, ["w", "b"])
    assert sorted(rates) == sorted(f"{RATE_PREFIX}step{k}.{n}" for k in (0, 1) for n in "wb")
    assert all(r.dim() == 0 and r.requires_grad for r in rates.values())
    with pytest.raises(ConfigError, match=r"inner_lr\.step2\.w"):
        per_step.update({"w": p["w"]}, g, rates, 2)
    with pytest.raises(ConfigError, match="rate mode 'adam'"):
        InnerRule(0.1, "adam")


class HalvedRule(InnerRule):
    """A different update (half the step): proves every path reads the learner's rule."""

    def update(self, fast, grads, rates, step, *, grad_scale=1.0, fused=False):
        return super().update(fast, grads, rates, step, grad_scale=0.5 * grad_scale,
                              fused=fused)


@pytest.mark.parametrize("cls", [MAML, MetaSGD])
def test_both_paths_run_the_learners_rule(cls):
    b = mlp_batch()
    fast, slow = cls(mlp(), 0.3, 2, fast=True), cls(mlp(), 0.3, 2, fast=False)
    p = fast.init_params()
    assert torch.allclose(fast.meta_loss(p, b), slow.meta_loss(p, b), rtol=1e-12, atol=0)
    before = fast.meta_loss(p, b)
    for learner in (fast, slow):
        rule = HalvedRule(learner.rule.lr, learner.rule.mode, learner.rule.steps)
        learner.loop = InnerLoop(rule, 2, learner.loop.adapted)
    halved = fast.meta_loss(p, b)
    assert not torch.allclose(halved, before)
    assert torch.allclose(halved, slow.meta_loss(p, b), rtol=1e-12, atol=0)
    if cls is MAML:  # half the rate is the same as rate/2
        assert torch.allclose(halved, cls(mlp(), 0.15, 2).meta_loss(p, b), rtol=1e-12, atol=0)


# ---- public pure per-task functions: closed forms ------------------------
@pytest.mark.parametrize("steps", [0, 1, 4])
def test_inner_loop_closed_form_on_linear_least_squares(steps):
    sx, sy, _, _, w_true = linear_task()
    maml = MAML(linear_model(), inner_lr=0.05, inner_steps=steps)
    p = maml.init_params()
    h = 2 * sx.T @ sx / sx.shape[0]
    contraction = torch.linalg.matrix_power(torch.eye(3, dtype=DT) - 0.05 * h, steps)
    want = w_true + contraction @ (p["weight"][0] - w_true)
    phi = maml.inner_loop(p, sx, sy)
    assert torch.allclose(phi["weight"][0], want, rtol=1e-12, atol=1e-14)
    trace = maml.inner_trajectory(p, sx, sy)
    assert len(trace) == steps + 1 and trace[0]["weight"] is p["weight"]
    assert torch.allclose(trace[-1]["weight"], phi["weight"], rtol=0, atol=0)
    # support_loss is the quadratic: its gradient at φ is H(φ − w*)
    g = grad(maml.support_loss)(phi, sx, sy)["weight"][0]
    assert torch.allclose(g, h @ (phi["weight"][0] - w_true), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("steps", [1, 3])
def test_task_meta_gradient_closed_form(steps):
    sx, sy, qx, qy, _ = linear_task()
    maml = MAML(linear_model(), inner_lr=0.05, inner_steps=steps)
    p = maml.init_params()
    h = 2 * sx.T @ sx / sx.shape[0]
    phi = maml.inner_loop(p, sx, sy)
    g_query = grad(maml.query_loss)(phi, qx, qy)["weight"][0]
    contraction = torch.linalg.matrix_power(torch.eye(3, dtype=DT) - 0.05 * h, steps)
    got = grad(maml.task_meta_loss)(p, sx, sy, qx, qy)["weight"][0]
    assert torch.allclose(got, contraction @ g_query, rtol=1e-12, atol=1e-14)
    # meta_loss over a batch is the mean of task_meta_loss (vmap of the public function)
    b = TaskBatch(*(torch.stack([v, v.flip(0)]) for v in (sx, sy, qx, qy)))
    per_task = vmap(maml.task_meta_loss, in_dims=(None, 0, 0, 0, 0))(p, *b[:4])
    assert torch.allclose(maml.meta_loss(p, b), per_task.mean(), rtol=1e-14, atol=0)


# ---- one registry of learners --------------------------------------------
def test_registry_declares_every_learner():
    assert learner_names("algorithm") == ("maml", "fomaml", "metasgd", "anil", "cavia",
                                          "mamlpp", "reptile", "decoder")
    assert learner_names("baseline") == ("fomaml", "joint", "conditioned", "decoder")
    assert [n for n in learner_names() if not get_learner(n).differentiable] == ["reptile"]
    assert isinstance(get_learner("anil").build(mlp()), ANIL)
    with pytest.raises(UnknownNameError, match="did you mean 'maml'"):
        get_learner("mamll")
    with pytest.raises(UnknownNameError, match="unknown baseline 'metasgd'"):
        get_learner("metasgd", "baseline")
    with pytest.raises(ConfigError, match="registered already"):
        register_learner(LearnerEntry("maml", MAML, "again"))


@pytest.mark.parametrize("name", learner_names())
def test_meta_gradient_of_every_learner(name):
    """(loss, gradient) for every learner: autograd of meta_loss, or Reptile's θ − mean φ."""
    model = mlp() if name != "cavia" else CoordinateMLP(1, 2, (6, 6), context_dim=2).to(DT)
    learner = get_learner(name).build(model, inner_lr=0.2, inner_steps=2)
    b = mlp_batch()
    p = learner.init_params()
    loss, g = learner.meta_gradient(p, b)
    assert not loss.requires_grad and math.isfinite(float(loss))
    if learner.differentiable_objective:
        want = torch.autograd.grad(learner.meta_loss(p, b), list(p.values()), allow_unused=True)
        for (n, got), w in zip(g.items(), want, strict=True):
            assert (got is None) == (w is None), n
            if w is not None:
                assert torch.allclose(got, w, rtol=1e-12, atol=1e-15), n
    else:
        phi = learner.adapt_batch(p, b)
        for n in learner.names:
            assert torch.allclose(g[n], p[n] - phi[n].mean(0), rtol=1e-12, atol=1e-15)


def test_config_reads_the_registry(tmp_path):
    from scimeta.train.config import DataConfig, MetaConfig, TrainConfig
    from scimeta.train.models import build_learner

    with pytest.raises(UnknownNameError, match=r"meta\.algorithm.*did you mean 'anil'"):
        TrainConfig(DataConfig("x.h5"), meta=MetaConfig(algorithm="anill"))
    with pytest.raises(UnknownNameError, match=r"in meta\.baselines"):
        TrainConfig(DataConfig("x.h5"), meta=MetaConfig(baselines=("maml2",)))

    class Halfway(MAML):
        pass

    register_learner(LearnerEntry("halfway", Halfway, "a lab's own learner",
                                  {"first_order": True}))
    try:
        cfg = TrainConfig(DataConfig("x.h5"), meta=MetaConfig(algorithm="halfway"))
        learner = build_learner(cfg, mlp(), None)
        assert type(learner) is Halfway and learner.first_order
    finally:
        _LEARNERS.pop("halfway")


# ---- the train step and its callbacks ------------------------------------
def test_meta_step_reduces_clips_and_refuses_non_finite():
    learner = MAML(mlp(), 0.2, 1)
    p = learner.init_params()
    opt = torch.optim.SGD(p.values(), lr=0.5)
    b = mlp_batch()
    _, want = learner.meta_gradient(p, b)
    seen = []

    def double(grads, loss):
        seen.append(sorted(grads))
        for v in grads.values():
            v.mul_(2)
        return 2 * loss  # the reported loss is the reducer's

    before = {n: v.detach().clone() for n, v in p.items()}
    loss = meta_step(learner, p, b, opt, reduce=double)
    assert loss == 2 * float(learner.meta_loss(before, b))
    assert seen == [sorted(p)]
    for n in p:  # SGD: θ − lr · (2 g)
        assert torch.allclose(p[n].detach(), before[n] - 0.5 * 2 * want[n], rtol=1e-12,
                              atol=1e-15)
    bad = b._replace(query_y=torch.full_like(b.query_y, math.nan))
    now = {n: v.detach().clone() for n, v in p.items()}
    assert math.isnan(meta_step(learner, p, bad, opt))
    assert all(torch.equal(p[n].detach(), now[n]) for n in p)


def test_step_info_schedule_and_checkpointer():
    assert [i for i in range(1, 11) if StepInfo("maml", i, 10, 0.0).due(4)] == [4, 8, 10]
    saved = []
    cp = Checkpointer(3, saved.append)
    for i in range(1, 8):
        cp.on_step(StepInfo("maml", i, 7, 0.0))
    cp.on_stop(StepInfo("maml", 7, 7, 0.0))
    assert saved == [3, 6, 7]
    assert Callback().on_step(StepInfo("maml", 1, 1, 0.0)) is None
