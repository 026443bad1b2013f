"""Creating the (empty) schema-v1 layout of a task store and its provenance."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import h5netcdf
import h5py
import numpy as np

from .._version import __version__
from ..family import STATUS_PENDING, ProblemFamily
from ..params import Regime
from . import schema
from .config import COMPRESSIONS
from .solver_preset import solver_record

_STR = h5py.string_dtype()
#: tasks per block when filling the per-task arrays (bounded memory for any N)
_BLOCK = 1 << 16


def git_revision() -> str:
    """The git commit of the scimeta checkout, or ``"unknown"`` for an installed copy."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=5, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def regime_to_json(regime: Regime) -> str:
    return json.dumps(
        {
            "name": regime.name,
            "box": None if regime.box is None else {k: list(v) for k, v in regime.box.items()},
            "exclude": [{k: list(v) for k, v in b.items()} for b in regime.exclude],
            "points": None if regime.points is None else [list(p) for p in regime.points],
            "description": regime.description,
            "initial": regime.initial,
        }
    )


def create_layout(
    path: Path, family: ProblemFamily, regime: Regime, time: np.ndarray, n_tasks: int,
    n_support: int, n_query: int, config_json: str, sampling: str, seed: int,
    dtype: str = "float32", *, compression: str = "gzip", solver_preset: str = "accurate",
) -> None:
    """Write an empty store (every task ``pending``) with all provenance attributes.

    ``compression`` is the filter of ``u`` (a key of :data:`.config.COMPRESSIONS`:
    gzip level 4 + shuffle, lzf + shuffle, or none); ``solver_preset`` is recorded as
    the ``solver_preset`` attribute, and the ``solver`` attribute holds the solver it
    runs (:func:`.solver_preset.solver_record`).

    The per-task arrays (all but the chunked ``u``) are filled here block by block:
    memory stays bounded for any number of tasks, and their whole disk space is taken
    before any task is solved, so only ``u``'s compressed chunks grow the file later.
    """
    space = family.space
    space_dims = tuple(space)
    space_shape = tuple(len(v) for v in space.values())
    n_channel = len(family.state_names)
    with h5netcdf.File(path, "w") as f:
        f.dimensions = {
            "task": n_tasks, "time": len(time), **{k: len(v) for k, v in space.items()},
            "channel": n_channel, "param": len(family.params),
            "support": n_support, "query": n_query,
        }
        _coord(f, "task", np.arange(n_tasks, dtype=np.int64), long_name="task index")
        _coord(f, "time", time, units=family.time_unit, long_name="time")
        units = family.space_units()
        for name, values in space.items():
            _coord(f, name, np.asarray(values, dtype=np.float64),
                   units=units.get(name, "1"), long_name=f"{name} coordinate")
        _coord(f, "channel", np.array(family.state_names, dtype=object), dtype=_STR,
               long_name="state component",
               units=json.dumps(list(family.state_units or ["1"] * n_channel)))
        _coord(f, "param", np.array(family.param_names, dtype=object), dtype=_STR,
               long_name="physical parameter",
               units=json.dumps([p.unit for p in family.params]))
        _coord(f, "support", np.arange(n_support, dtype=np.int64), long_name="support point")
        _coord(f, "query", np.arange(n_query, dtype=np.int64), long_name="query point")

        ftype = np.dtype(dtype)
        codec, level, shuffle = COMPRESSIONS[compression]
        filters: dict[str, object] = {"compression": codec, "compression_opts": level,
                                      "shuffle": shuffle} if codec else {}
        u = f.create_variable(
            schema.FIELD, schema.expected_dims(schema.FIELD, space_dims), dtype=ftype,
            chunks=schema.chunk_shape(len(time), space_shape, n_channel, ftype.itemsize),
            fillvalue=ftype.type(np.nan), **filters,
        )
        u.attrs["long_name"] = "state fields"
        u.attrs["layout"] = "[task, time, *space, channel]"
        y0 = f.create_variable("y0", schema.expected_dims("y0", space_dims), dtype="f8",
                               fillvalue=np.nan)
        y0.attrs["long_name"] = "initial state of each task (float64, as solved)"
        params = f.create_variable("params", ("task", "param"), dtype="f8",
                                   fillvalue=np.nan)
        params.attrs["long_name"] = "physical parameters of each task"
        f.create_variable("seed", ("task",), dtype="u8")
        status = f.create_variable("status", ("task",), dtype="i1")
        status.attrs["flag_values"] = np.array(schema.STATUS_VALUES, dtype=np.int8)
        status.attrs["flag_meanings"] = schema.STATUS_MEANINGS
        fill = {"y0": np.nan, "params": np.nan, "seed": 0, "status": STATUS_PENDING}
        for name, dim in (("support_idx", "support"), ("query_idx", "query")):
            var = f.create_variable(name, ("task", dim), dtype="i8")
            var.attrs["long_name"] = f"flat {dim} indices into the (time, *space) grid"
            fill[name] = -1
        for name, value in fill.items():  # whole arrays, in blocks: the space is taken now
            var = f[name]
            for start in range(0, n_tasks, _BLOCK):
                stop = min(n_tasks, start + _BLOCK)
                var[start:stop] = np.full((stop - start, *var.shape[1:]), value, var.dtype)

        attrs: dict[str, object] = {
            "schema_version": schema.SCHEMA_VERSION,
            "complete": 0,
            "family": family.name,
            "regime": regime.name,
            "regime_json": regime_to_json(regime),
            "equation": family.equation,
            "equation_latex": family.equation_latex,
            "param_names": json.dumps(list(family.param_names)),
            "param_units": json.dumps([p.unit for p in family.params]),
            "param_bounds": json.dumps(regime.bounds(family.params).tolist()),
            "state_names": json.dumps(list(family.state_names)),
            "space_dims": json.dumps(list(space_dims)),
            "solver": json.dumps(solver_record(family, solver_preset)),
            "solver_preset": solver_preset,
            "generator_config": config_json,
            "sampling": json.dumps({"rule": sampling, "support": n_support, "query": n_query,
                                    "index": "flat into (time, *space), C order"}),
            "seed": seed,
            "scimeta_version": __version__,
            "git_revision": git_revision(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for key, attr in attrs.items():
            f.attrs[key] = attr


def _coord(f, name, data, dtype=None, **attrs) -> None:
    var = f.create_variable(name, (name,), data=data, dtype=dtype or data.dtype)
    for key, value in attrs.items():
        var.attrs[key] = value
