"""Generating a task store: parallel over tasks, atomic, resumable.

The store is written to ``<out>.partial`` and renamed to ``<out>`` only once every
task has been solved, so ``<out>`` is always complete. Each task's slot, seed and
content are fixed by its index, so a run killed at any point resumes with
``resume=True`` and recomputes exactly the tasks whose status is still ``pending``:
nothing is lost and nothing is duplicated, whatever the number of workers.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5netcdf
import h5py
import numpy as np
from tqdm.auto import tqdm

from .. import registry
from ..errors import ConfigError, StoreError
from ..family import STATUS_NON_FINITE, STATUS_OK, STATUS_PENDING, ProblemFamily
from ..params import Regime
from . import schema
from .layout import create_layout
from .sampling import check_sizes, sample_indices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationConfig:
    """Everything that determines a store's content (workers do not)."""

    family: str
    regime: str
    tasks: int
    seed: int = 0
    support: int = 10
    query: int = 100
    sampling: str = "random"
    #: parameter bound overrides ``(name, low, high)`` applied to a box regime
    bounds: tuple[tuple[str, float, float], ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def resolve(self) -> tuple[ProblemFamily, Regime, np.ndarray]:
        """Validate everything and return (family, regime, output times)."""
        if self.tasks < 1:
            raise ConfigError(f"tasks must be >= 1, got {self.tasks}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        family = registry.get(self.family)
        regime = family.regime(self.regime)
        if self.bounds:
            regime = family.override(regime, {n: (lo, hi) for n, lo, hi in self.bounds})
        time = family.time_grid(regime).values()
        grid = (len(time), *(len(v) for v in family.space.values()))
        check_sizes(self.sampling, grid, self.support, self.query)
        return family, regime, time


def parse_bounds(items: Sequence[str]) -> tuple[tuple[str, float, float], ...]:
    """Bound overrides from text: ``["omega0=0.5:1.5", "F=0"]`` -> ``(("omega0", 0.5, 1.5),
    ("F", 0.0, 0.0))``, the form of :attr:`GenerationConfig.bounds` (``NAME=V`` fixes it)."""
    out = []
    for item in items:
        name, eq, rng = item.partition("=")
        try:
            if not eq or not name:
                raise ValueError
            lo, _, hi = rng.partition(":")
            low = float(lo)
            out.append((name, low, float(hi) if hi else low))
        except ValueError:
            raise ConfigError(f"bounds item {item!r}: expected NAME=LOW:HIGH or NAME=VALUE"
                              ) from None
    return tuple(out)


def task_seeds(seed: int, n: int) -> np.ndarray:
    """Per-task seeds ``[n]`` uint64 derived from one run seed."""
    return np.array(
        [c.generate_state(1, np.uint64)[0] for c in np.random.SeedSequence(seed).spawn(n)],
        dtype=np.uint64,
    )


@dataclass
class _Unit:
    """The work and results for a contiguous-or-not group of tasks."""

    index: np.ndarray
    params: np.ndarray | None = None
    fields: np.ndarray | None = None
    status: np.ndarray | None = None
    support: np.ndarray | None = None
    query: np.ndarray | None = None


def solve_unit(family: ProblemFamily, regime: Regime, time: np.ndarray, seeds: np.ndarray,
               unit: _Unit, sampling: str, n_support: int, n_query: int) -> _Unit:
    """Draw and solve the tasks of ``unit`` (runs in a worker process)."""
    grid = (len(time), *(len(v) for v in family.space.values()))
    params, y0, sup, qry = [], [], [], []
    for i in unit.index:
        rng = np.random.default_rng(int(seeds[i]))
        params.append(regime.sample(family.params, rng, index=int(i)))
        y0.append(family.sample_initial_state(rng, regime))
        s, q = sample_indices(sampling, rng, grid, n_support, n_query)
        sup.append(s)
        qry.append(q)
    fields, status = family.solve_batch(np.stack(params), np.stack(y0), time)
    with np.errstate(over="ignore"):  # values beyond float32 become inf: non-finite below
        fields = fields.astype(np.float32)
    bad = (status == STATUS_OK) & ~np.isfinite(fields.reshape(len(fields), -1)).all(axis=1)
    status = np.where(bad, STATUS_NON_FINITE, status).astype(np.int8)
    return _Unit(unit.index, np.stack(params), fields, status, np.stack(sup), np.stack(qry))


def generate(
    config: GenerationConfig, out: str | os.PathLike, *, workers: int = 1,
    resume: bool = False, overwrite: bool = False, unit_size: int | None = None,
    progress: bool | None = None,
) -> Path:
    """Generate a task store at ``out`` and return its path.

    ``workers`` processes solve units of ``unit_size`` tasks (default: the family's
    ``preferred_batch`` or 8); ``resume`` continues ``<out>.partial`` of the same
    config; ``overwrite`` replaces an existing file once the new one is complete.
    """
    family, regime, time = config.resolve()
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if resume and overwrite:
        raise ConfigError("resume=True and overwrite=True exclude each other; choose one")
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if not out.parent.is_dir():
        raise ConfigError(f"out={str(out)!r}: directory {str(out.parent)!r} does not exist")
    if out.exists() and not (resume or overwrite):
        raise ConfigError(f"out={str(out)!r} exists; pass resume=True to continue it or "
                          "overwrite=True to replace it")
    if resume and out.exists() and not partial.exists():
        _check_same_config(out, config)
        log.info("%s is already complete; nothing to do", out)
        return out
    if not (resume and partial.exists()):
        partial.unlink(missing_ok=True)
        create_layout(partial, family, regime, time, config.tasks, config.support,
                      config.query, config.to_json(), config.sampling, config.seed)
    else:
        _check_same_config(partial, config)

    seeds = task_seeds(config.seed, config.tasks)
    with h5py.File(partial, "r+") as f:
        f["seed"][:] = seeds
        pending = _pending(f)
        log.info("%s: %d of %d tasks to solve with %d worker(s)", partial, len(pending),
                 config.tasks, workers)
        size = int(unit_size or getattr(family, "preferred_batch", 8) or 8)
        units = [_Unit(pending[i:i + size]) for i in range(0, len(pending), size)]
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(total=len(pending), disable=not show, unit="task") as bar:
            for done in _run(units, workers, family, regime, time, seeds, config):
                _write_unit(f, done)
                bar.update(len(done.index))
        counts = np.bincount(f["status"][:] + 1, minlength=len(schema.STATUS_VALUES))
        if counts[0]:
            raise StoreError(f"{partial}: {counts[0]} tasks still pending after generation")
        f.attrs["complete"] = 1
    os.replace(partial, out)
    log.info("wrote %s (status counts %s)", out, dict(zip(schema.STATUS_MEANINGS.split(),
                                                          counts.tolist(), strict=True)))
    return out


def _run(units: Sequence[_Unit], workers: int, family, regime, time, seeds,
         config: GenerationConfig) -> Iterator[_Unit]:
    args = (config.sampling, config.support, config.query)
    if workers == 1 or len(units) <= 1:
        for unit in units:
            yield solve_unit(family, regime, time, seeds, unit, *args)
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
        futures = [pool.submit(solve_unit, family, regime, time, seeds, u, *args)
                   for u in units]
        for fut in futures:
            yield fut.result()


def _pending(f: h5py.File) -> np.ndarray:
    """Tasks to (re)compute: pending ones, and 'ok' ones whose data did not reach disk.

    Status is written after the data, so an ok status with unwritten data (NaN fill
    value, index -1) or an unreadable chunk can only come from a crash mid-flush.
    """
    status = f["status"][:]
    torn = []
    for i in np.flatnonzero(status == STATUS_OK):
        try:
            intact = np.isfinite(f[schema.FIELD][i]).all() and f["support_idx"][i].min() >= 0
        except OSError:
            intact = False
        if not intact:
            torn.append(i)
    if torn:
        log.warning("%d task(s) marked ok lost their data in a crash; recomputing", len(torn))
        status[torn] = STATUS_PENDING
        f["status"][:] = status
    return np.flatnonzero(status == STATUS_PENDING)


def _write_unit(f: h5py.File, unit: _Unit) -> None:
    """Write one unit's data, then its status, flushing after each (status = commit)."""
    v = f
    if unit.fields is None or unit.status is None:
        raise RuntimeError("internal: a unit is written before it was solved")
    for j, i in enumerate(unit.index):
        v[schema.FIELD][i] = unit.fields[j]
    v["params"][unit.index, :] = unit.params
    v["support_idx"][unit.index, :] = unit.support
    v["query_idx"][unit.index, :] = unit.query
    f.flush()
    v["status"][unit.index] = unit.status
    f.flush()


def _check_same_config(path: Path, config: GenerationConfig) -> None:
    try:
        with h5netcdf.File(path, "r") as f:
            stored = f.attrs.get("generator_config")
    except OSError as exc:
        raise StoreError(f"cannot resume from {str(path)!r}: not a readable HDF5 file "
                         f"({exc}); pass overwrite=True to start again") from None
    if stored != config.to_json():
        raise ConfigError(
            f"cannot resume {str(path)!r}: it was generated with {stored}, not "
            f"{config.to_json()}; pass overwrite=True to start again"
        )
