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
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from ..batch import TaskBatch
from ..errors import ConfigError
from . import _validate as V
from ._fast import SequentialPlan
from ._physics import PhysicsLoss

log = logging.getLogger(__name__)

RATE_PREFIX = "inner_lr."
Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _detached(d: Mapping[str, torch.Tensor]) -> Params:
    return {k: v.detach() for k, v in d.items()}


class MAML:
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
    tensor. ``fast`` selects the hand-batched path for plain ``nn.Sequential``
    MLPs with the MSE loss (``None``: when eligible; see :mod:`._fast`).
    """

    _rate_mode = "fixed"  # "fixed" | "per_parameter" | "per_step"

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
        if per_step_lrs:
            self._rate_mode = "per_step"
        self.names = [n for n, _ in model.named_parameters()]
        bad = [n for n in self.names if n.startswith(RATE_PREFIX)]
        if bad:
            raise ConfigError(f"model parameter names may not start with {RATE_PREFIX!r}: {bad}")
        self.adapted = self._select_adapted()
        self._checked: set[tuple] = set()
        self._fast = None
        if fast is not False:
            plan = SequentialPlan.build(model) if self._fast_eligible() else None
            if plan is None and fast:
                raise ConfigError("fast=True needs an nn.Sequential MLP (Linear + tanh/relu/"
                                  "silu/sine), loss='mse' and no physics loss")
            self._fast = plan
        log.debug("%s: %s path", type(self).__name__, "hand-batched" if self._fast else "vmap")

    # ---- configuration helpers -------------------------------------------
    def _select_adapted(self) -> list[str]:
        return list(self.names)

    def _fast_eligible(self) -> bool:
        return self.loss == "mse" and self.physics is None

    def rate_name(self, name: str, step: int) -> str:
        """Key of the learned inner rate of parameter ``name`` at ``step``."""
        if self._rate_mode == "per_step":
            return f"{RATE_PREFIX}step{step}.{name}"
        return f"{RATE_PREFIX}{name}"

    def init_params(self) -> Params:
        """Detached leaf copies of the model's parameters (and initial inner rates)."""
        out: Params = {}
        for n, p in self.model.named_parameters():
            out[n] = p.detach().clone().requires_grad_(True)
        if self._rate_mode == "per_parameter":
            for n in self.adapted:
                out[self.rate_name(n, 0)] = torch.full_like(out[n], self.inner_lr).requires_grad_()
        elif self._rate_mode == "per_step":
            for k in range(self.inner_steps):
                for n in self.adapted:
                    rate = torch.tensor(self.inner_lr, dtype=out[n].dtype, device=out[n].device)
                    out[self.rate_name(n, k)] = rate.requires_grad_()
        return out

    def split(self, params: Mapping[str, torch.Tensor]) -> tuple[Params, Params]:
        """(model parameters, inner rates); raises if model parameters are missing."""
        model_p = {k: v for k, v in params.items() if not k.startswith(RATE_PREFIX)}
        rates = {k: v for k, v in params.items() if k.startswith(RATE_PREFIX)}
        missing = [n for n in self.names if n not in model_p]
        if missing:
            raise ConfigError(f"params lacks model parameters {missing}; use init_params()")
        return model_p, rates

    def _lr(self, rates: Mapping[str, torch.Tensor], name: str, step: int):
        if self._rate_mode == "fixed":
            return self.inner_lr
        key = self.rate_name(name, step)
        if key not in rates:
            raise ConfigError(f"params lacks the inner rate {key!r} (step {step} of "
                              f"{self.inner_steps} learned steps); use init_params()")
        return rates[key]

    def _steps(self, steps: int | None) -> int:
        return self.inner_steps if steps is None else V.check_nonneg_int("steps", steps)

    # ---- pure per-task functions -----------------------------------------
    def _data_loss(self, p: Mapping[str, torch.Tensor], x: torch.Tensor,
                   y: torch.Tensor) -> torch.Tensor:
        pred = functional_call(self.model, p, (x,))
        if self.loss == "mse":
            return (pred - y).square().mean()
        return self.loss(pred, y)

    def _stage_loss(self, p, x, y, cx, tp, stage: str) -> torch.Tensor:
        loss = self._data_loss(p, x, y)
        if self.physics is not None and self.physics.applies(stage):
            loss = loss + self.physics(self.model, p, cx, tp)
        return loss

    def _inner_loop(self, p: Params, rates: Params, sx, sy, cx, tp, steps: int,
                    trace: list[Params] | None = None) -> Params:
        fast = {n: p[n] for n in self.adapted}
        fixed = {n: v for n, v in p.items() if n not in fast}

        def support_loss(f: Params, fx: Params) -> torch.Tensor:
            return self._stage_loss({**fx, **f}, sx, sy, cx, tp, "inner")

        g_fn = grad(support_loss)
        for k in range(steps):
            if self.first_order:
                g = g_fn(_detached(fast), _detached(fixed))
            else:
                g = g_fn(fast, fixed)
            fast = {n: fast[n] - self._lr(rates, n, k) * g[n] for n in fast}
            if trace is not None:
                trace.append({**fixed, **fast})
        return {**fixed, **fast}

    def _task_meta_loss(self, p, rates, sx, sy, qx, qy, cx, tp) -> torch.Tensor:
        if not self.multi_step_loss:
            phi = self._inner_loop(p, rates, sx, sy, cx, tp, self.inner_steps)
            return self._stage_loss(phi, qx, qy, cx, tp, "outer")
        trace: list[Params] = []
        self._inner_loop(p, rates, sx, sy, cx, tp, self.inner_steps, trace)
        terms = [w * self._stage_loss(phi, qx, qy, cx, tp, "outer")
                 for w, phi in zip(self.step_weights, trace, strict=True) if w != 0]
        return torch.stack(terms).sum() if terms else sx.new_zeros(())

    # ---- checks ----------------------------------------------------------
    def _check_data(self, p: Params, x, y, cx=None, tp=None, what: str = "support") -> None:
        key = (what, tuple(x.shape[-1:]), tuple(y.shape[-1:]), x.dtype, y.dtype,
               None if cx is None else (cx.shape[-1], tp.shape[-1]))
        if key in self._checked:
            return
        V.dry_run(self.model, p, x, y, what)
        if self.physics is not None and cx is not None:
            self.physics.check(cx, y.shape[-1], tp.shape[-1])
        self._checked.add(key)

    def _prepare(self, params, batch) -> tuple[Params, Params, TaskBatch]:
        b = V.check_batch(batch, self.physics is not None)
        p, rates = self.split(params)
        self._check_data(p, b.support_x, b.support_y, b.collocation_x, b.params, "batch.support")
        return p, rates, b

    def _physics_args(self, b: TaskBatch) -> tuple:
        if self.physics is None:
            return (None, None), (None, None)
        return (b.collocation_x, b.params), (0, 0)

    # ---- public API ------------------------------------------------------
    def meta_loss(self, params: Mapping[str, torch.Tensor], batch: TaskBatch) -> torch.Tensor:
        """Mean over the B tasks of the query loss after adaptation (a scalar).

        ``batch`` tensors are ``[B, K, d]`` (see :class:`~scimeta.batch.TaskBatch`).
        Differentiable with respect to every tensor in ``params``.
        """
        p, rates, b = self._prepare(params, batch)
        if self._fast is not None:
            return self._fast.meta_loss(self, p, rates, b)
        (cx, tp), (cd, pd) = self._physics_args(b)
        fn = vmap(self._task_meta_loss, in_dims=(None, None, 0, 0, 0, 0, cd, pd),
                  chunk_size=self.chunk_size)
        return fn(p, rates, b.support_x, b.support_y, b.query_x, b.query_y, cx, tp).mean()

    def adapt(self, params: Mapping[str, torch.Tensor], support_x: torch.Tensor,
              support_y: torch.Tensor, steps: int | None = None, *,
              collocation_x: torch.Tensor | None = None,
              task_params: torch.Tensor | None = None) -> Params:
        """Adapted parameters φ for ONE task: support_x ``[K, d_in]``, support_y ``[K, d_out]``.

        With an inner physics loss also pass collocation_x ``[C, d_in]`` and the
        task's physical parameters ``[P]``. Returns the model's parameter dict.
        """
        V.check_task(support_x, support_y)
        p, rates = self.split(params)
        need = self.physics is not None and self.physics.applies("inner")
        if need and (collocation_x is None or task_params is None):
            raise ConfigError("the inner physics loss needs collocation_x and task_params")
        if need:
            V.check_rank("collocation_x", collocation_x, 2, "[C, d_in]")
            V.check_rank("task_params", task_params, 1, "[P]")
        self._check_data(p, support_x, support_y, collocation_x if need else None,
                         task_params if need else None)
        return self._inner_loop(p, rates, support_x, support_y, collocation_x, task_params,
                                self._steps(steps))

    def adapt_batch(self, params: Mapping[str, torch.Tensor], batch: TaskBatch,
                    steps: int | None = None) -> Params:
        """Adapted parameters for every task of ``batch``: each value ``[B, *shape]``."""
        p, rates, b = self._prepare(params, batch)
        (cx, tp), (cd, pd) = self._physics_args(b)
        n = self._steps(steps)

        def one(sx, sy, c, t):
            return self._inner_loop(p, rates, sx, sy, c, t, n)

        fn = vmap(one, in_dims=(0, 0, cd, pd), chunk_size=self.chunk_size)
        return fn(b.support_x, b.support_y, cx, tp)

    def predict(self, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Model output for x ``[N, d_in]`` (``[B, N, d_in]`` with batched parameters)."""
        p, _ = self.split(params)
        ref = dict(self.model.named_parameters())
        batched = any(p[n].dim() == ref[n].dim() + 1 for n in self.names)
        if batched:
            return vmap(lambda q, xx: functional_call(self.model, q, (xx,)))(p, x)
        return functional_call(self.model, p, (x,))

    def adaptation_curve(self, params: Mapping[str, torch.Tensor], batch: TaskBatch,
                         steps: int | None = None) -> torch.Tensor:
        """Query data loss after 0..steps inner steps, shape ``[steps + 1, B]`` (no graph)."""
        p, rates, b = self._prepare(_detached(params), batch)
        (cx, tp), (cd, pd) = self._physics_args(b)
        n = self._steps(steps)

        def one(sx, sy, qx, qy, c, t):
            trace = [p]
            self._inner_loop(p, rates, sx, sy, c, t, n, trace)
            return torch.stack([self._data_loss(phi, qx, qy) for phi in trace])

        fn = vmap(one, in_dims=(0, 0, 0, 0, cd, pd), chunk_size=self.chunk_size)
        return fn(b.support_x, b.support_y, b.query_x, b.query_y, cx, tp).T.detach()
