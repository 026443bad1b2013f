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
from .config import TrainConfig
from .run_dir import RunDir


def resolve_device(name: str) -> torch.device:
    """The torch device of ``run.device`` (a ConfigError if it cannot be used here)."""
    return check_device(name)


def normalization(reader: TaskReader, max_tasks: int = 256) -> dict:
    """Input box of the grid and per-channel output mean/spread over (a subset of) tasks."""
    meta = reader.meta
    lo = [float(meta.time[0]), *(float(s[0]) for s in meta.space)]
    hi = [float(meta.time[-1]), *(float(s[-1]) for s in meta.space)]
    n = min(len(reader), max_tasks)
    u = np.stack([reader.fields(i) for i in range(n)]).reshape(-1, reader.out_dim)
    scale = np.where(u.std(0) > 0, u.std(0), 1.0)
    return {"lo": lo, "hi": hi, "y_shift": u.mean(0).tolist(), "y_scale": scale.tolist()}


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


def validation_mse(learner: MAML, params: Params, reader: TaskReader, n: int,
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
