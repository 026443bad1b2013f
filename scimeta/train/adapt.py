"""Adapting a trained init to a user's own measurements.

The support file is a CSV with a header naming the input coordinates (``t``[,
``x``, ``y``]) and the observed state channels (a subset of the family's state
names), or a scimeta HDF5 task store (its first ok task's support set is used).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .. import registry
from ..data import TaskReader
from ..errors import ConfigError
from .loop import load_init, resolve_device
from .models import build_learner, build_model
from .run_dir import RunDir


def read_support_csv(path: Path, inputs: list[str], states: list[str]) -> tuple[np.ndarray, ...]:
    """Inputs ``[K, d_in]`` and outputs ``[K, C]`` from a CSV with a header row."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise ConfigError(f"--support {str(path)!r}: expected a header and at least one row")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in inputs if c not in header]
    extra = [c for c in header if c not in inputs and c not in states]
    if missing or extra or not any(s in header for s in states):
        raise ConfigError(
            f"--support {str(path)!r}: columns {header}; need inputs {inputs} and one or more "
            f"of the states {states}" + (f"; unknown columns {extra}" if extra else "")
        )
    try:
        data = np.array([[float(v) for v in r] for r in rows[1:] if r], dtype=np.float64)
    except ValueError as exc:
        raise ConfigError(f"--support {str(path)!r}: non-numeric value ({exc})") from None
    if data.shape[1] != len(header):
        raise ConfigError(f"--support {str(path)!r}: ragged rows")
    x = data[:, [header.index(c) for c in inputs]]
    y = np.full((len(data), len(states)), np.nan)
    for j, s in enumerate(states):
        if s in header:
            y[:, j] = data[:, header.index(s)]
    return x, y


def adapt(
    run_dir: str | os.PathLike, support: str | os.PathLike, *, init: str = "maml",
    steps: int | None = None, at: np.ndarray | None = None,
    params: np.ndarray | None = None,
) -> xr.Dataset:
    """Adapt ``init`` of a run to the support data; predictions on ``at`` (default grid).

    Channels missing from a CSV are not fitted (masked in the loss). ``params`` gives
    the task's physical parameters ``[P]``: when the run uses the residual in its inner
    loop and ``params`` is given, adaptation adds it at ``data.n_collocation`` points
    spread uniformly over the family's time span; without ``params`` it is data-only.
    """
    rd = RunDir(run_dir)
    info = rd.load_info()
    cfg = rd.load_config()
    family = registry.get(info["family"])
    inputs = ["t", *family.space]
    states = list(info["state_names"])
    support = Path(support)
    if not support.exists():
        raise ConfigError(f"--support {str(support)!r} does not exist")
    if support.suffix.lower() in (".h5", ".hdf5", ".nc"):
        item = TaskReader(support)[0]
        x, y = item[0].double().numpy(), item[1].double().numpy()
    else:
        x, y = read_support_csv(support, inputs, states)
    device = resolve_device(cfg.run.device)
    model = build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], cfg.run.seed)
    model = model.to(device=device, dtype=torch.float64)
    mask = torch.as_tensor(~np.isnan(y), device=device)

    def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        m = mask.to(pred.dtype)
        return ((torch.nan_to_num(pred - target) * m) ** 2).sum() / m.sum()

    learner = build_learner(cfg, model, family if params is not None else None, "maml",
                            loss="mse" if bool(mask.all()) else masked_mse)
    theta = {k: v.to(device=device, dtype=torch.float64) for k, v in load_init(rd, init).items()}
    theta = {k: v for k, v in theta.items() if k in learner.names}
    sx = torch.as_tensor(x, device=device)
    sy = torch.as_tensor(np.nan_to_num(y), device=device)
    extra = {}
    if learner.physics is not None:
        p = np.asarray(params, dtype=np.float64).reshape(-1)
        if p.shape != (len(family.params),):
            raise ConfigError(f"params has {p.size} values; family {family.name!r} needs "
                              f"{len(family.params)} ({', '.join(family.param_names)})")
        if family.space:
            raise ConfigError("physics-informed adaptation from a CSV is ODE-only for now")
        n = max(cfg.data.n_collocation, 1)
        extra = {"collocation_x": torch.linspace(family.time.t0, family.time.t1, n,
                                                 device=device, dtype=torch.float64)[:, None],
                 "task_params": torch.as_tensor(p, device=device)}
    phi = learner.adapt(theta, sx, sy, steps=steps, **extra)
    if at is None:
        t = family.time.values()
        at = t[:, None] if not family.space else None
        if at is None:
            raise ConfigError("give prediction points with --at for PDE families")
    with torch.no_grad():
        pred = learner.predict(phi, torch.as_tensor(at, device=device)).cpu().numpy()
        before = learner.predict(theta, torch.as_tensor(at, device=device)).cpu().numpy()
    return xr.Dataset(
        {"prediction": (("point", "channel"), pred),
         "prediction_before": (("point", "channel"), before),
         "support_inputs": (("support", "input"), x),
         "support_values": (("support", "channel"), y)},
        coords={"channel": states, "input": inputs,
                **{name: ("point", at[:, k]) for k, name in enumerate(inputs)}},
        attrs={"run_dir": str(rd.path), "init": init, "family": info["family"],
               "physics_informed": int(learner.physics is not None),
               "steps": cfg.meta.inner_steps if steps is None else steps,
               "inner_lr": cfg.meta.inner_lr},
    )
