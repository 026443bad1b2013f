"""Atomic, self-identifying checkpoints loaded with ``weights_only=True``."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

FORMAT_KEY = "scimeta_checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save({FORMAT_KEY: FORMAT_VERSION, **payload}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a scimeta checkpoint safely; anything else is a clear error."""
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
    return data
