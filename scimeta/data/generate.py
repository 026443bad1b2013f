"""Generating a task store: parallel over tasks, atomic, resumable.

The store is written to ``<out>.partial`` and renamed to ``<out>`` only once every
task has been solved, so ``<out>`` is always complete. Each task's slot, seed and
content are fixed by its index, so a run killed at any point resumes with
``resume=True`` and recomputes exactly the tasks whose status is still ``pending``:
nothing is lost and nothing is duplicated, whatever the number of workers.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError, ScimetaError, StoreError
from ..family import STATUS_NON_FINITE, STATUS_OK, STATUS_PENDING, ProblemFamily
from ..params import Regime
from . import _partial as _P
from . import _space
from . import shards as _shards
from . import solver_preset as _preset
from ._partial import Unit
from ._workers import WorkerPool
from .config import GenerationConfig, check_same_config, parse_bounds
from .layout import create_layout
from .lock import OutputLock
from .sampling import sample_indices

__all__ = ["GenerationConfig", "generate", "parse_bounds", "solve_unit", "task_seeds"]

log = logging.getLogger(__name__)


def task_seeds(seed: int, n: int) -> np.ndarray:
    """Per-task seeds ``[n]`` uint64 derived from one run seed."""
    return np.array(
        [c.generate_state(1, np.uint64)[0] for c in np.random.SeedSequence(seed).spawn(n)],
        dtype=np.uint64,
    )


def solve_unit(unit: Unit, family: ProblemFamily, regime: Regime, time: np.ndarray,
               sampling: str, n_support: int, n_query: int, dtype: str = "float32",
               solver_preset: str = _preset.DEFAULT) -> Unit:
    """Draw and solve the tasks of ``unit`` from their seeds (runs in a worker process)
    with the solver of ``solver_preset`` (:mod:`.solver_preset`)."""
    if unit.seeds is None:
        raise RuntimeError("internal: a unit is solved before its seeds are known")
    grid = (len(time), *(len(v) for v in family.space.values()))
    params: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    sup: list[np.ndarray] = []
    qry: list[np.ndarray] = []
    for i, seed in zip(unit.index, unit.seeds, strict=True):
        rng = np.random.default_rng(int(seed))
        params.append(regime.sample(family.params, rng, index=int(i)))
        starts.append(family.sample_initial_state(rng, regime))
        s, q = sample_indices(sampling, rng, grid, n_support, n_query)
        sup.append(s)
        qry.append(q)
    y0 = np.stack(starts).astype(np.float64)
    fields, status = _preset.solve_batch(family, solver_preset, np.stack(params), y0,
                                         time)
    with np.errstate(over="ignore"):  # values beyond the dtype become inf: non-finite below
        fields = fields.astype(dtype)
    bad = (status == STATUS_OK) & ~np.isfinite(fields.reshape(len(fields), -1)).all(axis=1)
    status = np.where(bad, STATUS_NON_FINITE, status).astype(np.int8)
    return Unit(unit.index, unit.seeds, np.stack(params), y0, fields, status, np.stack(sup),
                np.stack(qry))


def generate(
    config: GenerationConfig, out: str | os.PathLike, *, workers: int = 1,
    resume: bool = False, overwrite: bool = False, unit_size: int | None = None,
    progress: bool | None = None, skip_space_check: bool = False,
    shard: tuple[int, int] | None = None,
) -> Path:
    """Generate a task store at ``out`` and return its path.

    ``workers`` processes solve units of ``unit_size`` tasks (default: the family's
    ``preferred_batch`` or 8, and with several workers at most ``ceil(tasks /
    workers)``, so that a small store is shared among them too); ``resume`` continues
    ``<out>.partial`` of the same config (or an incomplete ``out``); ``overwrite``
    replaces an existing file once the new one is complete. The output is locked for
    the whole run (a second writer is refused with the first one's PID). Before any
    work, the store's size (an upper bound) is checked against the free space, the
    file-size limit and the memory;
    ``skip_space_check=True`` skips that check (the run still stops cleanly, resumable,
    before a write that could not fit). ``shard=(I, N)`` solves only shard I's block
    of tasks into ``<out stem>.shard-I-of-N.h5`` (see :mod:`.shards`), with the
    unsharded run's seeds; ``scimeta merge`` joins the N shards into ``out``.
    """
    family, regime, time = config.resolve()
    if shard is not None:
        span = _shards.shard_range(config.tasks, *shard)
        out = _shards.shard_path(out, *shard)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    if resume and overwrite:
        raise ConfigError("resume=True and overwrite=True exclude each other; choose one")
    out, partial = _output_paths(out)
    if shard is not None and resume and out.exists() and not partial.exists() and \
            _shards.is_done(out, config.to_json()):
        return out  # a finished shard
    if shard is None and resume and out.exists() and not partial.exists() and \
            _complete(out, config):
        return out  # nothing to write: no lock needed (a read-only dataset folder is fine)
    with OutputLock(out) as lock:
        if out.exists() and not (resume or overwrite):
            raise ConfigError(f"out={str(out)!r} exists; pass resume=True to continue it or "
                              "overwrite=True to replace it")
        if resume and out.exists() and not partial.exists():
            check_same_config(out, config)
            done, pending = _P.finished(out)
            if done:
                log.info("%s is already complete; nothing to do", out)
                return out
            log.warning("%s is not complete (%d task(s) pending): continuing it", out, pending)
            os.replace(out, partial)
        resuming = resume and partial.exists()
        if resuming:
            check_same_config(partial, config)
        if not resuming:
            if not skip_space_check:  # a shard's fields: its block only
                _check_space(config if shard is None else
                             replace(config, tasks=span[1] - span[0]), family, time,
                             partial.parent)
            _create(partial, config, family, regime, time)
        seeds = task_seeds(config.seed, config.tasks)
        todo = _P.prepare(partial, seeds)
        if shard is not None:
            todo = todo[(todo >= span[0]) & (todo < span[1])]
        if resuming and not skip_space_check:
            _check_space(config, family, time, partial, len(todo))
        per_unit = int(unit_size or getattr(family, "preferred_batch", 8) or 8)
        if unit_size is None and workers > 1:  # every worker gets a share of a small store
            per_unit = max(1, min(per_unit, -(-len(todo) // workers)))
        units = [Unit(todo[i:i + per_unit], seeds[todo[i:i + per_unit]])
                 for i in range(0, len(todo), per_unit)]
        log.info("%s: %d of %d tasks to solve with %d worker(s) in %d unit(s)", partial,
                 len(todo), config.tasks, workers, len(units))
        args = (family, regime, time, config.sampling, config.support, config.query,
                config.dtype, config.solver_preset)
        show = sys.stderr.isatty() if progress is None else progress
        n_workers = workers if len(units) > 1 else 1
        with WorkerPool(n_workers, lock.fd) as pool:
            _solve_all(partial, pool, units, args, config.tasks - len(todo), config.tasks,
                       show, shard)
    log.info("wrote %s", out)
    return out


def _solve_all(partial: Path, pool: WorkerPool, units: list[Unit], args: tuple,
               done: int, total: int, show: bool, shard: tuple[int, int] | None) -> None:
    """Solve and commit every unit, mark the store complete, rename it into place."""
    f = _P.open_store(partial, "r+", "write")
    try:
        with tqdm(total=sum(len(u.index) for u in units), disable=not show,
                  unit="task") as bar:
            for unit in pool.map(solve_unit, units, *args):
                _P.guard_room(partial, unit, done, total)
                _P.write_unit(f, unit)
                done += len(unit.index)
                bar.update(len(unit.index))
        status = f["status"][:]
        if shard is not None:
            _shards.mark_done(f, *shard)
        elif (status == STATUS_PENDING).any():
            raise StoreError(f"{partial}: {int((status == STATUS_PENDING).sum())} tasks still "
                             "pending after generation")
        if shard is None:
            f.attrs["complete"] = 1
        f.close()
    except ScimetaError:
        f.close()
        raise
    except (OSError, RuntimeError) as exc:  # a write failed anyway (the disk filled up)
        _P.abandon(f)
        raise _P.write_failed(partial, exc, done, total) from None
    except BaseException:  # interrupted: what is committed stays
        f.close()
        raise
    out = partial.with_name(partial.name[: -len(".partial")])
    os.replace(partial, out)
    log.info("status counts %s", _P.counts_text(status))


def _complete(out: Path, config: GenerationConfig) -> bool:
    """Whether ``out`` is a finished store of ``config`` (its ``complete`` flag and every
    task's status, never its name alone)."""
    check_same_config(out, config)
    done, _ = _P.finished(out)
    if done:
        log.info("%s is already complete; nothing to do", out)
    return done


def _output_paths(out: str | os.PathLike) -> tuple[Path, Path]:
    """``out`` and ``<out>.partial``, checked: a file path in an existing folder."""
    out = Path(out)
    if out.is_dir() or not out.name or out.name in (".", ".."):
        raise ConfigError(f"out={str(out)!r} is a directory; give the path of the file to "
                          f"write, e.g. {str(out / 'tasks.h5')!r}")
    if not out.parent.is_dir():
        raise ConfigError(f"out={str(out)!r}: directory {str(out.parent)!r} does not exist")
    partial = out.with_name(out.name + ".partial")
    if partial.is_dir():
        raise ConfigError(f"out={str(out)!r}: {str(partial)!r} is a directory; remove it")
    return out, partial


def _create(partial: Path, config: GenerationConfig, family, regime, time) -> None:
    """The empty layout, written next to ``partial`` and renamed: a ``.partial`` exists
    only once its layout is whole."""
    tmp = partial.with_name(partial.name + ".tmp")
    partial.unlink(missing_ok=True)
    try:
        create_layout(tmp, family, regime, time, config.tasks, config.support, config.query,
                      config.to_json(), config.sampling, config.seed, config.dtype,
                      compression=config.compression, solver_preset=config.solver_preset)
        os.replace(tmp, partial)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot create {str(partial)!r} "
                         f"({getattr(exc, 'strerror', None) or exc})") from None


def _check_space(config: GenerationConfig, family, time, target: Path,
                 remaining: int | None = None) -> None:
    """Refuse, before any work, a store that cannot fit on disk, under the file-size
    limit or in memory, with the numbers and the way to override. ``target``: the
    folder of a new store, or the ``.partial`` with ``remaining`` tasks to solve."""
    space_shape = tuple(len(v) for v in family.space.values())
    n_channel = len(family.state_names)
    per_field = _space.field_bytes(time, space_shape, n_channel, np.dtype(config.dtype).itemsize)
    per_fixed = _space.fixed_task_bytes(space_shape, n_channel, len(family.params),
                                        config.support, config.query)
    total = _space.BASE + config.tasks * (per_field + per_fixed) + _space.MARGIN
    need = total if remaining is None else remaining * per_field + _space.MARGIN
    have, bound = _space.room(target)
    hint = "pass skip_space_check=True to try anyway (compression may shrink it)"
    if need > have:
        what = (f"tasks={config.tasks} makes a store of up to {_space.human(total)}"
                if remaining is None else
                f"the {remaining} task(s) left to solve need up to {_space.human(need)}")
        raise StoreError(f"{what} but {_space.human(have)} is left under {bound}; "
                         f"{'use fewer tasks, ' if remaining is None else ''}free space, or "
                         f"{hint}")
    memory = config.tasks * _space.MEMORY_PER_TASK
    avail = _space.available_memory()
    if avail is not None and memory > avail:
        raise StoreError(f"tasks={config.tasks} needs about {_space.human(memory)} of memory "
                         f"to generate but {_space.human(avail)} is available; use fewer "
                         "tasks (several stores) or pass skip_space_check=True to try anyway")
