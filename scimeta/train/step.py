"""One meta-update, separate from everything that watches it.

:func:`meta_step` is the whole of what an iteration changes: the learner's
(loss, meta-gradient), an optional reduction of the gradients (the seam for
averaging across ranks), clipping and the optimizer step. Logging, validation,
checkpoints and progress are callbacks (:mod:`.callbacks`) run after it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..batch import TaskBatch
from ..meta import MAML
from ..typing import Grads, Params

#: A function that combines per-rank gradients in place (e.g. an all-reduce mean).
#: (gradients, this rank's meta-loss) -> the meta-loss to report (None: keep it)
GradReducer = Callable[[Grads, float], float | None]


def meta_step(learner: MAML, params: Params, batch: TaskBatch, opt: torch.optim.Optimizer,
              grad_clip: float = 0.0, reduce: GradReducer | None = None) -> float:
    """Apply one meta-update to ``params`` in place.

    Args:
        learner: any registered learner (``learner.meta_gradient`` gives the exact
            meta-gradient, or Reptile's pseudo-gradient).
        params: θ, leaf tensors owned by ``opt``.
        batch: the meta-batch, ``[B, K, d]`` tensors.
        opt: the outer optimizer.
        grad_clip: clip the global gradient norm to this (0: no clipping).
        reduce: sees (and may change in place) the gradients before clipping, with
            this process's meta-loss, e.g. an all-reduce mean across ranks; a float it
            returns replaces the loss (the whole meta-batch's, across ranks).

    Returns:
        The meta-loss (a float). A non-finite loss is returned without touching
        ``params``, so the caller can stop on the last good state.
    """
    opt.zero_grad(set_to_none=True)
    loss_t, grads = learner.meta_gradient(params, batch)
    loss = float(loss_t)
    if not math.isfinite(loss):
        return loss
    if reduce is not None:
        reduced = reduce(grads, loss)
        loss = loss if reduced is None else reduced
    for name, g in grads.items():
        params[name].grad = g
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(list(params.values()), grad_clip)
    opt.step()
    return loss
