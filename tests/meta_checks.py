"""Shared pieces of the meta-learning tests: a float64 physics-informed task batch and
the checks that two learners give the same meta-loss and meta-gradient, that Taylor
mode equals nested jvp, and that the hand-written physics gradient equals autograd."""

from __future__ import annotations

import torch

from scimeta.meta import TaskBatch

DT = torch.float64


def physics_batch(family, din: int, dout: int, n_tasks: int = 3, seed: int = 0) -> TaskBatch:
    """Random float64 tasks with K = 5, Q = 6, C = 7 and parameters in [0.3, 1.3)."""
    g = torch.Generator().manual_seed(seed)

    def r(n: int, d: int) -> torch.Tensor:
        return torch.rand(n_tasks, n, d, generator=g, dtype=DT)

    p = torch.rand(n_tasks, len(family.params), generator=g, dtype=DT) + 0.3
    return TaskBatch(r(5, din), torch.randn(n_tasks, 5, dout, generator=g, dtype=DT),
                     r(6, din), torch.randn(n_tasks, 6, dout, generator=g, dtype=DT),
                     r(7, din), p)


def data_batch(n: int = 4, seed: int = 0) -> TaskBatch:
    """Random float64 tasks with inputs (t, x) in [0, 1)², one output, K = 5, Q = 6."""
    g = torch.Generator().manual_seed(seed)
    return TaskBatch(torch.rand(n, 5, 2, generator=g, dtype=DT),
                     torch.randn(n, 5, 1, generator=g, dtype=DT),
                     torch.rand(n, 6, 2, generator=g, dtype=DT),
                     torch.randn(n, 6, 1, generator=g, dtype=DT))


def assert_hand_path_equals_generic(build, batch: TaskBatch) -> None:
    """``build(fast)`` makes a learner; the hand-batched one (``fast=True``: a
    ``SequentialPlan``, or a ``PhysicsPlan`` with its written-out inner gradient when
    the learner has a physics term) gives the generic path's meta-loss and
    meta-gradient (:func:`assert_same_meta_gradient`)."""
    from scimeta.meta._fast import SequentialPlan
    from scimeta.meta._fast_physics import PhysicsPlan

    fast, slow = build(True), build(False)
    if fast.physics is None:
        assert isinstance(fast._fast, SequentialPlan)
    else:
        assert isinstance(fast._fast, PhysicsPlan) and fast._fast.hand is not None
    assert slow._fast is None
    assert_same_meta_gradient(fast, slow, fast.init_params(), batch)


def assert_same_meta_gradient(a, b, params, batch, rtol_loss: float = 1e-12,
                              rtol_grad: float = 1e-11) -> list[torch.Tensor]:
    """Learners ``a`` and ``b`` give the same ``meta_loss`` and its gradient with
    respect to every entry of ``params`` (``b``'s gradients are returned)."""
    la, lb = a.meta_loss(params, batch), b.meta_loss(params, batch)
    assert torch.allclose(la, lb, rtol=rtol_loss, atol=0)
    ga = torch.autograd.grad(la, list(params.values()))
    gb = torch.autograd.grad(lb, list(params.values()))
    for x, y in zip(ga, gb, strict=True):
        assert torch.allclose(x, y, rtol=rtol_grad, atol=rtol_grad * 1e-2 * float(y.abs().max()))
    return list(gb)


def nested_derivative(u, x: torch.Tensor, col: int, order: int) -> torch.Tensor:
    """d^order u / dx_col^order at one point ``x`` ``[d]`` by nested forward-mode jvp."""
    from torch.func import jvp

    e = torch.zeros_like(x)
    e[col] = 1.0
    f = u
    for _ in range(order):
        f = (lambda g: (lambda xi: jvp(g, (xi,), (e,))[1]))(f)
    return f(x)


def assert_taylor_equals_nested(model, in_dim: int, orders: dict[int, int],
                                n_points: int) -> None:
    """Taylor mode on ``model``'s plan, with per-task weights (task 1 perturbed), gives the
    model's values to 1e-13 and its input derivatives up to ``orders`` to 1e-12
    (relative to their size) against nested ``jvp`` of ``functional_call``, at
    ``n_points`` random points per task."""
    from scimeta.meta._fast import SequentialPlan
    from scimeta.meta._taylor import TaylorMLP

    plan = SequentialPlan.build(model)
    assert plan is not None
    taylor = TaylorMLP(plan, orders)
    g = torch.Generator().manual_seed(1)
    p = dict(model.named_parameters())
    x = torch.rand(2, n_points, in_dim, generator=g, dtype=DT)
    pb = {k: torch.stack([v, v + 0.1 * torch.randn(v.shape, generator=g, dtype=DT)])
          for k, v in p.items()}
    from torch.func import functional_call

    y, d = taylor.forward(pb, x)
    for b in range(x.shape[0]):
        pt = {k: v[b] for k, v in pb.items()}

        def u(xi, pt=pt):
            return functional_call(model, pt, (xi.unsqueeze(0),)).squeeze(0)

        for i in range(x.shape[1]):
            assert torch.allclose(y[b, i], u(x[b, i]).detach(), rtol=0, atol=1e-13)
            for col, top in orders.items():
                for k in range(1, top + 1):
                    want = nested_derivative(u, x[b, i], col, k).detach()
                    scale = max(1.0, float(want.abs().max()))
                    assert torch.allclose(d[(col, k)][b, i], want, rtol=0,
                                          atol=1e-12 * scale), (col, k)


def assert_hand_grads_equal_autograd(plan, p: dict, batch: tuple, per_task: bool) -> None:
    """The hand-written physics inner gradient (``plan.hand``) of parameters ``p``
    (``[B, ...]`` when ``per_task``, else shared) on ``batch`` = (sx, sy, cx, tp) equals
    autograd's gradient of the summed per-task losses to 1e-12 (relative to its size)."""
    sx, sy, cx, tp = batch
    b = sx.shape[0]
    leaves = {k: (v if per_task else v.unsqueeze(0).expand(b, *v.shape)).clone()
              .requires_grad_() for k, v in p.items()}
    want = torch.autograd.grad(plan.stage_loss(leaves, sx, sy, cx, tp, "inner").sum(),
                               list(leaves.values()))
    got = plan.hand.grads(p, plan.hand.inputs(sx, cx), sy, cx, tp, 0, create_graph=False)
    for name, gw in zip(leaves, want, strict=True):
        scale = max(1.0, float(gw.abs().max()))
        assert torch.allclose(got[name], gw, rtol=0, atol=1e-12 * scale), name
