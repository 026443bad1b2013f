"""The layout of a training run directory and its compatibility checks.

::

    RUN_DIR/config.toml      the resolved configuration
    RUN_DIR/run.json         format, scimeta version, family, dims, normalization
    RUN_DIR/metrics.csv      long format: phase,iteration,metric,value,seconds
    RUN_DIR/checkpoint.pt    latest checkpoint of the phase in progress (atomic)
    RUN_DIR/inits/NAME.pt    final parameters of each trained init (maml, fomaml, joint)
    RUN_DIR/snapshots/NAME-ITERATION.pt  parameters every ``run.snapshot_every``
                             iterations (kept; for meta-overfitting diagnostics)
    RUN_DIR/evaluation/      xarray Datasets (.nc) and plots written by evaluate
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .._version import __version__
from ..errors import ConfigError, RunError
from ..runtime.config import dump_toml, from_dict, load_toml, to_dict
from .config import TrainConfig

RUN_FORMAT = 1
METRIC_FIELDS = ("phase", "iteration", "metric", "value", "seconds")


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class RunDir:
    """Paths and metadata of one run directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.toml")
    info = property(lambda self: self.path / "run.json")
    metrics = property(lambda self: self.path / "metrics.csv")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    inits = property(lambda self: self.path / "inits")
    evaluation = property(lambda self: self.path / "evaluation")

    def init_path(self, name: str) -> Path:
        return self.inits / f"{name}.pt"

    @property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    def snapshot_path(self, name: str, iteration: int) -> Path:
        """Parameters of init ``name`` after ``iteration`` meta-iterations."""
        return self.snapshots / f"{name}-{iteration:08d}.pt"

    def list_snapshots(self, name: str) -> list[tuple[int, Path]]:
        """(iteration, path) of every kept snapshot of init ``name``, by iteration."""
        out = []
        for p in self.snapshots.glob(f"{name}-*.pt"):
            tail = p.stem[len(name) + 1:]
            if tail.isdigit():
                out.append((int(tail), p))
        return sorted(out)

    def exists(self) -> bool:
        return self.info.exists()

    def create(self, cfg: TrainConfig, info: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.inits.mkdir(exist_ok=True)
        atomic_write_text(self.config, dump_toml(to_dict(cfg)))
        atomic_write_text(self.info, json.dumps(
            {"format": RUN_FORMAT, "scimeta_version": __version__, **info}, indent=2))

    def load_info(self) -> dict:
        """run.json, checked for a compatible format."""
        if not self.info.exists():
            raise RunError(f"{str(self.path)!r} is not a scimeta run directory (no run.json)")
        try:
            info = json.loads(self.info.read_text())
        except ValueError as exc:
            raise RunError(f"{self.info}: broken run.json ({exc})") from None
        if info.get("format") != RUN_FORMAT:
            raise RunError(
                f"{str(self.path)!r} was written by scimeta {info.get('scimeta_version')} "
                f"(run format {info.get('format')}); this scimeta {__version__} reads run "
                f"format {RUN_FORMAT}"
            )
        return info

    def load_config(self) -> TrainConfig:
        return from_dict(TrainConfig, load_toml(self.config), str(self.config))

    def check_same_config(self, cfg: TrainConfig) -> None:
        saved = self.load_config()
        if saved != cfg:
            raise ConfigError(
                f"{str(self.path)!r} was started with a different configuration; resume "
                "with the same config (or none) or start a new run directory"
            )

    # ---- metrics ---------------------------------------------------------
    def append_metrics(self, rows: list[dict]) -> None:
        new = not self.metrics.exists()
        with open(self.metrics, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
            if new:
                w.writeheader()
            w.writerows(rows)

    def read_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        with open(self.metrics, newline="") as fh:
            return list(csv.DictReader(fh))

    def truncate_metrics(self, phase: str, after_iteration: int) -> None:
        """Drop rows of ``phase`` beyond a checkpoint (they will be recomputed)."""
        rows = [r for r in self.read_metrics()
                if not (r["phase"] == phase and int(r["iteration"]) > after_iteration)]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.metrics, buf.getvalue())
