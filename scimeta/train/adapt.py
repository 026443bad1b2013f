"""Adapting a trained init to a user's own measurements.

The support file is a CSV with a header naming the input coordinates (``t``[,
``x``, ``y``]) and the observed state channels (a subset of the family's state
names; an empty cell or ``nan`` is a missing value), or a scimeta HDF5 task store
(its first ok task's support set is used). Predictions are made on the family's time
grid (ODEs) or on points given as ``at`` (an array or a CSV of the input columns;
required for PDE families), and saved with :func:`save_predictions`.
:func:`parse_assignments` reads ``NAME=VALUE`` texts (``scimeta adapt --param``) into
the mapping ``adapt(params=...)`` accepts. The readers and checks live in
:mod:`.adapt_io`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .. import registry
from ..data import TaskReader
from ..errors import ConfigError, RunError
from ..nn import Rescaled
from ..runtime.checkpoint import check_params
from ..runtime.device import check_device
from ..runtime.names import safe_name
from .adapt_io import (
    OUT_SUFFIXES,
    check_output,
    check_params_vector,
    check_support,
    param_vector,
    parse_assignments,
    read_points_csv,
    read_support_csv,
    save_predictions,
    write_predictions_csv,
)
from .adapt_optim import (
    DEFAULT_PHYSICS_WEIGHT,
    DEFAULT_RATES,
    DEFAULT_STEPS,
    adapt_with,
    check_adapt_optimizer,
)
from .conditioned import refuse_conditioned
from .eval_inits import base_optimizer, is_physics, physics_norm
from .models import build_learner, build_model
from .run_dir import RunDir
from .setup import load_init

__all__ = ["OUT_SUFFIXES", "adapt", "check_output", "check_params_vector", "check_support",
           "param_vector", "parse_assignments", "read_points_csv", "read_support_csv",
           "save_predictions", "support_loss", "write_predictions_csv"]

log = logging.getLogger(__name__)


def adapt(
    run_dir: str | os.PathLike, support: str | os.PathLike, *, init: str = "maml",
    steps: int | None = None, at: np.ndarray | str | os.PathLike | None = None,
    params: np.ndarray | Mapping[str, float] | None = None, uncertainty: bool = False,
    optimizer: str | None = None, rate: float | None = None,
    physics_weight: float | None = None,
) -> xr.Dataset:
    """Adapt ``init`` of a run to the support data; predictions on ``at``.

    ``at`` holds the prediction points ``[M, d_in]`` (columns ``t``[, ``x``, ``y``]),
    as an array or a CSV file (:func:`read_points_csv`); by default the family's time
    grid, for ODE families only. Channels missing from a CSV are not fitted (masked):
    the support loss is the training loss with the missing entries left out of the
    sum, not of the count, so each observed value pulls as hard as in training
    whatever else is observed. ``params`` gives the task's physical parameters,
    ``[P]`` or by name: when the run uses the residual in its inner loop and
    ``params`` is given, adaptation adds it at ``data.n_collocation`` points spread
    uniformly over the family's time span; without ``params`` it is data-only (and a
    warning says so). The result's attributes hold the support loss before and after
    adaptation (a warning is logged when it rose). ``uncertainty=True`` adds
    ``pred_std`` ``(point, channel)``: the Laplace predictive standard deviation (K-FAC
    posterior around φ with the init as prior mean, noise per channel and prior
    precision fitted by the evidence; :func:`scimeta.bayes.fit_laplace`).

    ``optimizer`` (default: the run's own inner rule) adapts instead with one of the
    evaluation's test-time optimizers (:mod:`.adapt_optim`): ``sgd``, ``adam``,
    ``lbfgs`` or their ``+physics`` versions (data plus ``physics_weight`` × the
    normalized residual at ``data.n_collocation`` points, default λ = 0.1; needs
    ``params``), for ``steps`` steps (default 50) at ``rate`` (default: ``sgd`` the
    run's ``meta.inner_lr``, ``adam`` 1e-3, ``lbfgs`` 1). Outside the training range
    ``lbfgs+physics`` adapted best in the evaluation (docs/results.md).
    """
    rd = RunDir(run_dir)
    info = rd.load_info()
    cfg = rd.load_config()
    family = registry.get(info["family"])
    safe_name(init, "init")
    refuse_conditioned(init)
    inputs = ["t", *family.space]
    if isinstance(params, Mapping):
        params = param_vector(family, params)
    elif params is not None:
        params = check_params_vector(family, params)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                              or steps < 0):
        raise ConfigError(f"steps={steps!r} is not allowed; it must be an integer >= 0")
    if optimizer is not None:
        check_adapt_optimizer(optimizer, rate, physics_weight, params is not None,
                              bool(family.space))
    if isinstance(at, str | os.PathLike):
        at = read_points_csv(at, inputs)
    elif at is None and family.space:
        raise ConfigError(f"at: family {family.name!r} has spatial inputs; give the "
                          f"prediction points as an array [M, {len(inputs)}] or a CSV with "
                          f"columns {', '.join(inputs)}")
    elif at is None:
        at = family.time.values()[:, None]
    at = np.asarray(at, dtype=np.float64)
    if at.ndim != 2 or at.shape[1] != len(inputs) or not np.isfinite(at).all():
        raise ConfigError(f"at has shape {at.shape}; need [M, {len(inputs)}] finite values "
                          f"(columns {', '.join(inputs)})")
    states = list(info["state_names"])
    lo, hi = info["norm"]["lo"], info["norm"]["hi"]
    if ((at < np.asarray(lo)) | (at > np.asarray(hi))).any():
        log.warning("some prediction points lie outside the grid the run was trained on "
                    "(%s): those predictions are extrapolations", ", ".join(
                        f"{n} in [{a:g}, {b:g}]" for n, a, b in zip(inputs, lo, hi,
                                                                      strict=True)))
    support = Path(support)
    if not support.exists():
        raise ConfigError(f"support {str(support)!r} does not exist")
    if support.suffix.lower() in (".h5", ".hdf5", ".nc"):
        item = TaskReader(support)[0]
        x, y = item[0].double().numpy(), item[1].double().numpy()
    else:
        x, y = read_support_csv(support, inputs, states)
    check_support(x, y, inputs, lo, hi)
    device = check_device(cfg.run.device)
    model = build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], cfg.run.seed,
                        periods=info.get("periods"))
    model = model.to(device=device, dtype=torch.float64)
    mask = torch.as_tensor(~np.isnan(y), device=device)
    loss = support_loss(model, mask)
    if params is None and cfg.meta.physics_weight > 0 and cfg.meta.physics_where != "outer":
        log.warning("this run adapts with the equation residual but no params were given: "
                    "adapting on the data only (give the task's %s to use the equation)",
                    ", ".join(family.param_names))
    if optimizer is not None and is_physics(optimizer):
        weight = DEFAULT_PHYSICS_WEIGHT if physics_weight is None else physics_weight
        learner = build_learner(cfg, model, family, "maml", loss=loss,
                                norm=physics_norm(info, cfg), physics_weight=weight)
    else:
        learner = build_learner(cfg, model, family if params is not None and optimizer is None
                                else None, "maml", loss=loss, norm=info["norm"])
    path = rd.init_path(init)
    raw = load_init(rd, init)
    check_params(path, {k: v for k, v in raw.items() if k in learner.names},
                 {n: tuple(p.shape) for n, p in model.named_parameters()})
    theta = {k: raw[k].to(device=device, dtype=torch.float64) for k in learner.names}
    sx = torch.as_tensor(x, device=device)
    sy = torch.as_tensor(np.nan_to_num(y), device=device)
    extra = {}
    if learner.physics is not None:
        if family.space:
            raise ConfigError("physics-informed adaptation from a CSV is ODE-only for now")
        n = max(cfg.data.n_collocation, 1)
        extra = {"collocation_x": torch.linspace(family.time.t0, family.time.t1, n,
                                                 device=device, dtype=torch.float64)[:, None],
                 "task_params": torch.as_tensor(params, device=device)}
    if optimizer is None:
        phi = learner.adapt(theta, sx, sy, steps=steps, **extra)
    else:
        steps = DEFAULT_STEPS if steps is None else steps
        rate = rate if rate is not None else DEFAULT_RATES.get(base_optimizer(optimizer),
                                                                cfg.meta.inner_lr)
        phi = adapt_with(learner, optimizer, theta, sx, sy, steps, rate, **extra)
    with torch.no_grad():
        points = torch.as_tensor(at, device=device)
        pred = learner.predict(phi, points).cpu().numpy()
        before = learner.predict(theta, points).cpu().numpy()
        loss_before = float(loss(learner.predict(theta, sx), sy))
        loss_after = float(loss(learner.predict(phi, sx), sy))
    if not (np.isfinite(pred).all() and math.isfinite(loss_after)):
        norm = info["norm"]
        order = max(map(abs, norm["y_shift"])) + max(norm["y_scale"])
        raise RunError(f"adaptation diverged (non-finite support loss or predictions): the "
                       f"support values reach {np.nanmax(np.abs(y)):.3g}, the run was trained "
                       f"on values of order {order:.3g}; check the data's units, or pass "
                       "fewer steps")
    if loss_after > loss_before:
        log.warning("the support loss rose during adaptation (%.4g -> %.4g): the inner rate "
                    "is too large for these data; fewer steps may predict better",
                    loss_before, loss_after)
    std = {}
    if uncertainty:
        from ..bayes._run import predictive_std

        std = {"pred_std": (("point", "channel"), predictive_std(
            learner, phi, theta, sx, torch.as_tensor(y, device=device), points))}
    return xr.Dataset(
        {"prediction": (("point", "channel"), pred), **std,
         "prediction_before": (("point", "channel"), before),
         "support_inputs": (("support", "input"), x),
         "support_values": (("support", "channel"), y)},
        coords={"channel": states, "input": inputs,
                **{name: ("point", at[:, k]) for k, name in enumerate(inputs)}},
        attrs={"run_dir": str(rd.path), "init": init, "family": info["family"],
               "physics_informed": int(learner.physics is not None),
               "steps": cfg.meta.inner_steps if steps is None else steps,
               "optimizer": optimizer or "inner",
               "inner_lr": cfg.meta.inner_lr if rate is None else rate,
               "support_loss_before": loss_before,
               "support_loss_after": loss_after,
               "observed": f"{int(mask.sum())} of {mask.numel()} support values"},
    )


def support_loss(model: torch.nn.Module, mask: torch.Tensor):
    """The training loss (MSE, per channel spread for a normalized model) over the
    support set, missing entries (``mask`` False) left out of the sum but not the count."""
    scale = model.y_scale if isinstance(model, Rescaled) else None

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        err = torch.nan_to_num(pred - target) * mask.to(pred.dtype)
        if scale is not None:
            err = err / scale
        return err.square().mean()

    return loss
