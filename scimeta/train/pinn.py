"""Physics-informed (PINN) adaptation helpers for the classic Burgers problem and alike.

The initial and boundary conditions of a PINN are known from the problem statement,
so they are written as an ordinary *support set*: points ``(t, x)`` with their known
values. The support MSE of a learner then *is* the IC/BC loss, and a learner with an
inner :class:`~scimeta.meta.PhysicsLoss` adapts on

    L(φ) = MSE_{IC/BC (+ interior data)}(φ) + λ · mean_collocation (r(φ) / s)²

exactly as in meta-training. :func:`adapt_pinn` runs Adam on that loss for a batch of
tasks at once (the learner's hand-batched physics path when it has one) and records a
caller-given error, e.g. the relative L2 error over a task's whole reference field
(:func:`relative_l2`).

Coordinates are ``(t, x)`` in the family's units (s, m); values in state units (m/s).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..batch import TaskBatch
from ..errors import ConfigError
from ..meta import MAML, RATE_PREFIX
from ..typing import Params
from ._adapt_steps import BatchedAdam, task_rates

log = logging.getLogger(__name__)

#: error function of the batched adapted parameters (each ``[B, *shape]``) -> ``[B]``
ErrorFn = Callable[[Params], torch.Tensor]


def minus_sine(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The classic initial condition u0(x) = −sin(πx) (m/s) at x (m), same shape."""
    x = torch.as_tensor(x)
    return -torch.sin(math.pi * x)


def ic_bc_support(n_ic: int, n_bc: int, t_end: float = 1.0, x_lo: float = -1.0,
                  x_hi: float = 1.0, u0: Callable[[torch.Tensor], torch.Tensor] = minus_sine,
                  boundary_value: float = 0.0, dtype: torch.dtype = torch.float32
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The IC/BC support set of a 1D problem on ``[x_lo, x_hi] × [0, t_end]``.

    ``n_ic`` points ``(0, x_i)``, x_i evenly spaced on ``[x_lo, x_hi]`` (both ends
    included), with value ``u0(x_i)``; then ``n_bc`` times t_j evenly spaced on
    ``(0, t_end]`` (t = 0 is already an IC point), each at ``x_lo`` and at ``x_hi``,
    with ``boundary_value``. Returns x ``[n_ic + 2 n_bc, 2]`` (columns t, x) and
    y ``[n_ic + 2 n_bc, 1]``. The values are computed in float64, then cast.
    """
    if n_ic < 2 or n_bc < 1:
        raise ConfigError(f"n_ic={n_ic}, n_bc={n_bc}: need n_ic >= 2 and n_bc >= 1")
    if not (t_end > 0 and x_hi > x_lo):
        raise ConfigError(f"t_end={t_end}, [x_lo, x_hi]=[{x_lo}, {x_hi}]: need t_end > 0 "
                          "and x_hi > x_lo")
    xs = torch.linspace(x_lo, x_hi, n_ic, dtype=torch.float64)
    ic_x = torch.stack([torch.zeros_like(xs), xs], dim=1)
    ic_y = u0(xs).reshape(-1, 1).to(torch.float64)
    ts = torch.linspace(0.0, t_end, n_bc + 1, dtype=torch.float64)[1:]
    bc_x = torch.cat([torch.stack([ts, torch.full_like(ts, x_lo)], 1),
                      torch.stack([ts, torch.full_like(ts, x_hi)], 1)])
    bc_y = torch.full((2 * n_bc, 1), float(boundary_value), dtype=torch.float64)
    return torch.cat([ic_x, bc_x]).to(dtype), torch.cat([ic_y, bc_y]).to(dtype)


def pinn_batch(batch: TaskBatch, ic_bc: tuple[torch.Tensor, torch.Tensor], n_data: int = 0,
               collocation_x: torch.Tensor | None = None) -> TaskBatch:
    """``batch`` with its support set replaced by the IC/BC points (the same for every
    task) followed by the first ``n_data`` of its own support points (interior data).

    ``ic_bc``: (x ``[K, 2]``, y ``[K, 1]``) from :func:`ic_bc_support`. ``collocation_x``
    ``[B, C, 2]`` replaces the batch's collocation points when given. Query, params
    stay. Returns support tensors ``[B, K + n_data, ·]``.
    """
    b = batch.num_tasks
    if not 0 <= n_data <= batch.support_x.shape[1]:
        raise ConfigError(f"n_data={n_data} is not allowed; the batch holds "
                          f"{batch.support_x.shape[1]} support points per task")
    sx = ic_bc[0].to(batch.support_x).unsqueeze(0).expand(b, -1, -1)
    sy = ic_bc[1].to(batch.support_y).unsqueeze(0).expand(b, -1, -1)
    sx = torch.cat([sx, batch.support_x[:, :n_data]], 1)
    sy = torch.cat([sy, batch.support_y[:, :n_data]], 1)
    cx = batch.collocation_x if collocation_x is None else collocation_x
    return batch._replace(support_x=sx, support_y=sy, collocation_x=cx)


def uniform_collocation(rng: np.random.Generator, n_tasks: int, n_points: int,
                        box: Sequence[tuple[float, float]], dtype: torch.dtype = torch.float32
                        ) -> torch.Tensor:
    """Collocation points ``[n_tasks, n_points, len(box)]`` uniform in ``box`` (one
    (lo, hi) per input column, e.g. ((0, 1), (-1, 1)) for (t, x))."""
    lo = np.array([b[0] for b in box], dtype=np.float64)
    hi = np.array([b[1] for b in box], dtype=np.float64)
    u = rng.random((n_tasks, n_points, len(box)))
    return torch.as_tensor(lo + u * (hi - lo), dtype=dtype)


def relative_l2(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """‖pred − ref‖₂ / ‖ref‖₂ over the last two axes (points, channels): ``[..., N, C]`` ->
    ``[...]`` (dimensionless). 0 for ref itself, 1 for zeros; inf/NaN if ref is 0."""
    num = (pred - ref).square().sum(dim=(-2, -1))
    return (num / ref.square().sum(dim=(-2, -1))).sqrt()


def steps_to_threshold(errors: torch.Tensor | np.ndarray, steps: Sequence[int],
                       threshold: float) -> np.ndarray:
    """First recorded step at which the error is <= ``threshold``, per task.

    ``errors`` ``[S, B]`` recorded at ``steps`` (increasing); returns ``[B]`` float64,
    NaN where not reached within ``steps[-1]`` (NaN errors never count as reached).
    """
    e = np.asarray(errors, dtype=np.float64)
    st = np.asarray(steps, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] != len(st):
        raise ConfigError(f"errors has shape {e.shape}; need [len(steps)={len(st)}, B]")
    hit = np.nan_to_num(e, nan=np.inf) <= threshold
    first = np.argmax(hit, axis=0)
    return np.where(hit.any(axis=0), st[first], np.nan)


def adapt_pinn(learner: MAML, params: Params, batch: TaskBatch, lr: float, steps: int,
               record: Sequence[int], error: ErrorFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam (torch.optim.Adam's update, per task) on each task's support loss.

    ``learner``: its ``support_loss`` (support MSE + inner physics term) is descended,
    through its hand-batched physics path when it has one. ``params``: the init,
    unbatched. ``batch``: ``[B, K, d]`` tensors with collocation points and params.
    ``record``: steps in ``[0, steps]`` at which ``error`` (batched parameters ->
    ``[B]``) is evaluated. Returns (errors ``[len(record), B]`` float64, the support losses
    ``[B]`` at the last step taken, i.e. before the final update); a non-finite loss
    makes that task's later errors NaN.
    """
    rec = sorted(set(int(r) for r in record))
    if not rec or rec[0] < 0 or rec[-1] > steps:
        raise ConfigError(f"record={record!r} must lie in [0, steps={steps}]")
    model_p = {k: v.detach() for k, v in params.items() if not k.startswith(RATE_PREFIX)}
    b = batch.num_tasks
    fast = {n: v.unsqueeze(0).expand(b, *v.shape).clone() for n, v in model_p.items()}

    adam = BatchedAdam(fast, task_rates(lr, b, next(iter(fast.values()))))
    out = torch.full((len(rec), b), math.nan, dtype=torch.float64)
    bad = torch.zeros(b, dtype=torch.bool)
    loss = torch.full((b,), math.nan)
    j = 0
    for k in range(steps + 1):
        if k == rec[j]:
            with torch.no_grad():
                e = error(fast).detach().to(torch.float64).cpu()
            out[j] = torch.where(bad | ~torch.isfinite(e), math.nan, e)
            j += 1
            if j == len(rec):
                break
        loss, g = learner.support_grads(fast, {}, batch)  # the hand-batched path if any
        bad |= ~torch.isfinite(loss).cpu()
        with torch.no_grad():
            fast = adam.step(fast, g)  # adapt_curve's Adam
    log.debug("adapt_pinn: %d tasks, %d steps, final loss %s", b, steps, loss.tolist())
    return out, loss


__all__ = ["ErrorFn", "adapt_pinn", "ic_bc_support", "minus_sine", "pinn_batch",
           "relative_l2", "steps_to_threshold", "uniform_collocation"]
