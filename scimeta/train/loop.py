"""The meta-training loop: phases, checkpoints, validation, graceful stop.

Each iteration samples a meta-batch, applies :func:`~.step.meta_step` and hands
the result to the callbacks (:mod:`.callbacks`: loss log, validation,
checkpoints, progress); the loop itself only sequences them.

A run trains its meta-learned init (``meta.algorithm``) and then each baseline in
``meta.baselines`` (``fomaml``, ``joint``, ``conditioned``, ``decoder``) on the same
data, one *phase* each, all from the same random initial network (``conditioned``: the
same seed, with the task parameters as more inputs, :mod:`.conditioned`; ``decoder``:
parameters and initial-state code, trained on whole fields, :mod:`.decoder`). A phase's final
parameters go to ``inits/<name>.pt``. Checkpoints hold parameters, optimizer and every
RNG state, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import registry
from ..data import TaskReader
from ..errors import ConfigError, TrainingDiverged
from ..family import ProblemFamily
from ..runtime import StopFlag, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..runtime.device import check_device
from ..runtime.dist_env import DistEnv, detect, local_device, process_group
from ..runtime.machine import describe_machine
from ..runtime.seeding import seed_everything
from ..typing import Grads
from .callbacks import (
    Callback,
    Checkpointer,
    LossLog,
    Progress,
    Snapshots,
    StepInfo,
    Validation,
)
from .conditioned import DECODER, check_box, phase_model, phase_setup
from .config import TrainConfig
from .decoder import decoder_info
from .distributed import allreduce_mean, barrier, collective_errors
from .keep_best import KeepBest
from .models import build_learner, input_periods
from .run_dir import RunDir
from .setup import normalization, open_reader, phases, resolve_paths, validation_mse
from .step import meta_step

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    completed: bool
    stopped_by: str | None = None


@dataclass
class PhaseContext:
    """What every phase of a run shares: config, run directory, data, device."""

    cfg: TrainConfig
    rd: RunDir
    info: dict
    reader: TaskReader
    val: dict[str, TaskReader]
    family: ProblemFamily
    device: torch.device
    dtype: torch.dtype
    stop: StopFlag
    show: bool
    env: DistEnv = field(default_factory=DistEnv)


def train(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False,
          config_dir: Path | None = None, progress: bool | None = None,
          allow_changes: Sequence[str] = ()) -> TrainResult:
    """Train (or resume) the run in ``run_dir``; returns whether every phase finished.

    Everything is checked before the run directory is created or changed: the device,
    the stores (readable, of one family, every ok task finite), the checkpoint and
    inits a resume continues from. ``allow_changes`` lists config keys (``"optim.lr"``,
    or a section such as ``"data.validation"``) a resumed run may change: it continues
    from its last checkpoint with the new values, recorded in run.json. A run
    directory in which nothing was trained yet takes any new config on resume.

    Under ``torchrun`` or ``srun`` (:func:`~scimeta.runtime.dist_env.detect`) every rank
    calls this: each takes its share of every meta-batch, gradients are averaged across
    ranks, rank 0 alone writes the run directory, and every rank resumes from it.
    """
    env = detect()
    device = local_device(env, check_device(cfg.run.device))
    pkg = logging.getLogger("scimeta")
    level = pkg.level
    if not env.is_main:
        pkg.setLevel(logging.WARNING)  # rank 0 alone logs progress
    try:
        with process_group(device, env), collective_errors(env.rank, env.world_size):
            return _train(cfg, run_dir, device, env, resume, config_dir, progress,
                          allow_changes)
    finally:
        pkg.setLevel(level)


def _train(cfg: TrainConfig, run_dir: str | os.PathLike, device: torch.device, env: DistEnv,
           resume: bool, config_dir: Path | None, progress: bool | None,
           allow_changes: Sequence[str]) -> TrainResult:
    rd = RunDir(run_dir)
    cfg = resolve_paths(cfg, config_dir)
    if rd.exists() and not resume:
        raise ConfigError(f"run directory {str(rd.path)!r} exists; pass resume=True to "
                          "continue it or choose another directory")
    if allow_changes and not resume:
        raise ConfigError("allow_changes applies to a resumed run; pass resume=True")
    if resume and rd.exists():
        rd.load_info()  # a run of another format is never continued nor replaced
    continuing = resume and rd.exists() and rd.has_work()
    changes = rd.check_same_config(cfg, allow_changes) if continuing else {}
    reader = open_reader(cfg.data.train, cfg)
    family = registry.get(reader.meta.family)
    val = {k: open_reader(v, cfg) for k, v in cfg.data.validation.items()}
    for label, r in val.items():
        if r.meta.family != reader.meta.family or r.in_dim != reader.in_dim:
            raise ConfigError(f"data.validation.{label}: family {r.meta.family!r} differs "
                              f"from the training store's {reader.meta.family!r}")
    if cfg.meta.meta_batch > len(reader):
        raise ConfigError(f"meta.meta_batch = {cfg.meta.meta_batch} exceeds the "
                          f"{len(reader)} ok tasks of {cfg.data.train}")
    for r in (reader, *val.values()):
        r.check_data()
    info = {"family": family.name, "in_dim": reader.in_dim, "out_dim": reader.out_dim,
            "state_names": list(reader.meta.state_names),
            "param_names": list(reader.meta.param_names),
            "norm": normalization(reader), "train_store": str(reader.path),
            "periods": input_periods(family, reader.in_dim),
            "machine": {**describe_machine(device), "ranks": env.world_size}}
    if DECODER in phases(cfg):  # before the run directory exists: a family without a basis
        info["decoder"] = decoder_info(family, reader)  # fails here
    if continuing:
        saved = rd.load_info()
        check_box(phases(cfg), saved)  # an old run cannot train the conditioned baseline

        def shapes(name: str) -> dict[str, tuple[int, ...]]:
            model = phase_model(cfg, saved, name)
            return {k: tuple(v.shape) for k, v in
                    build_learner(cfg, model, family, name).init_params().items()}

        rd.check_resume_state(phases(cfg), cfg.optim.iterations, shapes)
    barrier()  # every rank has checked the directory before rank 0 changes it
    if env.is_main and continuing and changes:
        log.warning("resuming with changed config: %s", ", ".join(
            f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()))
        rd.record_changes(cfg, changes)
        if "optim.lr" in changes:
            rd.set_checkpoint_lr(cfg.optim.lr)
    elif env.is_main and not continuing:
        rd.create(cfg, info)  # new, or resumed before anything was trained
    barrier()
    show = (sys.stderr.isatty() if progress is None else progress) and env.is_main
    with StopFlag() as stop:
        ctx = PhaseContext(cfg, rd, rd.load_info(), reader, val, family, device,
                           getattr(torch, cfg.run.dtype), stop, show, env)
        for k, name in enumerate(phases(cfg)):
            if rd.init_path(name).exists():
                continue
            try:
                finished = _train_phase(ctx, name, k)
            except TrainingDiverged as exc:
                raise TrainingDiverged(
                    f"{exc}; then continue from that checkpoint with "
                    "allow_changes=['optim.lr', 'meta.inner_lr']") from None
            if not finished:
                return TrainResult(rd.path, False, stop.requested)
    return TrainResult(rd.path, True)


def cosine_rate(lr: float, step: int, iterations: int) -> float:
    """The cosine-annealed rate of step ``step`` (0-based) of ``iterations``:
    ``lr · (1 + cos(π step / iterations)) / 2``, from ``lr`` down towards 0."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * step / max(iterations, 1)))


def _train_phase(ctx: PhaseContext, name: str, k: int) -> bool:
    """Train init ``name`` (the run's k-th phase); False if a stop was requested."""
    cfg, rd, device, dtype = ctx.cfg, ctx.rd, ctx.device, ctx.dtype
    seed_everything(cfg.run.seed, cfg.run.deterministic)
    model, reader, val = phase_setup(cfg, ctx.info, name, ctx.reader, ctx.val)
    model = model.to(device=device, dtype=dtype)
    learner = build_learner(cfg, model, ctx.family, name, norm=ctx.info["norm"])
    log.info("phase %s: %s meta-gradient on the %s path", name, type(learner).__name__,
             learner.path)
    params = {n: p.to(device=device, dtype=dtype).detach().requires_grad_(True)
              for n, p in learner.init_params().items()}
    opt = torch.optim.Adam(params.values(), lr=cfg.optim.lr)
    rng = np.random.default_rng([cfg.run.seed, k])
    start = 0
    if rd.checkpoint.exists():
        ck = load_checkpoint(rd.checkpoint, map_location=device)
        if ck.get("phase") == name:
            with torch.no_grad():
                for n, v in ck["params"].items():
                    params[n].copy_(v)
            opt.load_state_dict(ck["optimizer"])
            set_rng_state(ck["rng"], rng)
            start = int(ck["iteration"])
            if ctx.env.is_main:
                rd.truncate_metrics(name, start)
            log.info("resuming phase %s at iteration %d", name, start)

    def save(it: int) -> None:
        save_checkpoint(rd.checkpoint, {
            "phase": name, "iteration": it, "optimizer": opt.state_dict(),
            "params": {n: v.detach() for n, v in params.items()}, "rng": rng_state(rng)})

    def snapshot(it: int) -> None:
        rd.snapshots.mkdir(exist_ok=True)
        save_checkpoint(rd.snapshot_path(name, it), {"init": name, "iteration": it, "params": {
            n: v.detach().cpu() for n, v in params.items()}})

    def validate(label: str) -> float:
        return validation_mse(learner, params, val[label], cfg.meta.meta_batch, device, dtype)

    iterations, env = cfg.optim.iterations, ctx.env
    keep = (KeepBest(rd.best_path(name), params, start)
            if cfg.run.keep == "best-validation" and env.is_main else None)
    callbacks: list[Callback] = [
        LossLog(cfg.run.log_every, rd.append_metrics),
        Validation(cfg.run.validate_every, list(ctx.val), validate, rd.append_metrics, keep),
        Checkpointer(cfg.run.checkpoint_every, save),
        Snapshots(cfg.run.snapshot_every, snapshot),
        Progress(name, iterations, start, ctx.show),
    ] if env.is_main else []  # other ranks write nothing
    b = cfg.meta.meta_batch
    lo, hi = env.rank * b // env.world_size, (env.rank + 1) * b // env.world_size
    if hi <= lo:
        raise ConfigError(f"meta.meta_batch = {b} cannot be split across "
                          f"{env.world_size} ranks; use at least one task per rank")

    agreed = {"stop": False}

    def reduce(grads: Grads, loss: float) -> float:
        """The all-reduce of the step: gradients, loss and stop flag in one message."""
        loss, agreed["stop"] = allreduce_mean(grads, hi - lo, loss,
                                              ctx.stop.requested is not None)
        return loss

    t0 = time.perf_counter()
    info = StepInfo(name, start, iterations, math.nan, t0)
    for it in range(start, iterations):
        if cfg.optim.schedule == "cosine":  # a function of the step alone: resumes exactly
            for group in opt.param_groups:
                group["lr"] = cosine_rate(cfg.optim.lr, it, iterations)
        # every rank draws the whole meta-batch from the shared generator, reads its share
        idx = reader.sample_indices(b, rng)[lo:hi]
        batch = reader.batch(idx).to(device=device, dtype=dtype)
        loss = meta_step(learner, params, batch, opt, cfg.optim.grad_clip,
                         reduce if env.distributed else None)
        stop = ctx.stop.requested is not None
        if env.distributed and math.isfinite(loss):
            stop = stop or agreed["stop"]  # the loss is already the whole batch's
            if stop and ctx.stop.requested is None:
                ctx.stop.requested = "a signal to another rank"
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"phase {name}: meta-loss became {loss} at iteration {it + 1}; the last good "
                f"checkpoint is {rd.checkpoint if rd.checkpoint.exists() else 'none'} — lower "
                "optim.lr or meta.inner_lr"
            )
        info = StepInfo(name, it + 1, iterations, loss, t0)
        for cb in callbacks:
            cb.on_step(info)
        if stop:
            for cb in callbacks:
                cb.on_stop(info)
            log.warning("stopped by %s after iteration %d; resume with --resume",
                        ctx.stop.requested, info.iteration)
            barrier()  # the checkpoint is complete before any rank exits
            return False
    for cb in callbacks:
        cb.on_end(info)
    if env.is_main:
        last = {n: v.detach().cpu() for n, v in params.items()}
        kept_at, kept = (keep.kept(iterations, last) if keep is not None
                         else (iterations, last))
        save_checkpoint(rd.init_path(name), {"init": name, "params": kept,
                                             "iteration": kept_at, "keep": cfg.run.keep})
        if keep is not None:
            rd.append_metrics([info.row("kept_iteration", kept_at)])
            rd.best_path(name).unlink(missing_ok=True)
        rd.checkpoint.unlink(missing_ok=True)
    barrier()  # the next phase starts from what rank 0 wrote
    return True
