"""The task-level inner Hessian at θ and the largest stable inner rate.

Plain gradient descent on a task's support loss with rate α is stable near θ when
``α < 2 / λ_max``, λ_max the largest eigenvalue of that task's support-loss Hessian
over the adapted parameters (on a quadratic it diverges once ``α λ_max > 2``).
:func:`inner_top_eigenvalues` finds λ_max for every task of a batch at once:
batched Lanczos (full reorthogonalisation) on per-task Hessian-vector products of
:meth:`~scimeta.meta.MAML.support_loss` (``vmap`` over tasks, double backward).
:func:`stable_inner_rates` turns them into ``2/λ_max`` and logs a warning when the
learner's ``inner_lr`` (``meta.inner_lr``) exceeds it for more than a given share
of the tasks. Learned rates (Meta-SGD, MAML++) are not examined: the comparison is
with the scalar ``inner_lr``, their initial value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import vmap

from ..batch import TaskBatch
from ..bayes import Flat
from ..errors import ConfigError, RunError
from ..meta import MAML
from ..typing import ParamsLike
from ._ops import physics_args

log = logging.getLogger(__name__)


def _support_hvp(learner: MAML, params: ParamsLike, batch: TaskBatch):
    """(Flat layout, batched product ``[B, P] -> [B, P]``) of the support-loss Hessians."""
    if not isinstance(learner, MAML):
        raise ConfigError(f"learner={type(learner).__name__} is not a scimeta meta-learner")
    if not isinstance(batch, TaskBatch):
        raise ConfigError(f"batch={type(batch).__name__} must be a scimeta.meta.TaskBatch")
    p, _ = learner.split(params)
    adapted = list(learner.loop.adapted)
    flat = Flat(tuple(adapted), tuple(tuple(p[n].shape) for n in adapted))
    n_tasks = batch.support_x.shape[0]
    fixed = {n: v.detach() for n, v in p.items() if n not in adapted}
    leaves = {n: p[n].detach().unsqueeze(0).expand(n_tasks, *p[n].shape).clone()
              .requires_grad_(True) for n in adapted}
    (cx, tp), (cd, pd) = physics_args(learner, batch) if learner.physics is not None and \
        learner.physics.applies("inner") else ((None, None), (None, None))

    def one(fast, sx, sy, c, t):
        return learner.support_loss({**fixed, **fast}, sx, sy, c, t)

    losses = vmap(one, in_dims=(0, 0, 0, cd, pd), chunk_size=learner.chunk_size)(
        leaves, batch.support_x, batch.support_y, cx, tp)
    raw = torch.autograd.grad(losses.sum(), list(leaves.values()), create_graph=True,
                              allow_unused=True)
    grads = [torch.zeros_like(v) if g is None else g
             for g, v in zip(raw, leaves.values(), strict=True)]
    live = [i for i, g in enumerate(grads) if g.requires_grad]
    vals = list(leaves.values())

    def hvp(v: torch.Tensor) -> torch.Tensor:
        parts = flat.unflatten(v)
        if not live:
            return torch.zeros_like(v)
        got = torch.autograd.grad([grads[i] for i in live], vals,
                                  grad_outputs=[parts[adapted[i]] for i in live],
                                  retain_graph=True, allow_unused=True)
        if all(h is None for h in got):
            raise RuntimeError("the support loss's gradient graph does not reach the "
                               "parameters (an operation without a second derivative)")
        return flat.flatten({n: torch.zeros_like(x) if h is None else h
                             for n, h, x in zip(adapted, got, vals, strict=True)})

    return flat, losses.detach(), hvp


def inner_top_eigenvalues(learner: MAML, params: ParamsLike, batch: TaskBatch, *,
                          steps: int = 30, seed: int = 0,
                          task_ids: list | None = None) -> np.ndarray:
    """λ_max ``[B]`` of each task's support-loss Hessian over the adapted parameters at
    θ = ``params``: ``min(steps, P)`` batched Lanczos steps from a random start (the
    largest Ritz value; exact once ``steps >= P``)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps={steps!r} is not allowed; it must be an int >= 1")
    flat, losses, hvp = _support_hvp(learner, params, batch)
    n_tasks, dim = losses.shape[0], flat.numel
    ids = list(range(n_tasks)) if task_ids is None else list(task_ids)
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        i = int(bad[0])
        raise RunError(f"task {ids[i]} (batch index {i}) has a non-finite support loss at "
                       "these parameters")
    m = min(steps, dim)
    dt = losses.dtype
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n_tasks, dim, generator=g, dtype=torch.float64).to(dt).to(losses.device)
    q = q / q.norm(dim=1, keepdim=True)
    basis = [q]
    alpha = torch.zeros(n_tasks, m, dtype=torch.float64)
    beta = torch.zeros(n_tasks, m, dtype=torch.float64)
    size = torch.full((n_tasks,), m, dtype=torch.long)
    for j in range(m):
        w = hvp(basis[j])
        if not bool(torch.isfinite(w).all()):
            i = int((~torch.isfinite(w)).any(1).nonzero()[0])
            raise RunError(f"task {ids[i]} (batch index {i}) gives a non-finite inner "
                           "Hessian-vector product at these parameters")
        a = (basis[j] * w).sum(1)
        alpha[:, j] = a.double().cpu()
        qs = torch.stack(basis, 1)  # [B, j + 1, P]
        for _ in range(2):
            w = w - torch.einsum("bjp,bj->bp", qs, torch.einsum("bjp,bp->bj", qs, w))
        b = w.norm(dim=1)
        if j == m - 1:
            break
        scale = torch.maximum(alpha[:, :j + 1].abs().amax(1), beta[:, :j].amax(1)
                              if j else torch.zeros(n_tasks, dtype=torch.float64))
        stop = (b.double().cpu() <= 1e-10 * scale.clamp_min(1e-300)) & (size == m)
        size[stop] = j + 1
        beta[:, j] = b.double().cpu()
        nxt = w / b.clamp_min(torch.finfo(dt).tiny)[:, None]
        nxt[(size <= j + 1).to(nxt.device)] = 0.0  # stopped tasks: no further directions
        basis.append(nxt)
    out = np.empty(n_tasks)
    for i in range(n_tasks):
        s = int(size[i])
        a, b = alpha[i, :s].numpy(), beta[i, :s - 1].numpy()
        out[i] = np.linalg.eigvalsh(np.diag(a) + np.diag(b, 1) + np.diag(b, -1))[-1]
    return out


@dataclass(frozen=True)
class StableRates:
    """Per task: ``lambda_max`` ``[B]`` and the largest stable rate ``rate = 2/λ_max``
    (inf where λ_max <= 0), against the learner's ``inner_lr``."""

    lambda_max: np.ndarray
    rate: np.ndarray
    inner_lr: float

    @property
    def unstable(self) -> np.ndarray:
        """``[B]`` bool: inner_lr exceeds the task's stable rate."""
        return self.inner_lr > self.rate

    @property
    def share_unstable(self) -> float:
        return float(self.unstable.mean()) if len(self.rate) else 0.0

    def quantiles(self, qs: tuple[float, ...] = (0.0, 0.1, 0.5, 0.9, 1.0)) -> dict[float, float]:
        """Quantiles of the stable rates over tasks."""
        return {q: float(np.quantile(self.rate, q)) for q in qs}


def stable_inner_rates(learner: MAML, params: ParamsLike, batch: TaskBatch, *,
                       steps: int = 30, seed: int = 0, warn_share: float = 0.0,
                       label: str = "", task_ids: list | None = None) -> StableRates:
    """:class:`StableRates` of the batch's tasks at ``params``; logs a warning when
    ``learner.inner_lr`` exceeds ``2/λ_max`` for more than ``warn_share`` of them."""
    if not 0 <= warn_share < 1:
        raise ConfigError(f"warn_share={warn_share!r} is not allowed; it must be in [0, 1)")
    lam = inner_top_eigenvalues(learner, params, batch, steps=steps, seed=seed,
                                task_ids=task_ids)
    with np.errstate(divide="ignore"):
        rate = np.where(lam > 0, 2.0 / np.where(lam > 0, lam, 1.0), np.inf)
    out = StableRates(lam, rate, float(learner.inner_lr))
    if out.share_unstable > warn_share:
        where = f" of {label}" if label else ""
        log.warning("inner_lr = %g (meta.inner_lr) exceeds the largest stable inner rate "
                    "2/λ_max for %d of %d tasks%s (%.0f%%); median 2/λ_max = %.3g, smallest "
                    "%.3g: the inner loop diverges on those tasks from this init",
                    out.inner_lr, int(out.unstable.sum()), len(rate), where,
                    100 * out.share_unstable, float(np.median(rate)), float(rate.min()))
    return out


__all__ = ["StableRates", "inner_top_eigenvalues", "stable_inner_rates"]
