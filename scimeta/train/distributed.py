"""Averaging meta-gradients across ranks with ``torch.distributed``.

The meta-batch is split across ranks (:func:`shard`); each rank computes its tasks'
meta-gradient with ``learner.meta_gradient`` and :func:`allreduce_mean` averages the
gradients in place, weighting each rank by its number of tasks, so every rank holds
the gradient of the mean over the whole meta-batch and takes the same optimizer step.
It plugs into :func:`~scimeta.train.step.meta_step` as ``reduce=``. The learner is
never wrapped in DDP, which does not support the double backward exact MAML needs.
"""

from __future__ import annotations

import torch

from ..batch import TaskBatch
from ..errors import ConfigError
from ..typing import Grads


def shard(batch: TaskBatch, rank: int, world: int) -> TaskBatch:
    """Rank ``rank``'s contiguous share of the B tasks (sizes differ by at most one)."""
    if not 0 <= rank < world:
        raise ConfigError(f"rank={rank} is not allowed; it must lie in [0, world={world})")
    n = batch.num_tasks
    if n < world:
        raise ConfigError(f"meta-batch of {n} tasks cannot be split across {world} ranks")
    lo, hi = rank * n // world, (rank + 1) * n // world
    return batch.tasks(slice(lo, hi))


def allreduce_mean(grads: Grads, n_local: int) -> None:
    """Replace each rank's gradients (of its mean over ``n_local`` tasks) by the
    gradient of the mean over all ranks' tasks, in place. ``None`` entries stay None
    (they must be None on every rank). Needs an initialised process group."""
    import torch.distributed as dist

    total = torch.tensor([float(n_local)], dtype=torch.float64)
    dist.all_reduce(total)
    weight = n_local / float(total.item())
    for key in sorted(grads):
        g = grads[key]
        if g is None:
            continue
        g.mul_(weight)
        dist.all_reduce(g)
