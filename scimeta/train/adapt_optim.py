"""``scimeta adapt`` with a chosen test-time optimizer instead of the run's inner loop.

The evaluation ([docs/evaluation.md]) compares SGD, Adam and L-BFGS, each with or
without the equation's residual; outside the training range the best was L-BFGS on
the support data plus the residual at the task's known parameters
(``lbfgs+physics``). :func:`adapt_with` runs one such optimizer on one task with the
same batched code (:func:`~.adaptation.adapt_curve`), so what a user gets from
``scimeta adapt --optimizer`` is what the evaluation measured.
"""

from __future__ import annotations

import torch

from ..batch import TaskBatch
from ..errors import ConfigError, RunError
from ..meta import MAML
from ..meta._validate import check_positive
from ..typing import Params
from .adaptation import adapt_curve
from .eval_inits import base_optimizer, check_eval_optimizer, is_physics

#: adaptation steps when an optimizer is chosen and ``steps`` is not given
DEFAULT_STEPS = 50
#: the residual's weight (normalized residual) when none is given
DEFAULT_PHYSICS_WEIGHT = 0.1
#: rates used when none is given (``sgd`` takes the run's ``meta.inner_lr``)
DEFAULT_RATES = {"adam": 1e-3, "lbfgs": 1.0}


def check_adapt_optimizer(optimizer: str, rate: float | None, physics_weight: float | None,
                          has_params: bool, spatial: bool) -> None:
    """Refuse a bad choice before any work; ConfigError naming the value."""
    check_eval_optimizer(optimizer)
    if optimizer == "learned":
        raise ConfigError("optimizer='learned' is not allowed here; leave optimizer unset "
                          "for the run's own inner rule")
    for name, value in (("rate", rate), ("physics_weight", physics_weight)):
        if value is not None:
            check_positive(name, value, finite=True)
    if physics_weight is not None and not is_physics(optimizer):
        raise ConfigError(f"physics_weight={physics_weight!r} only applies to a '+physics' "
                          f"optimizer, not {optimizer!r}")
    if is_physics(optimizer) and not has_params:
        raise ConfigError(f"optimizer={optimizer!r} needs the task's physical parameters "
                          "(params=..., or --param NAME=VALUE for each)")
    if is_physics(optimizer) and spatial:
        raise ConfigError("physics-informed adaptation from a CSV is ODE-only for now")


def adapt_with(learner: MAML, optimizer: str, theta: Params, sx: torch.Tensor,
               sy: torch.Tensor, steps: int, rate: float, *,
               collocation_x: torch.Tensor | None = None,
               task_params: torch.Tensor | None = None) -> Params:
    """``theta`` adapted to one task's support set ``sx`` ``[K, d_in]``, ``sy``
    ``[K, d_out]`` by ``steps`` steps of ``optimizer`` at ``rate``; the ``+physics``
    ones (and backtracking) need ``collocation_x`` ``[C, d_in]`` and ``task_params``
    ``[P]``. Raises RunError if the adaptation diverged."""
    batch = TaskBatch(sx[None], sy[None], sx[None], sy[None],
                      None if collocation_x is None else collocation_x[None],
                      None if task_params is None else task_params[None])
    cur = adapt_curve(learner, theta, batch, base_optimizer(optimizer), rate, (steps,),
                      keep_params=True, backtrack=is_physics(optimizer))
    if bool(cur.diverged.any()) or cur.params is None:
        raise RunError(f"adaptation with {optimizer} at rate {rate:g} diverged (the support "
                       "loss grew tenfold or became non-finite); try a smaller rate")
    return {n: v[0] for n, v in cur.params.items()}
