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
import difflib
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import CheckpointError, ConfigError, RunError
from ..runtime.atomic import write_text
from ..runtime.config import dump_toml, from_dict, load_toml, to_dict
from .config import TrainConfig

RUN_FORMAT = 1
METRIC_FIELDS = ("phase", "iteration", "metric", "value", "seconds")
#: config keys a resumed run can never change (``check_same_config``)
FIXED_PREFIXES = ("model.",)


def _flatten(d: dict, prefix: str = "", keep_tables: bool = False) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (with ``keep_tables``, also ``"a": {...}``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if keep_tables:
                out[key] = v
            out.update(_flatten(v, key + ".", keep_tables))
        else:
            out[key] = v
    return out


def config_changes(old: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every leaf that differs."""
    a, b = _flatten(to_dict(old)), _flatten(to_dict(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _describe(changes: dict[str, tuple[Any, Any]], keys: list[str]) -> str:
    return ", ".join(f"{k} {changes[k][0]!r} -> {changes[k][1]!r}" for k in keys[:6]) + (
        f" and {len(keys) - 6} more" if len(keys) > 6 else "")


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

    def best_path(self, name: str) -> Path:
        """The best-validation record of phase ``name`` while it trains (run.keep)."""
        return self.path / f"best-{name}.pt"

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
        """Write config.toml and run.json (last: a folder without it is no run); a failure
        (read-only location, full disk) removes what this call made and is one line."""
        existed = self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.inits.mkdir(exist_ok=True)
            write_text(self.config, dump_toml(to_dict(cfg)))
            write_text(self.info, json.dumps(
                {"format": RUN_FORMAT, "scimeta_version": __version__, **info}, indent=2))
        except OSError as exc:
            if not existed:
                shutil.rmtree(self.path, ignore_errors=True)
            raise RunError(f"cannot create run directory {str(self.path)!r} "
                           f"({exc.strerror or exc})") from None

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

    def check_same_config(self, cfg: TrainConfig,
                          allow: Sequence[str] = ()) -> dict[str, tuple[Any, Any]]:
        """The keys whose values differ from the saved config, ``{key: (old, new)}``.

        A resumed run may only change keys listed in ``allow`` (a section such as
        ``data.validation`` covers its entries); ``model.*`` never (the checkpoints hold
        the network). Anything else is a :class:`ConfigError` naming the changed keys.
        """
        valid = _flatten(to_dict(cfg), keep_tables=True)
        unknown = [k for k in allow if k not in valid]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(valid), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"allow_changes names unknown key {unknown[0]!r}{hint}")
        changes = config_changes(self.load_config(), cfg)
        fixed = [k for k in changes if k.startswith(FIXED_PREFIXES)]
        if fixed:
            raise ConfigError(f"{str(self.path)!r}: {_describe(changes, fixed)} cannot change "
                              "on resume (the checkpoints hold the old network); start a new "
                              "run directory")
        blocked = [k for k in changes if not any(k == a or k.startswith(a + ".")
                                                 for a in allow)]
        if blocked:
            raise ConfigError(
                f"{str(self.path)!r} was started with a different configuration "
                f"({_describe(changes, blocked)}); resume with the same config, pass "
                f"allow_changes={blocked!r} to continue from the last checkpoint with the new "
                "values, or start a new run directory"
            )
        return changes

    def record_changes(self, cfg: TrainConfig, changes: dict[str, tuple[Any, Any]]) -> None:
        """Save ``cfg`` as the run's config and log ``changes`` in run.json
        (``config_changes``: key, old, new, when), so the run says what it was trained
        with."""
        info = self.load_info()
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        info.setdefault("config_changes", []).extend(
            {"key": k, "old": old, "new": new, "time": stamp} for k, (old, new) in
            changes.items())
        write_text(self.config, dump_toml(to_dict(cfg)))
        write_text(self.info, json.dumps(info, indent=2))

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
        write_text(self.metrics, buf.getvalue())

    # ---- resume checks -------------------------------------------------------
    def has_work(self) -> bool:
        """Whether anything was trained yet (a checkpoint, an init or metrics)."""
        return (self.checkpoint.exists() or self.metrics.exists()
                or any(self.inits.glob("*.pt")))

    def check_resume_state(self, phases: Sequence[str], iterations: int,
                           shapes: Callable[[str], dict[str, tuple[int, ...]]]) -> None:
        """Check, before resuming, that ``checkpoint.pt`` and every ``inits/*.pt`` of
        ``phases`` can be continued from: complete, of a phase of this run, at an
        iteration in ``[0, iterations]``, with the parameter names and ``shapes(phase)``
        of this run's model. Anything else is a one-line :class:`CheckpointError`
        saying which file to remove."""
        from ..runtime.checkpoint import check_params, load_checkpoint

        for name in phases:
            path = self.init_path(name)
            if path.exists():
                ck = _load_or_hint(load_checkpoint, path, ("params",))
                def verify(ck: dict = ck, name: str = name, path: Path = path) -> object:
                    return check_params(path, ck["params"], shapes(name))

                _hinted(path, verify)
        if not self.checkpoint.exists():
            return
        ck = _load_or_hint(load_checkpoint, self.checkpoint,
                           ("phase", "iteration", "optimizer", "params", "rng"))
        phase, it = ck["phase"], ck["iteration"]
        problem = None
        if phase not in phases:
            problem = f"is of phase {phase!r}, not one this run trains ({', '.join(phases)})"
        elif isinstance(it, bool) or not isinstance(it, int) or not 0 <= it <= iterations:
            problem = f"is at iteration {it!r}, outside [0, optim.iterations = {iterations}]"
        elif not (isinstance(ck["optimizer"], dict) and "param_groups" in ck["optimizer"]
                  and isinstance(ck["rng"], dict) and {"python", "torch"} <= set(ck["rng"])):
            problem = "lacks a usable optimizer or RNG state"
        if problem:
            raise CheckpointError(f"{str(self.checkpoint)!r} {problem}; remove it to restart "
                                  "that phase from its beginning")
        _hinted(self.checkpoint, lambda: check_params(self.checkpoint, ck["params"],
                                                      shapes(phase)))

    def set_checkpoint_lr(self, lr: float) -> None:
        """Give the optimizer of ``checkpoint.pt`` the learning rate ``lr`` (a resumed
        run whose ``optim.lr`` changed continues at the new rate)."""
        from ..runtime.checkpoint import FORMAT_KEY, load_checkpoint, save_checkpoint

        if not self.checkpoint.exists():
            return
        ck = load_checkpoint(self.checkpoint)
        for group in ck["optimizer"]["param_groups"]:
            group["lr"] = lr
        save_checkpoint(self.checkpoint, {k: v for k, v in ck.items() if k != FORMAT_KEY})


def _load_or_hint(load: Callable, path: Path, required: tuple[str, ...]) -> dict:
    return _hinted(path, lambda: load(path, required=required))


def _hinted(path: Path, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a CheckpointError gets the way out appended."""
    try:
        return fn()
    except CheckpointError as exc:
        what = ("restart that phase from its beginning" if path.name == "checkpoint.pt"
                else "train that init again")
        raise CheckpointError(f"{exc}; remove {path.name} to {what}") from None
