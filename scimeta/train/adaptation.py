"""Batched test-time adaptation of many tasks from one init: SGD, Adam or learned rates.

Every task adapts on its own support loss (``learner.support_loss``: the data
misfit plus the inner physics term when the run uses one); its query *data* loss
(``learner.data_loss``, the MSE the run measures) is recorded at a few step
budgets, without keeping a graph. Tasks are batched with ``torch.func.vmap``, and
each task may have its own rate, so a grid of candidate rates runs as one batch
of tasks × rates (:mod:`.selection`).

Optimizers (:data:`OPTIMIZERS`):

- ``"sgd"``: ``φ ← φ − α ∇L_s(φ)`` on every model parameter — the inner rule of a
  plain MAML learner at the fixed rate α;
- ``"adam"``: Adam on the support loss, per task (its own moments), with
  torch.optim.Adam's defaults β = (0.9, 0.999), ε = 1e-8 and its update written
  out on the batched parameters;
- ``"lbfgs"``: L-BFGS per task with an Armijo backtracking line search, one support
  loss and gradient per step (:mod:`._lbfgs`); the rate is its trial step length;
- ``"learned"``: the init's own learner's inner rule exactly as in meta-training
  (``learner.loop.rule.update``): Meta-SGD's per-parameter rates, MAML++'s per-step
  rates, the fixed ``inner_lr`` otherwise, on the parameters that learner adapts
  (ANIL: the head). Past the K trained steps, MAML++ keeps step K−1's rates.

Divergence: a task diverges at step k when its support loss at φ_k is non-finite
or above :data:`DIVERGENCE_FACTOR` × its value at φ_0, or its query MSE is
non-finite. The flag is sticky: from that budget on the task is ``diverged`` and
its query MSE is NaN — never a number that could be averaged in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.func import vmap

from ..batch import TaskBatch
from ..errors import ConfigError
from ..meta import MAML, RATE_PREFIX
from ..typing import Params
from ._adapt_steps import Accepted, BatchedAdam, first_stage, per_task, task_rates
from ._lbfgs import BatchedLBFGS

OPTIMIZERS = ("sgd", "adam", "lbfgs", "learned")
#: a support loss above this multiple of its initial value marks a task diverged
DIVERGENCE_FACTOR = 10.0
#: step budgets at which the query MSE is recorded by default
DEFAULT_BUDGETS = (0, 1, 5, 10, 50, 200)


@dataclass(frozen=True)
class Curve:
    """Query data MSE of B tasks at each budget.

    ``query_mse`` ``[n_budgets, B]`` float64 (NaN where diverged), ``diverged``
    ``[n_budgets, B]`` bool, ``seconds``: wall time of the whole adaptation
    (adapting and predicting at every budget), ``params``: the adapted model
    parameters at the last budget, each ``[B, *shape]`` (kept only on request).
    """

    query_mse: torch.Tensor
    diverged: torch.Tensor
    seconds: float
    params: Params | None = None


def check_budgets(budgets: Sequence[int] | int) -> tuple[int, ...]:
    """Sorted distinct step budgets, each an int >= 0; ConfigError otherwise."""
    items: list = list(budgets) if isinstance(budgets, Sequence) else [budgets]
    bad = [b for b in items if isinstance(b, bool) or not isinstance(b, int) or b < 0]
    if not items or bad:
        raise ConfigError(f"budgets={budgets!r} is not allowed; give one or more ints >= 0 "
                          "(inner steps)")
    return tuple(sorted(set(items)))


def check_optimizer(name: str) -> str:
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer={name!r} is not allowed; use one of "
                          f"{', '.join(OPTIMIZERS)}")
    return name


def adapt_curve(learner: MAML, params: Mapping[str, torch.Tensor], batch: TaskBatch,
                optimizer: str, rate: float | torch.Tensor | None,
                budgets: Sequence[int] = DEFAULT_BUDGETS, *,
                factor: float = DIVERGENCE_FACTOR, keep_params: bool = False,
                backtrack: bool = False, names: Sequence[str] | None = None,
                first: tuple[Sequence[str], int] | None = None,
                first_learner: MAML | None = None) -> Curve:
    """Adapt every task of ``batch`` from ``params`` and record its query MSE at ``budgets``.

    ``params``: the init (model parameters and, for ``"learned"``, the
    ``inner_lr.*`` rates), unbatched. ``batch``: tensors ``[B, K, d]``. ``rate``: a
    number > 0 or one per task ``[B]`` (ignored, and may be None, for
    ``"learned"``). ``factor``: the divergence threshold on the support-loss
    growth. Runs to ``max(budgets)`` steps; see :class:`Curve`.

    ``backtrack`` (``sgd``, ``adam``): a step after which a task's support loss is
    not lower (or not finite) is undone — parameters and Adam moments back to before
    it — and that task's rate halved; the step still counts towards the budget, so a
    budget stays a number of gradient evaluations. The support loss then never
    grows, so such a task cannot diverge.

    ``names``: the parameters to adapt (default: every one; ``"learned"`` always
    adapts the learner's inner-loop set, ``learner.loop.adapted``); the rest stay at
    the init. Passing an init's own inner-loop set (ANIL's head, CAVIA's context)
    adapts it as its algorithm does, with any optimizer.

    ``first = (subset, n)``: the first ``n`` steps adapt only ``subset`` of ``names``
    (the gradient of the others is zeroed), the later ones every name — the initial-
    state decoder fits its code before its weights (:mod:`.decoder`). Each step is
    still one evaluation; L-BFGS restarts its curvature pairs at the switch, from
    every task's accepted point (the step of the switch evaluates no new candidate).
    ``first_learner``: the learner whose support loss the first stage descends
    (default ``learner``), e.g. a data-only one, so that a code is fitted to the data
    before the residual joins; its model must be ``learner``'s. With it, the
    divergence threshold and the backtracking restart from the first evaluation of
    the second stage's loss.
    """
    check_optimizer(optimizer)
    budgets = check_budgets(budgets)
    if not (factor > 1):
        raise ConfigError(f"factor={factor!r} is not allowed; it must be a number > 1")
    if backtrack and optimizer == "learned":
        raise ConfigError("backtrack=True is not allowed with optimizer='learned' (the "
                          "learned rates are applied as trained); use sgd or adam")
    backtrack = backtrack and optimizer != "lbfgs"  # its line search already backtracks
    t0 = time.perf_counter()
    model_p = {k: v.detach() for k, v in params.items() if not k.startswith(RATE_PREFIX)}
    rates = {k: v.detach() for k, v in params.items() if k.startswith(RATE_PREFIX)}
    missing = [n for n in learner.names if n not in model_p]
    if missing:
        raise ConfigError(f"params lacks model parameters {missing}")
    if optimizer == "learned":
        names = learner.loop.adapted
    elif names is None:
        names = tuple(learner.names)
    elif not names or any(n not in learner.names for n in names):
        raise ConfigError(f"names={list(names)!r} must be a non-empty subset of the "
                          f"model's parameters {list(learner.names)}")
    fixed = {n: v for n, v in model_p.items() if n not in names}
    only, switch = first_stage(first, names, optimizer, learner, first_learner)
    b = batch.num_tasks
    fast = {n: model_p[n].unsqueeze(0).expand(b, *model_p[n].shape).clone() for n in names}
    ref = next(iter(fast.values()))
    lr = None if optimizer == "learned" else task_rates(rate, b, ref)
    adam = BatchedAdam(fast, lr) if optimizer == "adam" and lr is not None else None
    lbfgs = BatchedLBFGS(fast, lr) if optimizer == "lbfgs" and lr is not None else None
    if learner.physics is None or batch.collocation_x is None:
        batch = batch._replace(collocation_x=None, params=None)

    def query(f: Params, qx, qy) -> torch.Tensor:
        return learner.data_loss({**fixed, **f}, qx, qy)

    query_fn = vmap(query, in_dims=(0, 0, 0))
    horizon = budgets[-1]
    trained = max(learner.loop.steps, 1)
    mse = torch.full((len(budgets), b), math.nan, dtype=torch.float64)
    flags = torch.zeros((len(budgets), b), dtype=torch.bool)
    bad = torch.zeros(b, dtype=torch.bool, device=ref.device)
    initial = None
    j = 0
    prev: Accepted | None = None
    with torch.no_grad():
        for k in range(horizon + 1):
            # the first stage (L-BFGS: also the judging of its last candidate at the
            # switch) moves its subset alone, on its own learner's loss
            one = k < switch or (lbfgs is not None and k == switch)
            who = first_learner if one and first_learner is not None else learner
            # the learner's hand-batched path when it has one, else vmap of grad
            loss, grads = who.support_grads(fast, fixed, batch)
            if one:
                grads = {n: v if n in only else torch.zeros_like(v) for n, v in grads.items()}
            elif first_learner is not None and k == switch + (lbfgs is not None):
                initial, prev = None, None  # the second stage's loss is another function
            if lbfgs is not None:  # the accepted point after this evaluation
                fast, grads, loss = lbfgs.accept(fast, grads, loss)
            g: Params | None = grads if k < horizon else None
            if backtrack and prev is not None and lr is not None:
                fast, g, loss, lr = prev.restore(fast, g, loss, lr, adam)
            if backtrack and g is not None:
                prev = Accepted.keep(fast, g, loss, adam)
            if initial is None:
                initial = loss
            bad |= ~torch.isfinite(loss) | (loss > factor * initial)
            if k == budgets[j]:
                q = query_fn(fast, batch.query_x, batch.query_y)
                bad |= ~torch.isfinite(q)
                flags[j] = bad.cpu()
                mse[j] = torch.where(bad, torch.nan, q).to(torch.float64).cpu()
                j += 1
            if g is None:
                break
            if lbfgs is not None and k == switch and lr is not None:
                # restart on every parameter: the next step evaluates the accepted point
                lbfgs = BatchedLBFGS(fast, lr)
            elif lbfgs is not None:
                fast = lbfgs.propose()
            elif adam is not None and lr is not None:
                adam.lr = lr  # halved where a step was undone
                fast = adam.step(fast, g)
            elif lr is not None:  # sgd
                fast = {n: v - per_task(lr, v) * g[n] for n, v in fast.items()}
            else:
                fast = learner.loop.rule.update(fast, g, rates, min(k, trained - 1))
    if ref.is_cuda:
        torch.cuda.synchronize(ref.device)
    kept = {**{n: v.unsqueeze(0).expand(b, *v.shape) for n, v in fixed.items()}, **fast}
    return Curve(mse, flags, time.perf_counter() - t0, kept if keep_params else None)


def repeat_tasks(batch: TaskBatch, times: int) -> TaskBatch:
    """``batch`` with its B tasks repeated ``times`` times: task ``r * B + i`` is task i."""
    return batch.apply(lambda v: v.repeat(times, *([1] * (v.dim() - 1))))
