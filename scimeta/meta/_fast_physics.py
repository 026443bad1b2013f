"""Hand-batched physics-informed meta-loss for plain MLPs.

The ``torch.func`` path takes the residual's input derivatives by nested ``jvp``
per collocation point under ``vmap``; for small networks the per-op overhead of
those transforms dominates. Here the network's values and input derivatives come
from :class:`~scimeta.meta._taylor.TaylorMLP` (Taylor-mode propagation, batched
over tasks with matrix products), the residual from the same
:meth:`PhysicsLoss.assemble <scimeta.meta.PhysicsLoss.assemble>` as the generic
path, and the inner gradient from ``torch.autograd.grad`` on the sum of the
per-task losses with respect to per-task parameter copies ``[B, *shape]``
(``create_graph`` unless first order). The update is the learner's
:class:`~scimeta.meta.InnerLoop` rule, so the meta-loss equals the generic path's
to round-off (tested), including its second-order meta-gradient.
"""

from __future__ import annotations

import torch

from ..batch import TaskBatch
from ..typing import Params
from ._fast import SequentialPlan
from ._hand_loop import chunked_mean, unroll
from ._physics import PhysicsLoss
from ._taylor import MAX_ORDER, TaylorMLP
from ._taylor_grad import MAX_HAND_ORDER, TaylorGrad
from ._update import InnerLoop


def derivative_orders(physics: PhysicsLoss) -> dict[int, int] | None:
    """Input column -> highest order needed (t: 1), or None if a mixed or too-high
    derivative rules out the Taylor path."""
    orders = {0: 1}
    for cols in physics.derivatives.values():
        if len(set(cols)) != 1 or len(cols) > MAX_ORDER:
            return None
        orders[cols[0]] = max(orders.get(cols[0], 0), len(cols))
    return orders


class PhysicsPlan:
    """The hand-batched physics-informed path; build with :meth:`build` (None if ineligible)."""

    def __init__(self, plan: SequentialPlan, taylor: TaylorMLP, physics: PhysicsLoss) -> None:
        self.plan, self.taylor, self.physics = plan, taylor, physics
        #: the hand-written inner gradient (None: derivative orders above its reach)
        self.hand: TaylorGrad | None = (
            TaylorGrad(plan, taylor.orders, physics)
            if max(taylor.orders.values()) <= MAX_HAND_ORDER else None)

    @classmethod
    def build(cls, plan: SequentialPlan | None, physics: PhysicsLoss) -> PhysicsPlan | None:
        orders = derivative_orders(physics)
        if plan is None or orders is None:
            return None
        return cls(plan, TaylorMLP(plan, orders), physics)

    def residual_term(self, p: Params, cx: torch.Tensor, tp: torch.Tensor) -> torch.Tensor:
        """Per-task ``weight * mean(residual²)`` ``[B]`` at collocation points cx ``[B, N, d]``."""
        y, d = self.taylor.forward(p, cx)
        return self.physics.task_terms(cx, tp, y, d)

    def stage_loss(self, p: Params, x: torch.Tensor, y: torch.Tensor, cx: torch.Tensor,
                   tp: torch.Tensor, stage: str) -> torch.Tensor:
        """Per-task MSE (plus the physics term where it applies) ``[B]``."""
        loss = self.plan.task_mse(p, x, y)
        if self.physics.applies(stage):
            loss = loss + self.residual_term(p, cx, tp)
        return loss

    def task_losses(self, loop: InnerLoop, p: Params, rates: Params,
                    b: TaskBatch) -> torch.Tensor:
        """Per-task meta-objective ``[B]`` (query loss after the inner loop)."""
        sx, sy, qx, qy, cx, tp = b
        assert cx is not None and tp is not None  # checked by MAML._prepare
        if self.hand is not None and self.physics.applies("inner"):
            return self._task_losses_hand(self.hand, loop, p, rates, b)
        # autograd's inner gradient, on per-task copies [B, *shape] of what adapts
        n = sx.shape[0]
        start = {**p, **{k: p[k].unsqueeze(0).expand(n, *p[k].shape) for k in loop.adapted}}

        def grads(state: Params) -> tuple[Params, float]:
            with torch.enable_grad():
                src = {k: state[k] for k in loop.adapted}
                second = not loop.first_order and any(v.requires_grad for v in src.values())
                if not second:
                    src = {k: v.detach().requires_grad_() for k, v in src.items()}
                loss = self.stage_loss({**state, **src}, sx, sy, cx, tp, "inner").sum()
                g = torch.autograd.grad(loss, list(src.values()), create_graph=second)
            return dict(zip(src, g, strict=True)), 1.0

        return unroll(loop, start, rates, grads,
                      lambda state: self.stage_loss(state, qx, qy, cx, tp, "outer"), sx)

    def _task_losses_hand(self, hand: TaylorGrad, loop: InnerLoop, p: Params, rates: Params,
                          b: TaskBatch) -> torch.Tensor:
        """:meth:`task_losses` with the inner gradient written out (:mod:`._taylor_grad`)."""
        sx, sy, qx, qy, cx, tp = b
        assert cx is not None and tp is not None
        lowest, only = self.plan.lowest(loop.adapted), frozenset(loop.adapted)
        inputs = hand.inputs(sx, cx)

        def grads(state: Params) -> tuple[Params, float]:
            second = not loop.first_order and any(state[n].requires_grad
                                                  for n in loop.adapted)
            src = state if second else {n: v.detach() for n, v in state.items()}
            return hand.grads(src, inputs, sy, cx, tp, lowest, create_graph=second,
                              only=only), 1.0

        return unroll(loop, p, rates, grads,
                      lambda state: self.stage_loss(state, qx, qy, cx, tp, "outer"), sx)

    def meta_loss(self, loop: InnerLoop, p: Params, rates: Params, b: TaskBatch,
                  chunk_size: int | None = None) -> torch.Tensor:
        """Mean over tasks of the meta-objective (chunked like ``vmap``)."""
        return chunked_mean(lambda part: self.task_losses(loop, p, rates, part), b, chunk_size)
