"""Stopping by validation: keep the parameters with the least validation error.

With ``run.keep = "best-validation"`` a phase's init is not its last iterate but the
one, among the iterations validated (every ``run.validate_every`` and the last), with
the least mean validation MSE over the run's validation stores — the stopping
iteration chosen on a held-out regime, never on a test regime. The record lives in
``RUN_DIR/best-NAME.pt`` (atomic) while the phase runs, so a resumed phase continues
from it: records from iterations after the resumed checkpoint are dropped, as the
metrics rows are, and are recomputed by the resumed run.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ..runtime import load_checkpoint, save_checkpoint
from ..typing import Params

log = logging.getLogger(__name__)

class KeepBest:
    """Track the least validation MSE of a phase and keep those parameters.

    Args:
        path: the phase's record file (``RunDir.best_path(name)``).
        params: the live parameter dict (read when a new best is seen).
        start: the iteration the phase (re)starts from: a record of a later iteration
            is stale (written after the checkpoint that is resumed) and is dropped.
    """

    def __init__(self, path: Path, params: Params, start: int) -> None:
        self.path, self.params = path, params
        self.best, self.iteration = math.inf, -1
        if path.exists():
            ck = load_checkpoint(path, required=("iteration", "val_mse", "params"))
            if start > 0 and int(ck["iteration"]) <= start:
                self.best, self.iteration = float(ck["val_mse"]), int(ck["iteration"])
            else:
                path.unlink()

    def __call__(self, iteration: int, val_mse: float) -> None:
        """Record ``val_mse`` (mean over validation stores) after ``iteration``."""
        if math.isfinite(val_mse) and val_mse < self.best:
            save_checkpoint(self.path, {
                "iteration": iteration, "val_mse": val_mse,
                "params": {n: v.detach().cpu() for n, v in self.params.items()}})
            self.best, self.iteration = val_mse, iteration

    def kept(self, last: int, params: Params) -> tuple[int, Params]:
        """(iteration, parameters) to write as the phase's init: the best record, or the
        last iterate (``last``, ``params``) if no finite validation MSE was seen."""
        if self.iteration < 0:
            log.warning("no finite validation MSE was recorded; keeping the last iterate")
            return last, params
        ck = load_checkpoint(self.path, required=("params",))
        log.info("keeping iteration %d (validation MSE %.4g) of %d", self.iteration,
                 self.best, last)
        return self.iteration, ck["params"]
