"""Per-task support losses and gradients for test-time adaptation loops.

The step of every adaptation loop (``adapt_curve``, the PINN protocol) is the
gradient of each task's support loss at per-task parameters. Where the learner has a
hand-batched path it computes them (the MSE's analytic backward, or the written-out
physics-informed reverse pass of :mod:`._taylor_grad`); otherwise ``vmap`` of
``grad``. Both agree to round-off (tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.func import grad_and_value, vmap

from ..batch import TaskBatch
from ..typing import Params
from ._fast import SequentialPlan
from ._fast_physics import PhysicsPlan

if TYPE_CHECKING:
    from ._maml import MAML


def support_grads(learner: MAML, fast: Params, fixed: Params,
                  batch: TaskBatch) -> tuple[torch.Tensor, Params]:
    """See :meth:`MAML.support_grads <scimeta.meta.MAML.support_grads>`."""
    sx, sy, _, _, cx, tp = batch
    plan = learner._fast
    p = {**fixed, **fast}
    physics = learner.physics is not None and learner.physics.applies("inner")
    data_plan = plan if isinstance(plan, SequentialPlan) else (
        plan.plan if isinstance(plan, PhysicsPlan) and not physics else None)
    hand = plan.hand if isinstance(plan, PhysicsPlan) and physics and cx is not None \
        and tp is not None else None
    if data_plan is not None or hand is not None:
        lowest = (data_plan or plan.plan).lowest(fast)  # type: ignore[union-attr]
        with torch.no_grad():
            if hand is not None:
                assert isinstance(plan, PhysicsPlan) and cx is not None and tp is not None
                g = hand.grads(p, hand.inputs(sx, cx), sy, cx, tp, lowest,
                               create_graph=False, only=fast.keys())
                loss = plan.stage_loss(p, sx, sy, cx, tp, "inner")
            else:
                assert data_plan is not None
                g = data_plan.grads(p, sx, sy, lowest, only=fast.keys())
                loss = data_plan.task_mse(p, sx, sy)
        return loss, {n: g[n] for n in fast}

    def support(f: Params, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor | None,
                t: torch.Tensor | None) -> torch.Tensor:
        return learner.support_loss({**fixed, **f}, x, y, c, t)

    dims = 0 if physics and cx is not None else None
    if dims is None:
        cx = tp = None
    g, loss = vmap(grad_and_value(support), in_dims=(0, 0, 0, dims, dims))(
        fast, sx, sy, cx, tp)
    return loss.detach(), {n: v.detach() for n, v in g.items()}
