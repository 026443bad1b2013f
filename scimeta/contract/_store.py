"""The store part of the contract: a few tasks go through the library's generator into
an HDF5 store and come back equal through h5py, :class:`~scimeta.data.TaskReader` and
the xarray view."""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from ..family import STATUS_NAMES, STATUS_NON_FINITE, STATUS_OK, ProblemFamily
from ..params import TimeGrid
from ..registry import registered


def round_trip(family: ProblemFamily, regime_name: str, tasks: int = 2,
               times: int | None = None) -> tuple[int, str]:
    """Generate ``tasks`` tasks of ``regime_name`` (its first ``times`` output times, all
    if None) and read them back. Returns (number of mismatches, what was compared)."""
    from ..data import GenerationConfig, TaskReader, generate, open_xarray, task_seeds
    from ..data.sampling import grid_inputs

    regime = family.regime(regime_name)
    grid = family.time_grid(regime)
    if times is not None and times < grid.n:
        regime = dataclasses.replace(regime, time=TimeGrid(grid.t0, grid.t0 + (times - 1)
                                                           * grid.dt, times))
        grid = family.time_grid(regime)
    fam = copy.copy(family)
    # a shallow copy with this regime and a recording solver (instance overrides)
    fam.regimes = {**family.regimes, regime_name: regime}  # type: ignore[misc]
    solved: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def solve_batch(params, y0, t):
        fields, status = family.solve_batch(params, y0, t)
        solved.append((np.array(params), np.array(fields), np.array(status)))
        return fields, status

    fam.solve_batch = solve_batch  # type: ignore[method-assign]
    bad: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, registered(fam):
        path = Path(tmp) / "contract.h5"
        config = GenerationConfig(fam.name, regime_name, tasks=tasks, seed=0, support=1,
                                  query=1)
        generate(config, path, unit_size=tasks, progress=False)
        params = np.concatenate([p for p, _, _ in solved if len(p) == tasks])
        fields = np.concatenate([f for _, f, _ in solved if len(f) == tasks])
        status = np.concatenate([s for _, _, s in solved if len(s) == tasks])
        with np.errstate(over="ignore"):  # as the generator: beyond float32 is inf
            expect = fields.astype(np.float32)
        finite = np.isfinite(expect.reshape(tasks, -1)).all(axis=1)
        status = np.where((status == STATUS_OK) & ~finite, STATUS_NON_FINITE, status)
        for i, seed in enumerate(task_seeds(0, tasks)):
            drawn = regime.sample(fam.params, np.random.default_rng(int(seed)), index=i)
            if not np.array_equal(drawn, params[i]):
                bad.append(f"task {i}: params not reproduced from its seed")
        not_ok = [f"task {i} {STATUS_NAMES.get(int(s), str(s))}" for i, s in enumerate(status)
                  if s != STATUS_OK]
        if not_ok:
            bad.append(f"not solved: {', '.join(not_ok)} (params {params.tolist()})")
        with open_xarray(path) as ds:
            _same(bad, "xarray params", ds["params"].values, params)
            _same(bad, "xarray u", ds["u"].values, expect)
            _same(bad, "xarray status", ds["status"].values, status)
            _same(bad, "xarray time", ds["time"].values, grid.values())
            _same(bad, "xarray channel", list(ds["channel"].values), list(fam.state_names))
            _same(bad, "xarray param", list(ds["param"].values), list(fam.param_names))
            dims = ("task", "time", *fam.space, "channel")
            _same(bad, "xarray u dims", ds["u"].dims, dims)
            indices = ds["support_idx"].values, ds["query_idx"].values
        if not not_ok:
            points = grid_inputs(grid.values(), list(fam.space.values())).astype(np.float32)
            reader = TaskReader(path)
            _same(bad, "TaskReader params", reader.params, params)
            for i in range(len(reader)):
                _same(bad, f"TaskReader fields({i})", reader.fields(i), expect[i])
                flat = expect[i].reshape(-1, expect.shape[-1])
                sx, sy, qx, qy, *_ = (a.numpy() for a in reader[i])
                for name, x, y, idx in (("support", sx, sy, indices[0][i]),
                                        ("query", qx, qy, indices[1][i])):
                    _same(bad, f"TaskReader {name} points {i}", x, points[idx])
                    _same(bad, f"TaskReader {name} values {i}", y, flat[idx])
            reader.close()
    what = (f"{tasks} tasks of {regime_name!r}, t in [{grid.t0:g}, {grid.t1:g}] ({grid.n} "
            "times): params, u, status, support/query via xarray and TaskReader")
    return len(bad), "; ".join(bad) or what


def _same(bad: list[str], what: str, got, expected) -> None:
    got, expected = np.asarray(got), np.asarray(expected)
    nan = got.dtype.kind == "f" and expected.dtype.kind == "f"
    if got.shape != expected.shape or not np.array_equal(got, expected, equal_nan=nan):
        bad.append(f"{what} differs from what was solved")
