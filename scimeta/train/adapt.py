"""Adapting a trained init to a user's own measurements.

The support file is a CSV with a header naming the input coordinates (``t``[,
``x``, ``y``]) and the observed state channels (a subset of the family's state
names), or a scimeta HDF5 task store (its first ok task's support set is used).
Predictions are made on the family's time grid (ODEs) or on points given as ``at``
(an array or a CSV of the input columns; required for PDE families), and saved
with :func:`save_predictions`. :func:`parse_assignments` reads ``NAME=VALUE`` texts
(``scimeta adapt --param``) into the mapping ``adapt(params=...)`` accepts.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import xarray as xr

from .. import registry
from ..data import TaskReader
from ..errors import ConfigError
from ..family import ProblemFamily
from .loop import load_init, resolve_device
from .models import build_learner, build_model
from .run_dir import RunDir


def read_support_csv(path: Path, inputs: list[str], states: list[str]) -> tuple[np.ndarray, ...]:
    """Inputs ``[K, d_in]`` and outputs ``[K, C]`` from a CSV with a header row."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise ConfigError(f"support {str(path)!r}: expected a header and at least one row")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in inputs if c not in header]
    extra = [c for c in header if c not in inputs and c not in states]
    if missing or extra or not any(s in header for s in states):
        raise ConfigError(
            f"support {str(path)!r}: columns {header}; need inputs {inputs} and one or more "
            f"of the states {states}" + (f"; unknown columns {extra}" if extra else "")
        )
    try:
        data = np.array([[float(v) for v in r] for r in rows[1:] if r], dtype=np.float64)
    except ValueError as exc:
        raise ConfigError(f"support {str(path)!r}: non-numeric value ({exc})") from None
    if data.shape[1] != len(header):
        raise ConfigError(f"support {str(path)!r}: ragged rows")
    x = data[:, [header.index(c) for c in inputs]]
    y = np.full((len(data), len(states)), np.nan)
    for j, s in enumerate(states):
        if s in header:
            y[:, j] = data[:, header.index(s)]
    return x, y


def read_points_csv(path: str | os.PathLike, inputs: Sequence[str]) -> np.ndarray:
    """Prediction points ``[M, d_in]`` from a CSV whose header names exactly ``inputs``."""
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r]
    except OSError as exc:
        raise ConfigError(f"at {str(path)!r}: cannot be read ({exc.strerror})") from None
    header = [h.strip() for h in rows[0]] if rows else []
    if sorted(header) != sorted(inputs) or len(rows) < 2:
        raise ConfigError(f"at {str(path)!r}: columns {header} and {len(rows) - 1} row(s); "
                          f"need a header of exactly {list(inputs)} and one or more rows")
    try:
        data = np.array([[float(v) for v in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise ConfigError(f"at {str(path)!r}: non-numeric value ({exc})") from None
    if data.ndim != 2 or data.shape[1] != len(header):
        raise ConfigError(f"at {str(path)!r}: ragged rows")
    return data[:, [header.index(c) for c in inputs]]


def parse_assignments(items: Sequence[str]) -> dict[str, float]:
    """``["omega0=1.2", "F=0"]`` -> ``{"omega0": 1.2, "F": 0.0}`` (each name once)."""
    out: dict[str, float] = {}
    for item in items:
        name, eq, value = (part.strip() for part in item.partition("="))
        try:
            if not eq or not name or name in out:
                raise ValueError
            out[name] = float(value)
        except ValueError:
            raise ConfigError(f"params {item!r}: expected NAME=VALUE, a number, each name "
                              "once") from None
    return out


def param_vector(family: ProblemFamily, values: Mapping[str, float]) -> np.ndarray:
    """The family's parameter vector ``[P]`` from values given by name (all of them)."""
    names = family.param_names
    unknown = sorted(set(values) - set(names))
    missing = [n for n in names if n not in values]
    if unknown or missing:
        raise ConfigError(f"params {dict(values)}: family {family.name!r} needs exactly "
                          f"{', '.join(names)}; unknown {unknown}, missing {missing}")
    return np.array([float(values[n]) for n in names], dtype=np.float64)


def adapt(
    run_dir: str | os.PathLike, support: str | os.PathLike, *, init: str = "maml",
    steps: int | None = None, at: np.ndarray | str | os.PathLike | None = None,
    params: np.ndarray | Mapping[str, float] | None = None,
) -> xr.Dataset:
    """Adapt ``init`` of a run to the support data; predictions on ``at``.

    ``at`` holds the prediction points ``[M, d_in]`` (columns ``t``[, ``x``, ``y``]),
    as an array or a CSV file (:func:`read_points_csv`); by default the family's time
    grid, for ODE families only. Channels missing from a CSV are not fitted (masked in
    the loss). ``params`` gives the task's physical parameters, ``[P]`` or by name:
    when the run uses the residual in its inner loop and ``params`` is given,
    adaptation adds it at ``data.n_collocation`` points spread uniformly over the
    family's time span; without ``params`` it is data-only.
    """
    rd = RunDir(run_dir)
    info = rd.load_info()
    cfg = rd.load_config()
    family = registry.get(info["family"])
    inputs = ["t", *family.space]
    if isinstance(params, Mapping):
        params = param_vector(family, params)
    if isinstance(at, str | os.PathLike):
        at = read_points_csv(at, inputs)
    elif at is None and family.space:
        raise ConfigError(f"at: family {family.name!r} has spatial inputs; give the "
                          f"prediction points as an array [M, {len(inputs)}] or a CSV with "
                          f"columns {', '.join(inputs)}")
    elif at is None:
        at = family.time.values()[:, None]
    at = np.asarray(at, dtype=np.float64)
    if at.ndim != 2 or at.shape[1] != len(inputs):
        raise ConfigError(f"at has shape {at.shape}; need [M, {len(inputs)}] "
                          f"(columns {', '.join(inputs)})")
    states = list(info["state_names"])
    support = Path(support)
    if not support.exists():
        raise ConfigError(f"support {str(support)!r} does not exist")
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


def write_predictions_csv(ds: xr.Dataset, fh: TextIO) -> None:
    """The inputs and predicted channels of :func:`adapt`'s result as CSV, one row a point."""
    table = np.column_stack([ds[c].values for c in ds["input"].values]
                            + [ds["prediction"].values])
    fh.write(",".join([*map(str, ds["input"].values), *map(str, ds["channel"].values)]) + "\n")
    for row in table:
        fh.write(",".join(f"{v:.8g}" for v in row) + "\n")


def save_predictions(ds: xr.Dataset, out: str | os.PathLike | None = None) -> None:
    """Save :func:`adapt`'s result: ``.csv`` as CSV, other names as netCDF; None: stdout."""
    if out is None:
        write_predictions_csv(ds, sys.stdout)
    elif str(out).lower().endswith(".csv"):
        with open(out, "w", newline="") as fh:
            write_predictions_csv(ds, fh)
    else:
        ds.to_netcdf(out, engine="h5netcdf")
