"""What a training run needs besides its loop: devices, readers, paths, phases, inits.

Shared by training (:mod:`.loop`), evaluation, adaptation, the Bayesian and the
landscape modules.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..data import TaskReader
from ..errors import RunError
from ..meta import MAML
from ..runtime import load_checkpoint
from ..runtime.device import check_device
from ..typing import Params
from .conditioned import Source, param_box
from .config import TrainConfig
from .run_dir import RunDir


def resolve_device(name: str) -> torch.device:
    """The torch device of ``run.device`` (a ConfigError if it cannot be used here)."""
    return check_device(name)


def normalization(reader: TaskReader, max_tasks: int = 256) -> dict:
    """Input box of the grid (``lo``, ``hi``), per-channel output mean/spread over (a
    subset of) tasks (``y_shift``, ``y_scale``), the per-channel spread of ∂y/∂t
    (``dydt_scale``: :func:`derivative_scale`, the physics residual's unit) and the box
    of the task parameters over every ok task (``p_lo``, ``p_hi``:
    :func:`~.conditioned.param_box`)."""
    meta = reader.meta
    lo = [float(meta.time[0]), *(float(s[0]) for s in meta.space)]
    hi = [float(meta.time[-1]), *(float(s[-1]) for s in meta.space)]
    fields = _fields(reader, max_tasks)
    u = fields.reshape(-1, reader.out_dim)
    scale = np.where(u.std(0) > 0, u.std(0), 1.0)
    p_lo, p_hi = param_box(reader)
    return {"lo": lo, "hi": hi, "y_shift": u.mean(0).tolist(), "y_scale": scale.tolist(),
            "dydt_scale": _dydt_spread(fields, meta.time), "p_lo": p_lo, "p_hi": p_hi}


def _fields(reader: TaskReader, max_tasks: int) -> np.ndarray:
    """The first ``max_tasks`` tasks' fields, stacked ``[n, T, *space, C]``."""
    return np.stack([reader.fields(i) for i in range(min(len(reader), max_tasks))])


def derivative_scale(reader: TaskReader, max_tasks: int = 256) -> list[float]:
    """Per channel ``[C]``: the standard deviation of ∂y/∂t over the grid points of (the
    first ``max_tasks``) tasks, in state units per time unit (second-order finite
    differences on the stored time grid, ``numpy.gradient``).

    Every term of an evolution equation ∂y/∂t = f(y, ∂ₓy, …) is of this size, so the
    residual divided by it is dimensionless and one physics weight serves every
    family (:class:`~scimeta.meta.PhysicsLoss` ``scale``). A channel that never moves
    gets 1.
    """
    return _dydt_spread(_fields(reader, max_tasks), reader.meta.time)


def _dydt_spread(fields: np.ndarray, time: np.ndarray) -> list[float]:
    """Per channel, the spread of ∂y/∂t of ``fields`` ``[n, T, *space, C]`` on ``time``."""
    d = np.gradient(fields, np.asarray(time, dtype=np.float64), axis=1)
    s = d.reshape(-1, fields.shape[-1]).std(0)
    return np.where(np.isfinite(s) & (s > 0), s, 1.0).tolist()


def open_reader(path: str, cfg: TrainConfig) -> TaskReader:
    return TaskReader(path, in_memory=cfg.data.in_memory, n_collocation=cfg.data.n_collocation)


def resolve_paths(cfg: TrainConfig, base: Path | None) -> TrainConfig:
    """Store paths made absolute (relative ones: to ``base``, the config's folder,
    when they do not exist relative to the working directory)."""

    def fix(p: str) -> str:
        path = Path(p)
        if base is not None and not path.is_absolute() and not path.exists():
            path = base / path
        return str(path.resolve())

    data = replace(cfg.data, train=fix(cfg.data.train),
                   validation={k: fix(v) for k, v in cfg.data.validation.items()})
    return replace(cfg, data=data)


def phases(cfg: TrainConfig) -> list[str]:
    """Names of the inits this run trains, main algorithm first."""
    out = [cfg.meta.algorithm]
    out += [b for b in cfg.meta.baselines if b not in out]
    return out


def validation_mse(learner: MAML, params: Params, reader: Source, n: int,
                   device: torch.device, dtype: torch.dtype) -> float:
    """Mean query MSE after adaptation on the first ``n`` tasks of a held-out store."""
    batch = reader.batch(range(min(n, len(reader)))).to(device=device, dtype=dtype)
    curve = learner.adaptation_curve(params, batch)
    return float(curve[-1].mean())


def load_init(rd: RunDir, name: str) -> Params:
    path = rd.init_path(name)
    if not path.exists():
        raise RunError(f"{str(rd.path)!r} has no trained init {name!r} (no {path.name}); "
                         "finish training first")
    return load_checkpoint(path, required=("params",))["params"]
