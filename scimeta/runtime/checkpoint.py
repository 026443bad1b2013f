"""Atomic, self-identifying checkpoints loaded with ``weights_only=True``."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .atomic import atomic_path

FORMAT_KEY = "scimeta_checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file, fsync, rename); a failed write
    leaves the previous file as it was."""
    path = Path(path)
    try:
        with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as fh:
            torch.save({FORMAT_KEY: FORMAT_VERSION, **payload}, fh)
    except (OSError, RuntimeError) as exc:  # disk full, read-only: the old file is kept
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200]
        raise CheckpointError(f"cannot write checkpoint {str(path)!r} ({reason}); the "
                              "previous one, if any, is unchanged") from None
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    required: tuple[str, ...] = ()) -> dict:
    """Load a scimeta checkpoint safely; anything else is a clear error.

    ``required`` names keys the payload must hold (a :class:`CheckpointError` lists
    the missing ones).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a loadable scimeta checkpoint ({first[:200]})"
        ) from None
    if not isinstance(data, dict) or FORMAT_KEY not in data:
        raise CheckpointError(f"{str(path)!r} is a torch file but not a scimeta checkpoint")
    if data[FORMAT_KEY] != FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint format {data[FORMAT_KEY]}; this "
                              f"scimeta reads {FORMAT_VERSION}")
    missing = [k for k in required if k not in data]
    if missing:
        raise CheckpointError(f"{str(path)!r} lacks {', '.join(map(repr, missing))}: not a "
                              "complete scimeta checkpoint")
    return data


def check_params(path: str | os.PathLike, params: object,
                 shapes: Mapping[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """``params`` from checkpoint ``path`` as a dict of finite tensors with exactly the
    names and ``shapes`` the model needs; else a :class:`CheckpointError` naming the
    first difference."""
    where = str(path)
    if not isinstance(params, dict) or not all(
            isinstance(v, torch.Tensor) for v in params.values()):
        raise CheckpointError(f"{where!r}: 'params' is not a dict of tensors")
    missing = sorted(set(shapes) - set(params))
    unknown = sorted(set(params) - set(shapes))
    if missing or unknown:
        raise CheckpointError(f"{where!r} does not fit this run's model: missing parameters "
                              f"{missing[:5]}, unknown {unknown[:5]}")
    for name, shape in shapes.items():
        got = tuple(params[name].shape)
        if got != tuple(shape):
            raise CheckpointError(f"{where!r}: parameter {name!r} has shape {list(got)}, "
                                  f"the run's model needs {list(shape)}")
        if params[name].is_floating_point() and not bool(torch.isfinite(params[name]).all()):
            raise CheckpointError(f"{where!r}: parameter {name!r} holds non-finite values")
    return params
