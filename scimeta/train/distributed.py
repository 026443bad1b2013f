"""Averaging meta-gradients across ranks with ``torch.distributed``.

The meta-batch is split across ranks (:func:`shard`); each rank computes its tasks'
meta-gradient with ``learner.meta_gradient`` and :func:`allreduce_mean` averages the
gradients in place, weighting each rank by its number of tasks, so every rank holds
the gradient of the mean over the whole meta-batch and takes the same optimizer step.
It plugs into :func:`~scimeta.train.step.meta_step` as ``reduce=``. The learner is
never wrapped in DDP, which does not support the double backward exact MAML needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..batch import TaskBatch
from ..errors import ConfigError, RunError
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


def allreduce_mean(grads: Grads, n_local: int, loss: float = 0.0,
                   stop: bool = False) -> tuple[float, bool]:
    """Replace each rank's gradients (of its mean over ``n_local`` tasks) by the
    gradient of the mean over all ranks' tasks, in place, and agree on the step.

    Args:
        grads: parameter name -> gradient (any shapes); ``None`` entries stay None
            (they must be None on every rank).
        n_local: tasks this rank's gradients average over.
        loss: this rank's meta-loss (mean over its ``n_local`` tasks).
        stop: whether this rank received a stop signal.

    Returns:
        (the meta-loss of the whole meta-batch, whether any rank asked to stop), the
        same on every rank. One all-reduce per dtype and device of the gradients: the
        task-weighted gradients, the weighted loss, the task count and the stop flag
        travel in one flat buffer (per-step latency, not bandwidth, bounds scaling at
        these sizes). Needs an initialised process group.
    """
    groups: dict[tuple[torch.dtype, torch.device], list[str]] = {}
    for key in sorted(grads):
        g = grads[key]
        if g is not None:
            groups.setdefault((g.dtype, g.device), []).append(key)
    if not groups:  # nothing to average: the scalars alone
        return sync_step(loss, n_local, stop)
    total, out = 0.0, (loss, stop)
    for i, ((dtype, device), keys) in enumerate(groups.items()):
        parts = [grads[k].reshape(-1) for k in keys]  # type: ignore[union-attr]
        if i == 0:  # the step's scalars ride with the first group, weighted like it
            parts.append(torch.tensor([loss, 1.0, float(stop)], dtype=dtype, device=device))
        flat = torch.cat(parts).mul_(float(n_local))
        _all_reduce(flat)
        if i == 0:  # [Σ n_r loss_r, Σ n_r, Σ n_r stop_r]
            total = float(flat[-2])
            out = (float(flat[-3]) / total, bool(flat[-1] > 0))
        flat.div_(total)
        offset = 0
        for k in keys:
            g = grads[k]
            assert g is not None
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
    return out


def _all_reduce(t: torch.Tensor) -> None:
    """``dist.all_reduce(t)`` (sum, in place). On CPU tensors (gloo) the rank polls
    the pending work and yields its core between polls, unless
    ``SCIMETA_DIST_WAIT=block``: a rank that sleeps in the collective is woken late
    once its core has idled (on the 2-vCPU development VM a 17.7 kB all-reduce right
    after 25 ms of compute took a median 2.9 ms blocking, 0.6-0.8 ms polling;
    docs/scale-out.md). A failed or timed-out collective still raises, from wait()."""
    import torch.distributed as dist

    from ..runtime.dist_env import wait_mode

    if t.device.type != "cpu" or wait_mode() == "block":
        dist.all_reduce(t)
        return
    work = dist.all_reduce(t, async_op=True)
    while not work.is_completed():
        os.sched_yield()
    work.wait()


def sync_step(loss: float, n_local: int, stop: bool) -> tuple[float, bool]:
    """Agree on a step's outcome across ranks (one small all-reduce).

    Args:
        loss: this rank's meta-loss (mean over its ``n_local`` tasks).
        n_local: tasks this rank took.
        stop: whether this rank received a stop signal.

    Returns:
        (the meta-loss of the whole meta-batch, whether any rank asked to stop), the
        same on every rank, so all ranks stop at the same step boundary.
    """
    t = torch.tensor([loss * n_local, float(n_local), float(stop)], dtype=torch.float64)
    _all_reduce(t)
    return float(t[0] / t[1]), bool(t[2] > 0)


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextmanager
def collective_errors(rank: int, world: int) -> Iterator[None]:
    """Turn a failed or timed-out collective into a :class:`RunError` that says why:
    another rank most likely failed (its own error is in its log)."""
    try:
        yield
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"rank {rank} of {world}: a collective operation failed ({first}); another "
            "rank probably stopped with an error (see its output) or exceeded "
            "SCIMETA_DIST_TIMEOUT") from None
