"""Hessian-vector products of the meta-objective through the full K-step inner loop.

The meta-objective is ``J(θ) = mean_i L_query(adapt_i(θ))`` over the tasks of a
batch: the learner's :meth:`~scimeta.meta.MAML.meta_loss`, i.e. the mean of the
public per-task :meth:`~scimeta.meta.MAML.task_meta_loss` (the hand-batched path
for plain MLPs computes the same function). :class:`MetaHessian` builds the
meta-gradient once with ``create_graph=True`` and keeps that graph, so each
product ``H v`` is one more backward pass (double backward: the third derivative
of the support loss flows through the inner updates). If the learner's own path
cannot be differentiated a third time, the product falls back to ``vmap`` over
``task_meta_loss`` and says so in the log.

Products are over one flat vector of the selected parameters (default: every
model parameter; learned inner rates stay fixed unless selected), laid out as
:class:`~scimeta.bayes.Flat`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import vmap

from ..batch import TaskBatch
from ..bayes import Flat
from ..errors import ConfigError, RunError
from ..meta import MAML, Joint
from ..typing import Params, ParamsLike

log = logging.getLogger(__name__)

#: how the meta-objective is evaluated: the learner's own ``meta_loss`` (falling back
#: to vmap when it cannot be differentiated three times), or vmap over task_meta_loss
PATHS = ("auto", "vmap")


def check_learner(learner: object) -> MAML:
    """``learner`` if it is a learner with a differentiable meta-objective."""
    if not isinstance(learner, MAML):
        raise ConfigError(f"learner={type(learner).__name__} is not a scimeta meta-learner; "
                          "build one with scimeta.meta.get_learner(name).build(model)")
    if not learner.differentiable_objective:
        raise ConfigError(
            f"learner {type(learner).__name__} has no differentiable meta-objective (its "
            "meta-gradient is a pseudo-gradient), so it has no meta-Hessian; use a "
            "differentiable learner: maml, fomaml, metasgd, anil, mamlpp or joint")
    return learner


def objective_batch(learner: MAML, batch: TaskBatch) -> TaskBatch:
    """The batch whose per-task ``task_meta_loss`` the learner's meta-loss averages
    (the joint baseline pools support and query points)."""
    if not isinstance(batch, TaskBatch):
        raise ConfigError(f"batch={type(batch).__name__} must be a scimeta.meta.TaskBatch")
    if batch.support_x.dim() != 3:
        raise ConfigError(f"batch.support_x has shape {tuple(batch.support_x.shape)}; "
                          "expected [B, K, d_in]")
    if isinstance(learner, Joint):
        return batch._replace(query_x=torch.cat([batch.support_x, batch.query_x], 1),
                              query_y=torch.cat([batch.support_y, batch.query_y], 1))
    return batch


def physics_args(learner: MAML, b: TaskBatch) -> tuple[tuple, tuple]:
    """(collocation_x, params) of the batch and their vmap in_dims (None without physics)."""
    if learner.physics is None:
        return (None, None), (None, None)
    if b.collocation_x is None or b.params is None:
        raise ConfigError("the learner has a physics loss: batch.collocation_x and "
                          "batch.params are required, got None")
    return (b.collocation_x, b.params), (0, 0)


def task_losses_fn(learner: MAML, batch: TaskBatch) -> Callable[[ParamsLike], torch.Tensor]:
    """``params -> [B]`` per-task meta-losses, ``vmap`` over ``task_meta_loss``."""
    b = objective_batch(learner, batch)
    (cx, tp), (cd, pd) = physics_args(learner, b)
    fn = vmap(learner.task_meta_loss, in_dims=(None, 0, 0, 0, 0, cd, pd),
              chunk_size=learner.chunk_size)
    return lambda p: fn(dict(p), b.support_x, b.support_y, b.query_x, b.query_y, cx, tp)


def meta_objective(learner: MAML, batch: TaskBatch,
                   path: str = "auto") -> Callable[[ParamsLike], torch.Tensor]:
    """``params -> J(params)``, the mean meta-loss over the batch's tasks.

    ``path="auto"``: the learner's :meth:`meta_loss` (its hand-batched path where it
    has one); ``"vmap"``: ``vmap`` over :meth:`task_meta_loss` (same function).
    """
    if path not in PATHS:
        raise ConfigError(f"path={path!r} is not allowed; use one of {', '.join(PATHS)}")
    check_learner(learner)
    if path == "auto":
        objective_batch(learner, batch)
        return lambda p: learner.meta_loss(p, batch)
    fn = task_losses_fn(learner, batch)
    return lambda p: fn(p).mean()


class MetaHessian:
    """The meta-Hessian ``∇²J(θ)`` over the selected parameters, as products.

    ``params`` is the learner's parameter dict at θ (model parameters and any
    learned rates), ``batch`` the tasks of J. ``names`` selects the entries to
    differentiate (default: the model's parameters, ``learner.names``); the rest
    stay fixed. ``task_ids`` label the tasks in error messages. Products run in
    the dtype and device of ``params``; :meth:`as_linear_operator` exposes them to
    scipy in float64.
    """

    def __init__(self, learner: MAML, params: ParamsLike, batch: TaskBatch, *,
                 names: Sequence[str] | None = None, path: str = "auto",
                 task_ids: Sequence | None = None) -> None:
        self.learner = check_learner(learner)
        if path not in PATHS:
            raise ConfigError(f"path={path!r} is not allowed; use one of {', '.join(PATHS)}")
        objective_batch(learner, batch)
        self.batch = batch
        self.theta: Params = {k: v.detach() for k, v in params.items()}
        missing = [n for n in learner.names if n not in self.theta]
        if missing:
            raise ConfigError(f"params lacks model parameters {missing}; use "
                              "learner.init_params() or a trained init")
        chosen = list(learner.names) if names is None else list(names)
        unknown = [n for n in chosen if n not in self.theta]
        if unknown or not chosen:
            raise ConfigError(f"names={chosen!r} must select entries of params; known: "
                              f"{', '.join(self.theta)}")
        chosen = [n for n in self.theta if n in set(chosen)]
        self.flat = Flat(tuple(chosen), tuple(tuple(self.theta[n].shape) for n in chosen))
        ref = self.theta[chosen[0]]
        self.dtype, self.device = ref.dtype, ref.device
        n_tasks = batch.support_x.shape[0]
        self.task_ids = list(range(n_tasks)) if task_ids is None else list(task_ids)
        #: number of products computed so far
        self.products = 0
        self.path = path
        self._build()
        if path == "auto":
            try:  # a third derivative through the learner's own path
                self._product(self._probe())
            except RuntimeError as exc:
                log.warning("%s: its meta_loss cannot be differentiated a third time (%s); "
                            "meta-Hessian products fall back to vmap over task_meta_loss",
                            type(learner).__name__, str(exc).splitlines()[0][:160])
                self.path = "vmap"
                self._build()
        log.debug("meta-Hessian over %d parameters, %d tasks, %s path", self.dim, n_tasks,
                  self.path)

    # ---- construction ------------------------------------------------------
    def _probe(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randn(self.dim, generator=g, dtype=torch.float64).to(
            device=self.device, dtype=self.dtype)

    def _build(self) -> None:
        self.objective = meta_objective(self.learner, self.batch, self.path)
        self._leaves = {n: self.theta[n].clone().requires_grad_(True) for n in self.flat.names}
        loss = self.objective({**self.theta, **self._leaves})
        if not bool(torch.isfinite(loss.detach())):
            self._locate_nonfinite("meta-loss")
        got = torch.autograd.grad(loss, list(self._leaves.values()), create_graph=True,
                                  allow_unused=True)
        self._grads = [torch.zeros_like(v) if g is None else g
                       for g, v in zip(got, self._leaves.values(), strict=True)]
        #: J(θ) and its gradient (the meta-gradient, flat), detached
        self.loss = float(loss.detach())
        self.gradient = self.flat.flatten(dict(zip(self.flat.names,
                                                   [g.detach() for g in self._grads],
                                                   strict=True)))
        if not bool(torch.isfinite(self.gradient).all()):
            self._locate_nonfinite("meta-gradient")

    # ---- products ----------------------------------------------------------
    @property
    def dim(self) -> int:
        """P, the number of selected parameter entries."""
        return self.flat.numel

    @property
    def shape(self) -> tuple[int, int]:
        return (self.dim, self.dim)

    def _product(self, v: torch.Tensor) -> torch.Tensor:
        parts = self.flat.unflatten(v)
        pairs = [(g, parts[n]) for g, n in zip(self._grads, self.flat.names, strict=True)
                 if g.requires_grad]
        leaves = list(self._leaves.values())
        if not pairs:  # J is linear in the selection
            return torch.zeros_like(v)
        got = torch.autograd.grad([g for g, _ in pairs], leaves,
                                  grad_outputs=[u for _, u in pairs], retain_graph=True,
                                  allow_unused=True)
        if all(h is None for h in got):  # e.g. an op marked once_differentiable
            raise RuntimeError("the meta-gradient's graph does not reach the parameters "
                               "(an operation without a further derivative)")
        self.products += 1
        return self.flat.flatten({n: torch.zeros_like(x) if h is None else h
                                  for n, h, x in zip(self.flat.names, got, leaves,
                                                     strict=True)})

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat vector ``v`` ``[P]`` (returned in the products' dtype)."""
        v = torch.as_tensor(v)
        if v.shape != (self.dim,):
            raise ConfigError(f"v has shape {tuple(v.shape)}; expected [{self.dim}]")
        out = self._product(v.to(dtype=self.dtype, device=self.device))
        if not bool(torch.isfinite(out).all()):
            self._locate_nonfinite("meta-Hessian-vector product", v)
        return out

    __matmul__ = matvec

    def as_linear_operator(self):
        """A symmetric ``scipy.sparse.linalg.LinearOperator`` in float64."""
        from scipy.sparse.linalg import LinearOperator

        def mv(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64).reshape(-1)
            return self.matvec(torch.from_numpy(x.copy())).detach().cpu().double().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, dtype=np.float64)

    def dense(self) -> torch.Tensor:
        """The full ``[P, P]`` matrix from P products (small selections only)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return torch.stack([self.matvec(e) for e in eye], 1)

    def loss_at(self, delta: torch.Tensor) -> float:
        """``J(θ + δ)`` for a flat step ``δ`` ``[P]`` over the selection."""
        step = self.flat.unflatten(torch.as_tensor(delta).to(self.dtype).to(self.device))
        moved = {**self.theta, **{n: self.theta[n] + step[n] for n in self.flat.names}}
        return float(self.objective(moved).detach())

    # ---- failures ----------------------------------------------------------
    def _locate_nonfinite(self, what: str, v: torch.Tensor | None = None) -> None:
        """Find the first task whose own term is non-finite and stop naming it."""
        fn_path = self.path
        for i, tid in enumerate(self.task_ids):
            one = self.batch.tasks(slice(i, i + 1))
            leaves = {n: self.theta[n].clone().requires_grad_(True) for n in self.flat.names}
            try:
                loss = meta_objective(self.learner, one, fn_path)({**self.theta, **leaves})
                bad = not bool(torch.isfinite(loss))
                if not bad:
                    g = torch.autograd.grad(loss, list(leaves.values()), create_graph=True,
                                            allow_unused=True)
                    gf = [torch.zeros_like(x) if y is None else y
                          for y, x in zip(g, leaves.values(), strict=True)]
                    bad = not all(bool(torch.isfinite(y).all()) for y in gf)
                    if not bad and v is not None:
                        parts = self.flat.unflatten(v.to(self.dtype).to(self.device))
                        pairs = [(y, parts[n]) for y, n in zip(gf, self.flat.names,
                                                               strict=True) if y.requires_grad]
                        if pairs:
                            hv = torch.autograd.grad([y for y, _ in pairs],
                                                     list(leaves.values()),
                                                     grad_outputs=[u for _, u in pairs],
                                                     allow_unused=True)
                            bad = not all(bool(torch.isfinite(h).all())
                                          for h in hv if h is not None)
            except RuntimeError:
                bad = True
            if bad:
                raise RunError(f"non-finite {what}: task {tid} (batch index {i}) gives a "
                               "non-finite value at these parameters (its inner loop may "
                               "diverge); lower inner_lr (meta.inner_lr) or leave the task out")
        raise RunError(f"non-finite {what} over the {len(self.task_ids)} tasks, although no "
                       "single task is non-finite alone; check the parameters and the vector")


__all__ = ["PATHS", "MetaHessian", "check_learner", "meta_objective", "objective_batch",
           "physics_args", "task_losses_fn"]
