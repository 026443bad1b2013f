"""A run's cache of validation selections, so evaluations that share a validation
store do not adapt its tasks again.

Choosing one (init, optimizer, λ)'s rate adapts every validation task at every rate
of the grid — most of an evaluation's time when the test store is small. Suites
evaluate several test regimes against one validation store, with the same inits and
settings: the selection is the same computation each time. :func:`cached_selection`
keys it by a SHA-256 of everything the result depends on — the init's parameter
tensors, the validation batches' tensors (support, query, collocation points and
parameters, as adapted), the run's config and normalisation, the optimizer, λ, the
grid, the budget, the divergence settings, and the torch and scimeta versions — and
stores the :class:`~.selection.Selection` under ``RUN/evaluation/selection-cache/``
as ``.npz`` (no pickles), written atomically. A different input gives a different
key, so a stale entry is never read; deleting the folder is always safe.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..batch import TaskBatch
from ..runtime.atomic import write_bytes
from .selection import Selection

log = logging.getLogger(__name__)

#: subfolder of the run's ``evaluation/`` folder
FOLDER = "selection-cache"


def _update_tensor(h: Any, t: torch.Tensor | None) -> None:
    if t is None:
        h.update(b"none")
        return
    a = t.detach().cpu().contiguous()
    h.update(f"{a.dtype}{tuple(a.shape)}".encode())
    h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())


def selection_key(settings: Mapping[str, Any], state: Mapping[str, torch.Tensor],
                  batches: Sequence[TaskBatch]) -> str:
    """Hex SHA-256 of ``settings`` (JSON-able), the init ``state`` and the ``batches``."""
    h = hashlib.sha256()
    h.update(json.dumps({**settings, "torch": torch.__version__, "scimeta": __version__},
                        sort_keys=True, default=str).encode())
    for name in sorted(state):
        h.update(name.encode())
        _update_tensor(h, state[name])
    for b in batches:
        for t in b:
            _update_tensor(h, t)
    return h.hexdigest()


def _load(path: Path) -> Selection | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return Selection(grid=z["grid"], mse=z["mse"], median=z["median"],
                             diverged=z["diverged"], rate=float(z["rate"]),
                             eligible=bool(z["eligible"]))
    except (OSError, KeyError, ValueError) as err:  # unreadable: recompute
        log.warning("ignoring the unreadable cached selection %s (%s)", path, err)
        return None


def _save(path: Path, sel: Selection) -> None:
    buf = io.BytesIO()
    np.savez(buf, grid=sel.grid, mse=sel.mse, median=sel.median, diverged=sel.diverged,
             rate=np.float64(sel.rate), eligible=np.bool_(sel.eligible))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buf.getvalue())


def run_settings(config: Path, info: Mapping[str, Any], budget: int, max_diverged: float,
                 device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The part of a selection's key shared by a run's evaluations: its config file's
    text, its normalisation (``run.json`` ``norm``), the selection budget and
    divergence limit, device and dtype."""
    return {"config": config.read_text(), "norm": info.get("norm"), "budget": budget,
            "max_diverged": max_diverged, "device": str(device), "dtype": str(dtype)}


def cached_selection(folder: Path | None, settings: Mapping[str, Any],
                     state: Mapping[str, torch.Tensor], batches: Sequence[TaskBatch],
                     compute: Callable[[], Selection]) -> Selection:
    """``compute()``, or its stored result for the same inputs; ``folder=None``: no cache."""
    if folder is None:
        return compute()
    path = folder / f"{selection_key(settings, state, batches)}.npz"
    if path.is_file():
        sel = _load(path)
        if sel is not None:
            log.debug("selection read from %s", path)
            return sel
    sel = compute()
    _save(path, sel)
    return sel
