"""Training of the inits and test-time adaptation for ``bench/meta_pinn.py``.

Nothing here prints; see docs/meta-pinn.md for the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from _pinn_common import Evaluator, Problem, Size
from torch import nn

from scimeta.batch import TaskBatch
from scimeta.data import TaskReader
from scimeta.meta import MAML, Conditioned, Joint
from scimeta.train.conditioned import condition_batch
from scimeta.train.pinn import adapt_pinn, pinn_batch

Box = tuple[list[float], list[float]]


def train_maml(model: nn.Module, reader: TaskReader, train_idx: np.ndarray, size: Size,
               scale: list[float], problem: Problem,
               rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], list[float]]:
    """MAML: inner = IC/BC MSE + λ·residual (+ periodic term) (SGD), outer = interior
    query MSE."""
    phys = problem.physics(size.meta_weight, scale)
    maml = MAML(model, inner_lr=size.inner_lr, inner_steps=size.inner_steps, physics=phys)
    params = maml.init_params()
    opt = torch.optim.Adam(params.values(), lr=size.meta_lr)
    losses = []
    for _ in range(size.meta_iters):
        idx = rng.choice(train_idx, size=size.meta_batch, replace=False)
        cx = problem.collocation(rng, size.meta_batch, size.train_colloc)
        batch = pinn_batch(reader.batch(idx), problem.ic_bc, 0, cx)
        loss, grads = maml.meta_gradient(params, batch)
        if not bool(torch.isfinite(loss)):
            continue
        for k, g in grads.items():
            params[k].grad = g
        torch.nn.utils.clip_grad_norm_(list(params.values()), 10.0)
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    return {k: v.detach() for k, v in params.items()}, losses


def train_joint(model: nn.Module, reader: TaskReader, train_idx: np.ndarray, size: Size,
                rng: np.random.Generator, box: Box | None
                ) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Joint (box None) or conditioned (box = training parameter box): pooled data MSE."""
    learner = (Joint if box is None else Conditioned)(model, inner_lr=0.01, inner_steps=1)
    params = learner.init_params()
    opt = torch.optim.Adam(params.values(), lr=size.meta_lr)
    losses = []
    for _ in range(size.joint_iters):
        idx = rng.choice(train_idx, size=min(size.joint_batch, len(train_idx)), replace=False)
        batch = reader.batch(idx)
        if box is not None:
            batch = condition_batch(batch, *box)
        loss = learner.meta_loss(params, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    return {k: v.detach() for k, v in params.items()}, losses


def _learner_and_batch(init: str, model: nn.Module, reader: TaskReader,
                       tasks: Sequence[int], n_data: int, weight: float, size: Size,
                       scale: list[float], problem: Problem, colloc_seed: int,
                       box: Box) -> tuple[MAML, TaskBatch, torch.Tensor | None]:
    """The adapting learner, the tasks' PINN batch and (conditioned) the scaled params."""
    extra = problem.setup.n_params if init == "conditioned" else 0
    learner = MAML(model, inner_lr=0.01, inner_steps=1,
                   physics=problem.physics(weight, scale, extra))
    cx = problem.collocation(np.random.default_rng(colloc_seed), len(tasks), size.test_colloc)
    batch = pinn_batch(reader.batch(list(tasks)), problem.ic_bc, n_data, cx)
    cond = None
    if extra:
        batch = condition_batch(batch, *box)
        cond = batch.support_x[:, 0, 2:]
    return learner, batch, cond


def run_init(init: str, params: dict[str, torch.Tensor], model: nn.Module, reader: TaskReader,
             tasks: Sequence[int], n_data: int, weight: float, size: Size, scale: list[float],
             problem: Problem, colloc_seed: int, box: Box, record: Sequence[int],
             stride: int, rate: float) -> np.ndarray:
    """Adapt ``init`` on ``tasks`` of ``reader`` with Adam at ``rate``; relative L2
    ``[len(record), B]``."""
    learner, batch, cond = _learner_and_batch(init, model, reader, tasks, n_data, weight,
                                              size, scale, problem, colloc_seed, box)
    ev = Evaluator(model, reader, tasks, stride, cond)
    err, _ = adapt_pinn(learner, params, batch, rate, max(record), record, ev)
    return err.numpy()


def run_two(init: str, params: dict[str, torch.Tensor], model: nn.Module, reader: TaskReader,
            tasks: Sequence[int], n_data: int, weight: float, size: Size, scale: list[float],
            problem: Problem, colloc_seed: int, box: Box, record: Sequence[int],
            full: Evaluator, coarse: Evaluator,
            rate: float) -> tuple[np.ndarray, np.ndarray]:
    """One adaptation (Adam at ``rate``); relative L2 on the full grid at the budgets
    and on the coarse grid at every recorded step: ``([R, B], [R, B])`` (full-grid rows
    off the budgets are NaN)."""
    learner, batch, cond = _learner_and_batch(init, model, reader, tasks, n_data, weight,
                                              size, scale, problem, colloc_seed, box)
    if cond is not None:
        full.cond = coarse.cond = cond
    budgets = set(size.budgets)
    fine_rows: list[torch.Tensor] = []
    counter = iter(sorted(set(record)))

    def both(fast: dict[str, torch.Tensor]) -> torch.Tensor:
        k = next(counter)
        fine_rows.append(full(fast) if k in budgets
                         else torch.full((len(tasks),), float("nan")))
        return coarse(fast)

    err, _ = adapt_pinn(learner, params, batch, rate, max(record), record, both)
    return torch.stack(fine_rows).double().numpy(), err.numpy()
