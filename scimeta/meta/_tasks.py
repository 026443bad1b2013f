"""The per-task functions of every learner, public and pure.

:class:`TaskFunctions` is the part of :class:`~scimeta.meta.MAML` that a caller can
differentiate: one task's support loss, inner loop, query loss and meta-objective.
Each is a pure function of its tensors — it reads nothing but the learner's fixed
configuration (``model``, ``loss``, ``physics``, ``loop``) — so ``torch.func`` can
transform it: the learners vmap them over tasks, the Bayesian and landscape modules
differentiate them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.func import functional_call, grad

from ..errors import ConfigError
from ..typing import LossFn, Params, ParamsLike

if TYPE_CHECKING:
    from torch import nn

    from ._physics import PhysicsLoss
    from ._update import InnerLoop


def _detached(d: ParamsLike) -> Params:
    return {k: v.detach() for k, v in d.items()}


class ScaledMSE:
    """The MSE in units of a :class:`~scimeta.nn.Rescaled` model's output spread,
    ``mean(((pred − y) / model.y_scale)²)`` over points and channels: the loss of a
    normalized run, in which every channel counts alike whatever its units.

    A callable ``(pred, target) -> scalar`` like any custom loss; unlike one, the
    hand-batched paths recognise it when ``model`` is the learner's own model (their
    error is divided by the scale, :attr:`~._fast.SequentialPlan.scaled_error`), so a
    normalized run keeps the fast path.
    """

    def __init__(self, model: nn.Module) -> None:
        if not hasattr(model, "y_scale"):
            raise ConfigError(f"ScaledMSE needs a model with an output scale (Rescaled), "
                              f"got {type(model).__name__}")
        self.model = model

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        scale = self.model.y_scale
        assert isinstance(scale, torch.Tensor)
        return ((pred - target) / scale).square().mean()


class TaskFunctions:
    """Mixin: the per-task functions on a learner's ``model``, ``loss``, ``physics``
    and ``loop`` (:class:`~scimeta.meta.InnerLoop`)."""

    model: nn.Module
    loss: str | LossFn
    physics: PhysicsLoss | None
    loop: InnerLoop

    def split(self, params: ParamsLike) -> tuple[Params, Params]:  # defined by the learner
        raise NotImplementedError

    def _steps(self, steps: int | None) -> int:  # defined by the learner
        raise NotImplementedError

    # Each is a pure function of its tensors (no state is read or written but the
    # learner's fixed configuration), so torch.func can transform it: the meta-
    # learners vmap them over tasks, the Bayesian and landscape modules
    # differentiate them. One task's tensors: x [N, d_in], y [N, d_out],
    # collocation_x [C, d_in], task_params [P].
    def data_loss(self, params: ParamsLike, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The data misfit (``loss``, MSE by default) of the model at ``params`` (scalar)."""
        pred = functional_call(self.model, dict(params), (x,))
        if callable(self.loss):
            return self.loss(pred, y)
        return (pred - y).square().mean()

    def _stage_loss(self, params: ParamsLike, x: torch.Tensor, y: torch.Tensor,
                    collocation_x: torch.Tensor | None, task_params: torch.Tensor | None,
                    stage: str) -> torch.Tensor:
        loss = self.data_loss(params, x, y)
        if self.physics is not None and self.physics.applies(stage):
            if collocation_x is None or task_params is None:
                raise ConfigError(f"the {stage} physics loss needs collocation_x and "
                                  "task_params, got None")
            loss = loss + self.physics(self.model, params, collocation_x, task_params)
        return loss

    def support_loss(self, params: ParamsLike, x: torch.Tensor, y: torch.Tensor,
                     collocation_x: torch.Tensor | None = None,
                     task_params: torch.Tensor | None = None) -> torch.Tensor:
        """The loss the inner loop descends: data misfit plus the inner physics term."""
        return self._stage_loss(params, x, y, collocation_x, task_params, "inner")

    def query_loss(self, params: ParamsLike, x: torch.Tensor, y: torch.Tensor,
                   collocation_x: torch.Tensor | None = None,
                   task_params: torch.Tensor | None = None) -> torch.Tensor:
        """The meta-objective's per-task term: data misfit plus the outer physics term."""
        return self._stage_loss(params, x, y, collocation_x, task_params, "outer")

    def inner_loop(self, params: ParamsLike, support_x: torch.Tensor, support_y: torch.Tensor,
                   collocation_x: torch.Tensor | None = None,
                   task_params: torch.Tensor | None = None, *,
                   steps: int | None = None) -> Params:
        """Adapted model parameters φ after ``steps`` inner updates (pure).

        Each step is ``φ ← loop.rule.update(φ, ∇ support_loss(φ))`` on the adapted
        parameters, differentiable in θ and the rates unless ``first_order``.

        Args:
            params: θ, the model parameters and any learned rates (``"inner_lr.*"``).
            support_x: the task's support inputs ``[K, d_in]`` (coordinates, family units).
            support_y: the task's support outputs ``[K, d_out]`` (state units).
            collocation_x: residual points ``[C, d_in]`` (needed with an inner physics term).
            task_params: the task's physical parameters ``[P]`` (idem).
            steps: number of updates (default ``inner_steps``).

        Returns:
            φ: a parameter dict with the model's keys and θ's shapes.
        """
        return self.inner_trajectory(params, support_x, support_y, collocation_x, task_params,
                                     steps=steps)[-1]

    def inner_trajectory(self, params: ParamsLike, support_x: torch.Tensor,
                         support_y: torch.Tensor, collocation_x: torch.Tensor | None = None,
                         task_params: torch.Tensor | None = None, *,
                         steps: int | None = None) -> list[Params]:
        """``[φ_0 = θ, φ_1, ..., φ_steps]``: the model parameters after each inner step."""
        p, rates = self.split(params)
        loop = self.loop
        fast = {n: p[n] for n in loop.adapted}
        fixed = {n: v for n, v in p.items() if n not in fast}

        def loss_of(f: Params, fx: Params) -> torch.Tensor:
            return self.support_loss({**fx, **f}, support_x, support_y, collocation_x,
                                     task_params)

        g_fn = grad(loss_of)
        out = [p]
        for k in range(self._steps(steps)):
            if loop.first_order:
                g = g_fn(_detached(fast), _detached(fixed))
            else:
                g = g_fn(fast, fixed)
            fast = loop.rule.update(fast, g, rates, k)
            out.append({**fixed, **fast})
        return out

    def task_meta_loss(self, params: ParamsLike, support_x: torch.Tensor,
                       support_y: torch.Tensor, query_x: torch.Tensor, query_y: torch.Tensor,
                       collocation_x: torch.Tensor | None = None,
                       task_params: torch.Tensor | None = None) -> torch.Tensor:
        """One task's meta-objective: the query loss after the inner loop (pure).

        Args:
            params: θ, the model parameters and any learned rates.
            support_x, support_y: support set ``[K, d_in]``, ``[K, d_out]``.
            query_x, query_y: query set ``[Q, d_in]``, ``[Q, d_out]``.
            collocation_x, task_params: ``[C, d_in]`` and ``[P]`` for a physics term.

        Returns:
            A scalar: ``query_loss(inner_loop(θ))``; with the MAML++ multi-step loss
            ``sum_k w_k * query_loss(φ_k)`` over steps k = 1..K. Units: the loss's
            (squared state units for the MSE).
        """
        c = (collocation_x, task_params)
        weights = self.loop.step_weights
        if weights is None:
            phi = self.inner_loop(params, support_x, support_y, *c)
            return self.query_loss(phi, query_x, query_y, *c)
        trace = self.inner_trajectory(params, support_x, support_y, *c)
        terms = [w * self.query_loss(phi, query_x, query_y, *c)
                 for w, phi in zip(weights, trace[1:], strict=True) if w != 0]
        return torch.stack(terms).sum() if terms else support_x.new_zeros(())
