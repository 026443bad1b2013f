"""``MAML(..., compile=True)``: the hand-batched meta-loss through ``torch.compile``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch.func import grad_and_value

from ..batch import TaskBatch
from ..errors import ConfigError
from ..typing import Grads, Params
from ._fast import SequentialPlan
from ._fast_physics import PhysicsPlan

if TYPE_CHECKING:
    from ._maml import MAML


def compile_fast(learner: MAML) -> tuple[Callable[..., torch.Tensor],
                                       Callable[..., tuple[Grads, torch.Tensor]] | None]:
    """``torch.compile`` of the hand-batched meta-loss (``compile=True``).

    The hand-batched paths write the inner gradient out in plain tensor ops (the
    MSE's, or the physics-informed one of :mod:`._taylor_grad`), so the
    meta-gradient is one ordinary backward pass through the compiled graph. The
    generic path, and a physics term outside the inner loss or of derivative order
    4, nest autograd gradients whose double backward a compiled graph does not
    support.
    """
    plan = learner._fast
    ok = isinstance(plan, SequentialPlan) or (
        isinstance(plan, PhysicsPlan) and plan.hand is not None
        and plan.physics.applies("inner"))
    if not ok:
        raise ConfigError("compile=True needs a hand-batched path: an nn.Sequential MLP, "
                          "loss='mse', fast not False, and a physics term, if any, in "
                          "the inner loss with derivatives of order <= 3")
    loop, chunk = learner.loop, learner.chunk_size
    assert plan is not None

    def fast_meta_loss(params: Params, b: tuple) -> torch.Tensor:
        p, rates = learner.split(params)
        return plan.meta_loss(loop, p, rates, TaskBatch(*b), chunk)

    # meta_loss: the forward compiled (autograd then runs the compiled backward);
    # meta_gradient: loss and gradient traced as one graph (torch.func), which
    # lets the compiler fuse across the forward/backward boundary (faster on
    # small networks); both compile lazily, on first use. Not for the physics
    # path: its residual cotangent is a torch.func.grad nested inside, and the
    # compiled nested transform gave wrong gradients with torch 2.13 (eager
    # torch.func, and the compiled forward + autograd backward, are exact; tested)
    whole = None if isinstance(plan, PhysicsPlan) else torch.compile(
        grad_and_value(fast_meta_loss), dynamic=False)
    return torch.compile(fast_meta_loss, dynamic=False), whole
