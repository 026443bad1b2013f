"""The inner-update rule: one definition shared by every path of every learner.

An inner step is plain gradient descent on the task's support loss,
``φ ← φ − α ⊙ ∇L_support(φ)``, where the rate α is

- ``"fixed"``: the scalar ``inner_lr`` (MAML, first-order MAML, ANIL, Reptile);
- ``"per_parameter"``: a learned tensor of the parameter's shape, shared by all
  steps (Meta-SGD), stored under ``"inner_lr.<name>"``;
- ``"per_step"``: a learned scalar per step and per parameter tensor (MAML++),
  stored under ``"inner_lr.step<k>.<name>"``.

With ``max_norm > 0`` each task's gradient (all adapted tensors together) is first
rescaled to Euclidean norm at most ``max_norm``, ``g ← g · min(1, max_norm / ‖g‖)``:
a clipped step that keeps an inner loop stable where the loss is much stiffer than
the data misfit (an equation residual on a new regime). The factor is part of the
graph, so second-order meta-gradients differentiate through it (exact wherever
‖g‖ ≠ max_norm).

Learned rates are meta-parameters: they live in the same parameter dict as the
model's weights (prefix :data:`RATE_PREFIX`), so one optimizer sees everything
that is meta-learned. :class:`InnerRule` follows the shape of an optax/torchopt
gradient transformation: :meth:`InnerRule.init` makes the rule's entries of the
parameter dict and :meth:`InnerRule.update` maps (parameters, gradients, step)
to new parameters, as a pure function that ``vmap``, ``grad`` and ``jvp`` can
transform. The ``torch.func`` path and the hand-batched path (:mod:`._fast`)
both call it; :class:`InnerLoop` bundles it with what else an inner loop needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..typing import Params
from ._validate import check_nonneg_float

RATE_PREFIX = "inner_lr."
RATE_MODES = ("fixed", "per_parameter", "per_step")


@dataclass(frozen=True)
class InnerRule:
    """Gradient-descent inner update with a fixed or learned rate.

    ``lr`` is the fixed rate, or the initial value of learned rates; ``mode`` is
    one of :data:`RATE_MODES`; ``steps`` is the number of inner steps (learned
    per-step rates exist for steps ``0 .. steps - 1``); ``max_norm`` clips each
    task's gradient norm (0: no clipping).
    """

    lr: float
    mode: str = "fixed"
    steps: int = 1
    max_norm: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in RATE_MODES:
            raise ConfigError(f"rate mode {self.mode!r} is not allowed; use one of "
                              f"{', '.join(RATE_MODES)}")
        check_nonneg_float("inner_grad_clip", self.max_norm)

    @property
    def learned(self) -> bool:
        """Whether the rates are meta-parameters (entries of the parameter dict)."""
        return self.mode != "fixed"

    def key(self, name: str, step: int) -> str:
        """Parameter-dict key of the learned rate of parameter ``name`` at ``step``."""
        if self.mode == "per_step":
            return f"{RATE_PREFIX}step{step}.{name}"
        return f"{RATE_PREFIX}{name}"

    def init(self, params: Mapping[str, torch.Tensor], adapted: Sequence[str]) -> Params:
        """The rule's entries of the parameter dict: initial learned rates (leaves).

        ``per_parameter``: one tensor of each adapted parameter's shape, filled with
        ``lr``; ``per_step``: one scalar per step and adapted parameter. Empty for
        ``fixed``.
        """
        out: Params = {}
        if self.mode == "per_parameter":
            for n in adapted:
                out[self.key(n, 0)] = torch.full_like(params[n], self.lr).requires_grad_()
        elif self.mode == "per_step":
            for k in range(self.steps):
                for n in adapted:
                    ref = params[n]
                    rate = torch.tensor(self.lr, dtype=ref.dtype, device=ref.device)
                    out[self.key(n, k)] = rate.requires_grad_()
        return out

    def rate(self, rates: Mapping[str, torch.Tensor], name: str,
             step: int) -> float | torch.Tensor:
        """The rate of parameter ``name`` at ``step`` (a float, or a tensor if learned)."""
        if self.mode == "fixed":
            return self.lr
        key = self.key(name, step)
        if key not in rates:
            raise ConfigError(f"params lacks the inner rate {key!r} (step {step} of "
                              f"{self.steps} learned steps); use init_params()")
        return rates[key]

    def update(self, fast: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor],
               rates: Mapping[str, torch.Tensor], step: int, *, grad_scale: float = 1.0,
               fused: bool = False, task_dims: int = 0) -> Params:
        """One inner step ``φ − α ⊙ grad_scale · g`` (pure; a new dict).

        Args:
            fast: the adapted parameters φ (any leading task dimensions).
            grads: the support-loss gradient per key of ``fast``, with ``task_dims``
                leading task dimensions.
            rates: the learned rates (``"inner_lr.*"`` entries; ignored if fixed).
            step: the step index k (selects MAML++ per-step rates).
            grad_scale: a factor on ``grads`` (the hand-batched path passes the
                unscaled MSE gradient and folds ``2 / (N d_out)`` in here).
            fused: one multi-tensor kernel for a fixed-rate step (not under ``vmap``).
            task_dims: leading dimensions of ``grads`` that index tasks (0 under
                ``vmap``, 1 on the hand-batched path): the clipping norm is taken
                per task over the others.

        Returns:
            The updated parameters, keyed like ``fast``.
        """
        if self.max_norm > 0:
            grads, grad_scale, fused = self.clipped(grads, grad_scale, task_dims), 1.0, False
        names = list(fast)
        if fused and self.mode == "fixed":
            new = torch._foreach_add([fast[n] for n in names], [grads[n] for n in names],
                                     alpha=-self.lr * grad_scale)
            return dict(zip(names, new, strict=True))
        if grad_scale != 1.0:
            return {n: fast[n] - (self.rate(rates, n, step) * grad_scale) * grads[n]
                    for n in names}
        return {n: fast[n] - self.rate(rates, n, step) * grads[n] for n in names}

    def clipped(self, grads: Mapping[str, torch.Tensor], grad_scale: float = 1.0,
                task_dims: int = 0) -> Params:
        """``grad_scale · g`` rescaled per task to norm at most :attr:`max_norm`."""
        sq = sum(g.square() if g.dim() == task_dims else g.square().flatten(task_dims).sum(-1)
                 for g in grads.values())
        norm = grad_scale * torch.as_tensor(sq).clamp_min(torch.finfo(
            next(iter(grads.values())).dtype).tiny).sqrt()
        factor = grad_scale * torch.clamp(self.max_norm / norm, max=1.0)
        return {n: g * factor.reshape(factor.shape + (1,) * (g.dim() - task_dims))
                for n, g in grads.items()}


@dataclass(frozen=True)
class InnerLoop:
    """Everything an inner loop needs besides the loss: rule, steps, what adapts.

    ``adapted`` names the parameters the inner loop updates (all of them for
    MAML, the head for ANIL); ``first_order`` detaches the inner gradients;
    ``step_weights`` (MAML++ multi-step loss) weights the query loss after each
    step, None for the query loss after the last step only.
    """

    rule: InnerRule
    steps: int
    adapted: tuple[str, ...]
    first_order: bool = False
    step_weights: tuple[float, ...] | None = None
