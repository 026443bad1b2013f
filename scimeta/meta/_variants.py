"""MAML relatives: Meta-SGD, ANIL, MAML++, Reptile and the joint-training baselines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..batch import TaskBatch
from ..errors import ConfigError
from ..typing import Grads, Params, ParamsLike
from . import _validate as V
from ._fast import SequentialPlan
from ._maml import MAML, _detached


class MetaSGD(MAML):
    """MAML with a learned inner rate for every parameter entry (Li et al., 2017).

    The rates live in the params dict under ``"inner_lr.<name>"`` with the shape
    of parameter ``<name>``, initialised to ``inner_lr``; ``meta_loss`` is
    differentiable with respect to them. With all rates equal to α it is MAML.
    """

    rate_mode = "per_parameter"

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 5,
                 **kwargs: Any) -> None:
        if kwargs.get("per_step_lrs"):
            raise ConfigError("per_step_lrs=True is a MAML option; MetaSGD learns "
                              "per-parameter rates shared by all steps")
        super().__init__(model, inner_lr, inner_steps, **kwargs)


class ANIL(MAML):
    """Almost No Inner Loop (Raghu et al., 2020): adapt the head only.

    ``head`` selects the adapted parameters: a name prefix (``"net.4"`` adapts
    ``net.4.weight`` and ``net.4.bias``), a predicate ``name -> bool``, or None
    for the parameters of the last submodule that owns any. The other ("body")
    parameters keep θ in the inner loop and are meta-learned through the query
    loss only (second order: including through the head's inner updates).
    """

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 5,
                 head: str | Callable[[str], bool] | None = None, **kwargs: Any) -> None:
        self._head = head
        super().__init__(model, inner_lr, inner_steps, **kwargs)

    def _select_adapted(self) -> list[str]:
        head = self._head
        if head is None:
            owners = [n for n, m in self.model.named_modules()
                      if any(True for _ in m.parameters(recurse=False))]
            if not owners:
                raise ConfigError("ANIL: the model has no parameters")
            head = owners[-1]
        if isinstance(head, str):
            pick = [n for n in self.names if n == head or n.startswith(head + ".")
                    or (head == "" and "." not in n)]
        elif callable(head):
            pick = [n for n in self.names if head(n)]
        else:
            raise ConfigError(f"head={head!r} must be a name prefix, a predicate or None")
        if not pick:
            raise ConfigError(f"head={self._head!r} selects no parameter; names: {self.names}")
        return pick

    @property
    def body(self) -> list[str]:
        """Names of the parameters that are not adapted."""
        return [n for n in self.names if n not in self.adapted]


def is_context(name: str) -> bool:
    """Whether parameter ``name`` is a CoordinateMLP's context vector."""
    return name == "context" or name.endswith(".context")


class CAVIA(ANIL):
    """Context adaptation (CAVIA, Zintgraf et al., 2019): the inner loop adapts only the
    model's context vector (``CoordinateMLP(context_dim=d)``, zeros at first), a
    per-task code fed to the first layer beside the inputs; everything else, the
    context's starting value included, is meta-learned through the query loss."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 5,
                 **kwargs: Any) -> None:
        super().__init__(model, inner_lr, inner_steps, head=is_context, **kwargs)

    def _select_adapted(self) -> list[str]:
        pick = [n for n in self.names if is_context(n)]
        if not pick:
            raise ConfigError("cavia adapts the model's context vector, and this model has "
                              "none: set model.context_dim > 0 (CoordinateMLP(context_dim=d))")
        return pick


class MAMLPlusPlus(MAML):
    """MAML++ (Antoniou et al., 2019): learned per-step, per-tensor inner rates and
    the multi-step query loss ``sum_k w_k L_query(φ_k)`` (uniform weights by default).

    With ``inner_steps=0`` there is no step to weight and it is plain MAML.
    """

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 5,
                 **kwargs: Any) -> None:
        kwargs.setdefault("multi_step_loss", inner_steps > 0)
        kwargs.setdefault("per_step_lrs", True)
        super().__init__(model, inner_lr, inner_steps, **kwargs)


class Joint(MAML):
    """The joint-training baseline: one network fitted to the pooled data of all tasks.

    No inner loop at meta-training time (``inner_steps`` is used only to adapt
    at test time) and no physics term; :meth:`meta_loss` is the MSE on each task's
    support and query points together, averaged over tasks.
    """

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 5,
                 **kwargs: Any) -> None:
        kwargs["physics"] = None
        super().__init__(model, inner_lr, 0, **kwargs)

    def meta_loss(self, params: ParamsLike, batch: TaskBatch) -> torch.Tensor:
        """Mean over tasks of the loss on support and query points pooled (no adaptation)."""
        b = V.check_batch(batch, False)
        pooled = b._replace(query_x=torch.cat([b.support_x, b.query_x], 1),
                            query_y=torch.cat([b.support_y, b.query_y], 1))
        return super().meta_loss(params, pooled)


class Conditioned(Joint):
    """The parameter-conditioned baseline: :class:`Joint` on inputs that carry each
    task's physical parameters.

    It trains exactly like :class:`Joint` (pooled support and query MSE, no inner
    loop, no physics term); what differs is the data: its batches hold
    ``[B, N, d_in + P]`` inputs, the coordinates followed by the task's parameters
    scaled to [-1, 1] by the training box (:mod:`scimeta.train.conditioned`), and
    its network has ``d_in + P`` inputs. Known parameters at test time make it the
    strongest zero-shot reference a meta-learned init is compared against.
    """


class Decoder(Joint):
    """The initial-state decoder baseline: :class:`Joint` on inputs that carry each
    task's physical parameters and the coefficients of its initial field in the
    family's basis (:mod:`scimeta.train.decoder`), on batches that add random points
    of each task's whole field. It trains exactly like :class:`Joint`; at test time
    the code, unknown, becomes a parameter that is fitted to the support points."""


class Reptile(MAML):
    """Reptile (Nichol et al., 2018): θ ← θ + ε (mean_i φ_i − θ).

    φ_i is θ after ``inner_steps`` plain gradient steps on task i's support set
    (support and query concatenated with ``use_query=True``). :meth:`meta_grad`
    returns the pseudo-gradient ``θ − mean_i φ_i`` (feed it to any optimizer as
    ``.grad``; SGD with lr ε is the update above), :meth:`update` applies it.
    """

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 5,
                 use_query: bool = False, **kwargs: Any) -> None:
        # compile: the pseudo-gradient is an eager adaptation, not the compiled meta-loss
        for key in ("first_order", "multi_step_loss", "per_step_lrs", "step_weights",
                    "compile"):
            if kwargs.get(key):
                raise ConfigError(f"{key} is not a Reptile option")
        super().__init__(model, inner_lr, inner_steps, first_order=True, **kwargs)
        self.use_query = bool(use_query)

    def _task_data(self, b: TaskBatch) -> TaskBatch:
        if not self.use_query:
            return b
        return b._replace(support_x=torch.cat([b.support_x, b.query_x], 1),
                          support_y=torch.cat([b.support_y, b.query_y], 1))

    differentiable_objective = False

    def meta_gradient(self, params: ParamsLike,
                      batch: TaskBatch) -> tuple[torch.Tensor, Grads]:
        """(mean query loss after adaptation, pseudo-gradient ``θ − mean_i φ_i``).

        Without ``use_query`` one adaptation serves both: the loss is the query MSE
        at the φ_i of the pseudo-gradient (with a custom loss or a physics term, the
        loss comes from :meth:`meta_loss`)."""
        # a plan exists only for the losses it computes (MSE, the model's ScaledMSE)
        plan = self._fast if isinstance(self._fast, SequentialPlan) else None
        if self.use_query or self.physics is not None or (
                plan is None and self.loss != "mse"):
            return self.meta_loss(params, batch), dict(self.meta_grad(params, batch))
        theta = _detached(params)
        b = V.check_batch(batch, False)
        phi = self.adapt_batch(theta, b)
        with torch.no_grad():
            if plan is not None:
                loss = plan.task_mse(phi, b.query_x, b.query_y).mean()
            else:
                loss = (self.predict(phi, b.query_x) - b.query_y).square().mean()
        return loss, {n: theta[n] - phi[n].mean(0) for n in self.names}

    def meta_grad(self, params: Mapping[str, torch.Tensor], batch: TaskBatch) -> Params:
        """Pseudo-gradient ``θ − mean_i φ_i`` for every model parameter (no graph)."""
        theta = _detached(params)
        phi = self.adapt_batch(theta, self._task_data(V.check_batch(batch, False)))
        return {n: theta[n] - phi[n].mean(0) for n in self.names}

    def update(self, params: Mapping[str, torch.Tensor], batch: TaskBatch,
               epsilon: float = 0.1) -> Params:
        """New leaf parameters θ − ε (θ − mean_i φ_i)."""
        eps = V.check_positive("epsilon", epsilon)
        g = self.meta_grad(params, batch)
        return {n: (params[n].detach() - eps * g[n]).requires_grad_(True) for n in self.names}

    def meta_loss(self, params: Mapping[str, torch.Tensor], batch: TaskBatch) -> torch.Tensor:
        """Mean query loss after adaptation, for monitoring (detached: Reptile has
        no differentiable meta-objective; use :meth:`meta_grad`)."""
        with torch.no_grad():
            return super().meta_loss(_detached(params), batch).detach()
