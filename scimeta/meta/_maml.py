"""MAML on torch.func: functional parameters, pure inner loop, tasks batched by vmap.

Parameters are a flat ``dict[str, Tensor]`` holding the model's parameters under
their ``named_parameters`` names and, for learners with learned inner rates,
the rates under the prefix :data:`RATE_PREFIX`:

- Meta-SGD: ``"inner_lr.<name>"``, same shape as parameter ``<name>``;
- MAML++ per-step per-layer rates: ``"inner_lr.step<k>.<name>"``, scalars.

One dict keeps ``meta_loss(params, batch)`` a function of everything that is
meta-learned, so one optimizer (or ``torch.func.grad``) sees it all; use
:meth:`MAML.split` to give the rates their own optimizer group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..batch import TaskBatch
from ..errors import ConfigError
from ..typing import Grads, LossFn, Params, ParamsLike
from . import _validate as V
from ._compile import compile_fast
from ._fast import SequentialPlan
from ._fast_physics import PhysicsPlan
from ._physics import PhysicsLoss
from ._tasks import ScaledMSE, TaskFunctions, _detached
from ._taylor import MAX_ORDER
from ._update import RATE_PREFIX, InnerLoop, InnerRule

log = logging.getLogger(__name__)


class MAML(TaskFunctions):
    """Model-agnostic meta-learning with exact second-order meta-gradients.

    ``model`` is any ``nn.Module`` mapping x ``[N, d_in]`` to ``[N, d_out]``.
    The inner loop takes ``inner_steps`` gradient steps of size ``inner_lr`` on a
    task's support loss; :meth:`meta_loss` is the mean over tasks of the query
    loss at the adapted parameters, differentiable through the inner updates
    (``first_order=True`` detaches the inner gradients instead).

    ``loss`` is ``"mse"`` (mean over points and channels) or a callable
    ``(pred, target) -> scalar``. ``physics`` adds a :class:`PhysicsLoss` term to
    the inner and/or outer loss. ``chunk_size`` bounds how many tasks ``vmap``
    evaluates at once. MAML++ options: ``multi_step_loss=True`` uses
    ``sum_k w_k * L_query(φ_k)`` over steps k = 1..K with ``step_weights`` (default
    uniform); ``per_step_lrs=True`` learns one rate per step and per parameter
    tensor. ``inner_grad_clip > 0`` clips each task's inner gradient to that norm
    (:class:`~scimeta.meta.InnerRule`'s ``max_norm``). ``fast`` selects the
    hand-batched path for plain ``nn.Sequential`` MLPs with the MSE loss
    (``None``: when eligible; see :mod:`._fast`); both paths run the same
    :class:`~scimeta.meta.InnerLoop` (:attr:`loop`).

    The per-task functions :meth:`support_loss`, :meth:`inner_loop`,
    :meth:`query_loss` and :meth:`task_meta_loss` are public and pure, for code
    that differentiates them (Laplace posteriors, meta-Hessians).
    """

    #: how the inner rate is set (:data:`~scimeta.meta.RATE_MODES`); subclasses declare it
    rate_mode: ClassVar[str] = "fixed"
    #: True: :meth:`meta_loss` is a differentiable meta-objective whose gradient is the
    #: meta-gradient; False: the learner defines a pseudo-gradient (Reptile)
    differentiable_objective: ClassVar[bool] = True

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.01,
        inner_steps: int = 5,
        first_order: bool = False,
        loss: str | LossFn = "mse",
        chunk_size: int | None = None,
        physics: PhysicsLoss | None = None,
        multi_step_loss: bool = False,
        step_weights: Sequence[float] | None = None,
        per_step_lrs: bool = False,
        fast: bool | None = None,
        compile: bool = False,
        inner_grad_clip: float = 0.0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.inner_lr = V.check_positive("inner_lr", inner_lr)
        self.inner_steps = V.check_nonneg_int("inner_steps", inner_steps)
        if not isinstance(first_order, bool):
            raise ConfigError(f"first_order={first_order!r} must be True or False")
        self.first_order = first_order
        if loss != "mse" and not callable(loss):
            raise ConfigError(f"loss={loss!r} is not allowed; use 'mse' or a callable")
        self.loss = loss
        self.chunk_size = V.check_chunk_size(chunk_size)
        if physics is not None and not isinstance(physics, PhysicsLoss):
            raise ConfigError(f"physics={physics!r} must be a PhysicsLoss or None")
        self.physics = physics
        self.multi_step_loss = bool(multi_step_loss)
        self.step_weights = V.check_step_weights(step_weights, self.multi_step_loss,
                                                  self.inner_steps)
        mode = "per_step" if per_step_lrs else self.rate_mode
        # InnerRule refuses a bad inner_grad_clip (negative, non-finite, not a number)
        self.rule = InnerRule(self.inner_lr, mode, self.inner_steps, inner_grad_clip)
        self.names = [n for n, _ in model.named_parameters()]
        bad = [n for n in self.names if n.startswith(RATE_PREFIX)]
        if bad:
            raise ConfigError(f"model parameter names may not start with {RATE_PREFIX!r}: {bad}")
        self.adapted = self._select_adapted()
        #: the inner loop both paths run (rule, steps, adapted names, first order, weights)
        self.loop = InnerLoop(self.rule, self.inner_steps, tuple(self.adapted),
                              self.first_order, self.step_weights)
        self._checked: set[tuple] = set()
        self._fast: SequentialPlan | PhysicsPlan | None = None
        if fast is not False:
            self._fast = self._build_fast()
            if self._fast is None and fast:
                raise ConfigError("fast=True needs an nn.Sequential MLP (Linear + tanh/relu/"
                                  "silu/sine) and loss='mse'; with a physics loss, pure "
                                  f"input derivatives of order <= {MAX_ORDER}")
        log.debug("%s: %s path", type(self).__name__, self.path)
        if not isinstance(compile, bool):
            raise ConfigError(f"compile={compile!r} must be True or False")
        compiled = compile_fast(self) if compile else (None, None)
        #: the compiled meta-loss and meta-gradient (``compile=True``), else None
        self._compiled: Callable[..., torch.Tensor] | None = compiled[0]
        self._compiled_grad: Callable[..., tuple[Grads, torch.Tensor]] | None = compiled[1]

    @property
    def path(self) -> str:
        """Which implementation computes the meta-loss: ``"hand-batched"`` (the plain
        MLP's written-out inner gradient), ``"hand-batched + Taylor"`` (with the physics
        residual's input derivatives propagated Taylor-mode), or ``"torch.func"``
        (``vmap`` of the generic per-task functions: other models, losses or
        residuals). Equal to round-off; the hand-batched ones are faster."""
        if isinstance(self._fast, PhysicsPlan):
            return "hand-batched + Taylor"
        return "hand-batched" if self._fast is not None else "torch.func"

    # ---- configuration helpers -------------------------------------------
    def _select_adapted(self) -> list[str]:
        return list(self.names)

    def _build_fast(self) -> SequentialPlan | PhysicsPlan | None:
        """The hand-batched path for this model and loss, or None (generic path)."""
        scaled = isinstance(self.loss, ScaledMSE) and self.loss.model is self.model
        if self.loss != "mse" and not scaled:
            return None
        plan = SequentialPlan.build(self.model)
        if plan is not None and scaled:
            if plan.affine is not self.model:
                return None  # a scale the plan does not apply: the generic path
            plan.scaled_error = True
        if self.physics is None:
            return plan
        return PhysicsPlan.build(plan, self.physics)

    def rate_name(self, name: str, step: int) -> str:
        """Key of the learned inner rate of parameter ``name`` at ``step``."""
        return self.rule.key(name, step)

    def init_params(self) -> Params:
        """Detached leaf copies of the model's parameters (and initial inner rates)."""
        out: Params = {n: p.detach().clone().requires_grad_(True)
                       for n, p in self.model.named_parameters()}
        out.update(self.rule.init(out, self.adapted))
        return out

    def split(self, params: ParamsLike) -> tuple[Params, Params]:
        """(model parameters, inner rates); raises if model parameters are missing."""
        model_p = {k: v for k, v in params.items() if not k.startswith(RATE_PREFIX)}
        rates = {k: v for k, v in params.items() if k.startswith(RATE_PREFIX)}
        missing = [n for n in self.names if n not in model_p]
        if missing:
            raise ConfigError(f"params lacks model parameters {missing}; use init_params()")
        return model_p, rates

    def _steps(self, steps: int | None) -> int:
        return self.inner_steps if steps is None else V.check_nonneg_int("steps", steps)

    # ---- checks ----------------------------------------------------------
    def _check_data(self, p: Params, x: torch.Tensor, y: torch.Tensor,
                    cx: torch.Tensor | None = None, tp: torch.Tensor | None = None,
                    what: str = "support") -> None:
        """Dry-run the model once per distinct (shapes, dtypes) to fail early and clearly."""
        key = (what, tuple(x.shape[-1:]), tuple(y.shape[-1:]), x.dtype, y.dtype,
               None if cx is None or tp is None else (cx.shape[-1], tp.shape[-1]))
        if key in self._checked:
            return
        V.dry_run(self.model, p, x, y, what)
        if self.physics is not None and cx is not None and tp is not None:
            self.physics.check(cx, y.shape[-1], tp.shape[-1])
        self._checked.add(key)

    def _prepare(self, params: ParamsLike, batch: TaskBatch) -> tuple[Params, TaskBatch]:
        b = V.check_batch(batch, self.physics is not None)
        p, _ = self.split(params)
        self._check_data(p, b.support_x, b.support_y, b.collocation_x, b.params, "batch.support")
        return dict(params), b

    def _physics_args(self, b: TaskBatch) -> tuple[tuple, tuple]:
        """(collocation_x, params) of the batch and their vmap in_dims (None without physics)."""
        if self.physics is None:
            return (None, None), (None, None)
        return (b.collocation_x, b.params), (0, 0)

    # ---- public API ------------------------------------------------------
    def meta_loss(self, params: ParamsLike, batch: TaskBatch) -> torch.Tensor:
        """Mean over the B tasks of :meth:`task_meta_loss` (a scalar).

        ``batch`` tensors are ``[B, K, d]`` (see :class:`~scimeta.batch.TaskBatch`).
        Differentiable with respect to every tensor in ``params``.
        """
        params, b = self._prepare(params, batch)
        if self._compiled is not None:
            return self._compiled(params, tuple(b))
        if self._fast is not None:
            p, rates = self.split(params)
            return self._fast.meta_loss(self.loop, p, rates, b, self.chunk_size)
        (cx, tp), (cd, pd) = self._physics_args(b)
        fn = vmap(self.task_meta_loss, in_dims=(None, 0, 0, 0, 0, cd, pd),
                  chunk_size=self.chunk_size)
        return fn(params, b.support_x, b.support_y, b.query_x, b.query_y, cx, tp).mean()

    def meta_gradient(self, params: ParamsLike,
                      batch: TaskBatch) -> tuple[torch.Tensor, Grads]:
        """The meta-loss and the meta-gradient, the same call for every learner.

        Args:
            params: θ (leaf tensors; those with ``requires_grad`` get a gradient).
            batch: a :class:`~scimeta.batch.TaskBatch` of ``[B, K, d]`` tensors.

        Returns:
            ``(loss, grads)``: the detached scalar :meth:`meta_loss`, and per key of
            ``params`` the gradient of the meta-loss when
            :attr:`differentiable_objective` (the learner's pseudo-gradient
            otherwise), ``None`` where the loss does not depend on the entry or the
            loss is not finite (nothing is computed past a non-finite loss).
        """
        leaves = {k: v for k, v in params.items() if v.requires_grad}
        # the compiled whole-gradient path serves learners whose meta-objective is
        # MAML's own (not Joint's pooled loss, not Reptile's pseudo-gradient)
        if self._compiled_grad is not None and leaves \
                and type(self).meta_loss is MAML.meta_loss:
            params, b = self._prepare(params, batch)
            got_all, loss = self._compiled_grad({k: v.detach() for k, v in params.items()},
                                                tuple(b))
            grads: Grads = dict.fromkeys(params)
            if bool(torch.isfinite(loss)):
                grads.update({k: got_all[k] for k in leaves})
            return loss.detach(), grads
        loss = self.meta_loss(params, batch)
        if not leaves or not bool(torch.isfinite(loss.detach())):
            return loss.detach(), dict.fromkeys(params)
        got = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        grads = dict.fromkeys(params)
        grads.update(zip(leaves, got, strict=True))
        return loss.detach(), grads

    def adapt(self, params: ParamsLike, support_x: torch.Tensor,
              support_y: torch.Tensor, steps: int | None = None, *,
              collocation_x: torch.Tensor | None = None,
              task_params: torch.Tensor | None = None) -> Params:
        """Adapted parameters φ for ONE task: support_x ``[K, d_in]``, support_y ``[K, d_out]``.

        With an inner physics loss also pass collocation_x ``[C, d_in]`` and the
        task's physical parameters ``[P]``. Returns the model's parameter dict.
        """
        V.check_task(support_x, support_y)
        p, _ = self.split(params)
        need = self.physics is not None and self.physics.applies("inner")
        if need and (collocation_x is None or task_params is None):
            raise ConfigError("the inner physics loss needs collocation_x and task_params")
        if need:
            V.check_rank("collocation_x", collocation_x, 2, "[C, d_in]")
            V.check_rank("task_params", task_params, 1, "[P]")
        self._check_data(p, support_x, support_y, collocation_x if need else None,
                         task_params if need else None)
        return self.inner_loop(params, support_x, support_y, collocation_x, task_params,
                               steps=self._steps(steps))

    def support_grads(self, fast: Params, fixed: Params,
                      batch: TaskBatch) -> tuple[torch.Tensor, Params]:
        """Per-task support losses ``[B]`` and their gradients, without a graph.

        Args:
            fast: the parameters being adapted, one copy per task ``[B, *shape]``.
            fixed: the other model parameters, shared ``[*shape]``.
            batch: the tasks (with collocation points and parameters when the inner
                loss has a physics term).

        Returns:
            ``(losses, grads)``: :meth:`support_loss` of every task and its gradient
            per key of ``fast`` (``[B, *shape]``). The hand-batched path computes them
            when it applies (the MSE's analytic backward, or the written-out
            physics-informed one), else ``vmap`` of ``grad``; both agree to round-off.
            This is the step of test-time adaptation loops (``adapt_curve``).
        """
        from ._support_grads import support_grads

        return support_grads(self, fast, fixed, batch)

    def adapt_batch(self, params: ParamsLike, batch: TaskBatch,
                    steps: int | None = None) -> Params:
        """Adapted parameters for every task of ``batch``: each value ``[B, *shape]``.

        The hand-batched path runs the same inner loop when it applies (a data-only
        inner loss on an eligible MLP), ``chunk_size`` tasks at a time.
        """
        params, b = self._prepare(params, batch)
        n = self._steps(steps)
        plan = self._fast
        if isinstance(plan, SequentialPlan):
            p, rates = self.split(params)
            step = self.chunk_size or b.num_tasks
            parts = [plan.adapt(self.loop, p, rates, part.support_x, part.support_y, n)
                     for part in (b.tasks(slice(s, s + step))
                                  for s in range(0, b.num_tasks, step))]
            return parts[0] if len(parts) == 1 else {
                k: torch.cat([q[k] for q in parts]) for k in parts[0]}
        (cx, tp), (cd, pd) = self._physics_args(b)

        def one(sx, sy, c, t):
            return self.inner_loop(params, sx, sy, c, t, steps=n)

        fn = vmap(one, in_dims=(0, 0, cd, pd), chunk_size=self.chunk_size)
        return fn(b.support_x, b.support_y, cx, tp)

    def predict(self, params: ParamsLike, x: torch.Tensor) -> torch.Tensor:
        """Model output for x ``[N, d_in]`` (``[B, N, d_in]`` with batched parameters)."""
        p, _ = self.split(params)
        ref = dict(self.model.named_parameters())
        batched = any(p[n].dim() == ref[n].dim() + 1 for n in self.names)
        if batched:
            return vmap(lambda q, xx: functional_call(self.model, q, (xx,)))(p, x)
        return functional_call(self.model, p, (x,))

    def adaptation_curve(self, params: ParamsLike, batch: TaskBatch,
                         steps: int | None = None) -> torch.Tensor:
        """Query data loss after 0..steps inner steps, shape ``[steps + 1, B]`` (no graph)."""
        params, b = self._prepare(_detached(params), batch)
        (cx, tp), (cd, pd) = self._physics_args(b)
        n = self._steps(steps)

        def one(sx, sy, qx, qy, c, t):
            trace = self.inner_trajectory(params, sx, sy, c, t, steps=n)
            return torch.stack([self.data_loss(phi, qx, qy) for phi in trace])

        fn = vmap(one, in_dims=(0, 0, 0, 0, cd, pd), chunk_size=self.chunk_size)
        return fn(b.support_x, b.support_y, b.query_x, b.query_y, cx, tp).T.detach()
