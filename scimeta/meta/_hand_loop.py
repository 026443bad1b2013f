"""The inner loop of the hand-batched paths (:mod:`._fast`, :mod:`._fast_physics`):
the parameters after each step, the per-task meta-objective, and the chunked mean
over tasks. Only the gradient differs between the paths; the update is the
learner's :class:`~._update.InnerLoop` rule in every case."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from ..batch import TaskBatch
from ..typing import Params
from ._update import InnerLoop

__all__ = ["chunked_mean", "inner_states", "unroll"]


def inner_states(loop: InnerLoop, p: Params, rates: Params,
                 grads: Callable[[Params], tuple[Params, float]],
                 steps: int | None = None) -> Iterator[Params]:
    """The hand-batched inner loop: the parameters after each of ``steps`` steps
    (default ``loop.steps``).

    ``grads(state)`` gives the support-loss gradients of the adapted parameters (each
    ``[B, *shape]``) and a factor on them; ``loop.rule`` takes the steps (one fused
    multi-tensor update for a fixed rate). Adapted entries become ``[B, *shape]`` at
    the first step; the others stay shared.
    """
    adapted = set(loop.adapted)
    names = [n for n in p if n in adapted]
    # the task dimension matters to a clipping rule only (whose norm is per task); a
    # rule without a clip keeps the plain update signature
    extra = {"task_dims": 1} if loop.rule.max_norm > 0 else {}
    state = dict(p)
    for k in range(loop.steps if steps is None else steps):
        g, scale = grads(state)
        state = {**state, **loop.rule.update({n: state[n] for n in names}, g, rates, k,
                                             grad_scale=scale, fused=not loop.rule.learned,
                                             **extra)}
        yield state


def unroll(loop: InnerLoop, p: Params, rates: Params,
           grads: Callable[[Params], tuple[Params, float]],
           query: Callable[[Params], torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The inner loop of the hand-batched paths: per-task meta-objective ``[B]``.

    :func:`inner_states` takes the steps; ``query(state)`` is the per-task query
    loss, after the last step or weighted after each (MAML++'s multi-step loss).
    ``like``: a ``[B, ...]`` tensor whose dtype and device the all-zero-weights
    result takes.
    """
    state, terms, weights = dict(p), [], loop.step_weights
    for k, state in enumerate(inner_states(loop, p, rates, grads)):
        if weights is not None and weights[k] != 0:
            terms.append(weights[k] * query(state))
    if weights is None:
        return query(state)
    return torch.stack(terms).sum(0) if terms else like.new_zeros(like.shape[0])


def chunked_mean(task_losses: Callable[[TaskBatch], torch.Tensor], b: TaskBatch,
                 chunk_size: int | None) -> torch.Tensor:
    """Mean over the B tasks of ``task_losses(part)`` ``[b]``, ``chunk_size`` tasks at a
    time (all at once when None), like ``vmap``'s ``chunk_size``."""
    n = b.num_tasks
    step = chunk_size or n
    total = b.support_x.new_zeros(())
    for s in range(0, n, step):
        total = total + task_losses(b.tasks(slice(s, s + step))).sum()
    return total / n
