"""Meta-SGD, ANIL, MAML++ options and Reptile against MAML and closed forms (float64).

Tolerances: identities between learners 1e-12 (round-off); closed forms on
quadratic tasks 1e-10; finite differences (central, h = 1e-6) relative 1e-6.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scimeta.errors import ConfigError
from scimeta.meta import ANIL, MAML, RATE_PREFIX, MetaSGD, Reptile, TaskBatch
from scimeta.nn import CoordinateMLP

DT = torch.float64


def batch_of(n_tasks=4, k=6, q=5, d_in=1, d_out=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=DT)  # noqa: E731
    return TaskBatch(r(n_tasks, k, d_in), r(n_tasks, k, d_out), r(n_tasks, q, d_in),
                     r(n_tasks, q, d_out))


def mlp(seed=0, act="tanh"):
    torch.manual_seed(seed)
    return CoordinateMLP(1, 2, hidden=(6, 5), activation=act).to(DT)


def grads_of(learner, params, batch):
    loss = learner.meta_loss(params, batch)
    return loss, dict(zip(params, torch.autograd.grad(loss, list(params.values())), strict=True))


def assert_same(a, b, names, tol=1e-12):
    for n in names:
        assert torch.allclose(a[n], b[n], rtol=tol, atol=tol * 1e-2), n


def fd_directional(loss_fn, params, direction, h=1e-6):
    with torch.no_grad():
        plus = loss_fn({k: v + h * direction[k] for k, v in params.items()})
        minus = loss_fn({k: v - h * direction[k] for k, v in params.items()})
    return (plus - minus) / (2 * h)


@pytest.mark.parametrize("fast", [False, None])
def test_metasgd_with_equal_rates_is_maml(fast):
    model, batch = mlp(), batch_of()
    maml = MAML(model, inner_lr=0.07, inner_steps=3, fast=fast)
    msgd = MetaSGD(model, inner_lr=0.07, inner_steps=3, fast=fast)
    p = msgd.init_params()
    rates = [k for k in p if k.startswith(RATE_PREFIX)]
    assert sorted(rates) == sorted(RATE_PREFIX + n for n in maml.names)
    assert all(torch.all(p[k] == 0.07) for k in rates)
    loss_a, ga = grads_of(maml, maml.init_params(), batch)
    loss_b, gb = grads_of(msgd, p, batch)
    assert torch.allclose(loss_a, loss_b, rtol=1e-12)
    assert_same(ga, gb, maml.names)


def test_metasgd_and_per_step_rate_gradients_match_finite_differences():
    batch = batch_of()
    for learner in (MetaSGD(mlp(), inner_lr=0.05, inner_steps=2, fast=False),
                    MAML(mlp(), inner_lr=0.05, inner_steps=2, per_step_lrs=True)):
        p = learner.init_params()
        g = torch.Generator().manual_seed(5)
        for _ in range(3):
            v = {k: torch.randn(t.shape, generator=g, dtype=DT) for k, t in p.items()}
            _, grads = grads_of(learner, p, batch)
            exact = sum((grads[k] * v[k]).sum() for k in p)
            fd = fd_directional(lambda q, lrn=learner: lrn.meta_loss(q, batch), p, v)
            assert abs(exact - fd) <= 1e-6 * abs(fd)


@pytest.mark.parametrize("fast", [False, None])
def test_maml_plus_plus_options_reduce_to_maml(fast):
    model, batch = mlp(), batch_of()
    maml = MAML(model, inner_lr=0.05, inner_steps=3, fast=fast)
    loss_ref, g_ref = grads_of(maml, maml.init_params(), batch)
    last = MAML(model, inner_lr=0.05, inner_steps=3, multi_step_loss=True,
                step_weights=(0.0, 0.0, 1.0), fast=fast)
    per_step = MAML(model, inner_lr=0.05, inner_steps=3, per_step_lrs=True, fast=fast)
    for learner in (last, per_step):
        p = learner.init_params()
        loss, g = grads_of(learner, p, batch)
        assert torch.allclose(loss, loss_ref, rtol=1e-12)
        assert_same(g, g_ref, maml.names)
    assert len([k for k in per_step.init_params() if k.startswith(RATE_PREFIX)]) == 3 * 6
    # uniform multi-step loss = mean of the MAML losses after 1, 2, 3 steps
    uniform = MAML(model, inner_lr=0.05, inner_steps=3, multi_step_loss=True, fast=fast)
    p = uniform.init_params()
    parts = [MAML(model, inner_lr=0.05, inner_steps=k, fast=fast).meta_loss(p, batch)
             for k in (1, 2, 3)]
    assert torch.allclose(uniform.meta_loss(p, batch), torch.stack(parts).mean(), rtol=1e-12)


@pytest.mark.parametrize("fast", [False, None])
@pytest.mark.parametrize("first_order", [False, True])
def test_anil_adapts_head_only_and_matches_manual_gradient(first_order, fast):
    model, batch = mlp(), batch_of(n_tasks=3)
    anil = ANIL(model, inner_lr=0.1, inner_steps=2, first_order=first_order, fast=fast)
    assert anil.adapted == ["net.4.weight", "net.4.bias"]
    assert anil.body == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
    assert ANIL(model, head=lambda n: n.startswith("net.4")).adapted == anil.adapted
    p = anil.init_params()
    phi = anil.adapt(p, batch.support_x[0], batch.support_y[0])
    for n in anil.body:
        assert torch.equal(phi[n], p[n])
    assert not torch.equal(phi["net.4.weight"], p["net.4.weight"])
    _, g = grads_of(anil, p, batch)
    # manual: plain autograd, per task, head-only inner loop
    total = 0.0
    for i in range(3):
        head = [p["net.4.weight"], p["net.4.bias"]]
        for _ in range(2):
            q = {**p, "net.4.weight": head[0], "net.4.bias": head[1]}
            loss = ((torch.func.functional_call(model, q, (batch.support_x[i],))
                     - batch.support_y[i]) ** 2).mean()
            gh = torch.autograd.grad(loss, head, create_graph=not first_order)
            head = [w - 0.1 * gw for w, gw in zip(head, gh, strict=True)]
        q = {**p, "net.4.weight": head[0], "net.4.bias": head[1]}
        total = total + ((torch.func.functional_call(model, q, (batch.query_x[i],))
                          - batch.query_y[i]) ** 2).mean() / 3
    manual = dict(zip(p, torch.autograd.grad(total, list(p.values())), strict=True))
    assert_same(g, manual, anil.names)
    with pytest.raises(ConfigError, match="head"):
        ANIL(model, head="nope")


def test_reptile_pseudo_gradient_closed_form():
    g = torch.Generator().manual_seed(2)
    n_tasks, d, k, alpha, steps = 4, 3, 7, 0.05, 3
    xs = torch.randn(n_tasks, k, d, generator=g, dtype=DT)
    w_star = torch.randn(n_tasks, d, generator=g, dtype=DT)
    batch = TaskBatch(xs, xs @ w_star[..., None], xs[:, :2], (xs @ w_star[..., None])[:, :2])
    torch.manual_seed(0)
    model = nn.Linear(d, 1, bias=False).to(DT)
    reptile = Reptile(model, inner_lr=alpha, inner_steps=steps)
    p = reptile.init_params()
    w = p["weight"].detach()[0]
    eye = torch.eye(d, dtype=DT)
    expected = torch.stack([
        (eye - torch.linalg.matrix_power(eye - alpha * 2 * x.T @ x / k, steps)) @ (w - ws)
        for x, ws in zip(xs, w_star, strict=True)]).mean(0)
    got = reptile.meta_grad(p, batch)["weight"][0]
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)
    new = reptile.update(p, batch, epsilon=0.5)
    assert torch.allclose(new["weight"][0], w - 0.5 * expected, atol=1e-10)
    assert new["weight"].is_leaf and new["weight"].requires_grad
    assert not reptile.meta_loss(p, batch).requires_grad


def test_variant_argument_errors():
    with pytest.raises(ConfigError, match="per_step_lrs"):
        MetaSGD(mlp(), per_step_lrs=True)
    with pytest.raises(ConfigError, match="first_order"):
        Reptile(mlp(), first_order=True)
    with pytest.raises(ConfigError, match="step_weights"):
        MAML(mlp(), inner_steps=2, multi_step_loss=True, step_weights=(1.0,))
    with pytest.raises(ConfigError, match="epsilon"):
        Reptile(mlp()).update(Reptile(mlp()).init_params(), batch_of(), epsilon=0)
    with pytest.raises(ConfigError, match="fast=True"):
        MAML(nn.Sequential(nn.Linear(1, 3), nn.Softplus(), nn.Linear(3, 2)), fast=True)


@pytest.mark.parametrize("chunk", [None, 3])
@pytest.mark.parametrize("make", [
    lambda fast, chunk: MAML(mlp(), inner_lr=0.1, inner_steps=3, fast=fast, chunk_size=chunk),
    lambda fast, chunk: ANIL(mlp(), inner_lr=0.1, inner_steps=3, fast=fast, chunk_size=chunk),
    lambda fast, chunk: MetaSGD(mlp(), inner_lr=0.1, inner_steps=3, fast=fast,
                                chunk_size=chunk),
    lambda fast, chunk: Reptile(mlp(act="relu"), inner_lr=0.1, inner_steps=3, fast=fast,
                                chunk_size=chunk),
])
def test_adapt_batch_hand_batched_equals_vmap(make, chunk):
    """adapt_batch on the hand-batched path = the torch.func path, every parameter
    [B, *shape] (shared ones too), at the default steps and at 0 steps."""
    fast, slow = make(None, chunk), make(False, chunk)
    assert fast._fast is not None and slow._fast is None
    params = fast.init_params()
    with torch.no_grad():  # learned rates that differ per entry
        for k in params:
            if k.startswith(RATE_PREFIX):
                params[k].mul_(torch.linspace(0.5, 1.5, params[k].numel(),
                                              dtype=DT).view_as(params[k]))
    batch = batch_of(n_tasks=5)
    for steps in (None, 0):
        a, b = fast.adapt_batch(params, batch, steps), slow.adapt_batch(params, batch, steps)
        assert set(a) == set(b) == set(fast.names)
        for n in fast.names:
            assert a[n].shape == (5, *params[n].shape), n
        assert_same(a, b, fast.names)
    if isinstance(fast, MAML) and type(fast) is not Reptile:  # differentiable through it
        x = batch.query_x
        ga = torch.autograd.grad(fast.predict(fast.adapt_batch(params, batch), x).sum(),
                                 params[fast.names[0]])[0]
        gb = torch.autograd.grad(slow.predict(slow.adapt_batch(params, batch), x).sum(),
                                 params[fast.names[0]])[0]
        assert torch.allclose(ga, gb, rtol=1e-10, atol=1e-12)


def test_reptile_one_adaptation_matches_the_two_call_form():
    """meta_gradient (one adaptation) = (meta_loss, meta_grad) on the torch.func path."""
    fast, slow = (Reptile(mlp(), inner_lr=0.05, inner_steps=4, fast=f) for f in (None, False))
    params, batch = fast.init_params(), batch_of(n_tasks=6)
    loss, grads = fast.meta_gradient(params, batch)
    assert torch.allclose(loss, slow.meta_loss(params, batch), rtol=1e-12, atol=0)
    assert_same(grads, slow.meta_grad(params, batch), fast.names)
    q_loss, q_grads = Reptile(mlp(), inner_lr=0.05, inner_steps=4,
                              use_query=True).meta_gradient(params, batch)
    assert torch.allclose(q_loss, slow.meta_loss(params, batch), rtol=1e-12, atol=0)
    assert not torch.allclose(q_grads[fast.names[0]], grads[fast.names[0]])
