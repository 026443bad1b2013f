"""Schema v1 of scimeta's HDF5 task stores: names, layout rules, status codes.

One file holds N tasks of one family and regime. Dimensions: ``task``, ``time``,
the family's spatial dimensions (``x``[, ``y``]), ``channel`` (state components),
``param``, ``support``, ``query``. Every dimension has a coordinate variable that is
an HDF5 dimension scale, so ``xarray.open_dataset(path, engine="h5netcdf")`` sees
named dimensions.

Variables
    ``u``           [task, time, *space, channel] float32 (or float64, ``--dtype``),
                    state fields; NaN where a task was not solved (pending, or failed
                    before writing any value); under-resolved tasks keep their finite
                    data and values beyond the dtype's range are stored as ±inf (status
                    non-finite). Read ``status``, never the values, to know a task's state.
    ``params``      [task, param] float64, physical parameters of each task
    ``y0``          [task, *space, channel] float64, each task's initial state as solved
                    (optional in v1: stores written before it lack it)
    ``seed``        [task] uint64, per-task seed (regenerates params, initial state, indices)
    ``status``      [task] int8, see :data:`STATUS_MEANINGS`
    ``support_idx`` [task, support] int64, flat indices into the (time, *space) grid
    ``query_idx``   [task, query] int64, idem, disjoint from the support set
Root attributes: see :data:`REQUIRED_ATTRS`; JSON strings where structured.

Readers of v1 keep working on stores with ``y0`` or a float64 ``u``: both are
additions within v1 (an optional variable, a second allowed dtype), so the version
stays 1.
"""

from __future__ import annotations

from ..family import STATUS_NAMES

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)

FIELD = "u"
STATUS_VALUES = tuple(sorted(STATUS_NAMES))
STATUS_MEANINGS = " ".join(STATUS_NAMES[k] for k in STATUS_VALUES)

#: Largest allowed chunk of ``u`` in bytes (one task per chunk, or a slab of its times).
MAX_CHUNK_BYTES = 1 << 20

#: Root attributes every file must carry (provenance and layout).
REQUIRED_ATTRS = (
    "schema_version",
    "complete",
    "family",
    "regime",
    "regime_json",
    "equation",
    "param_names",
    "param_units",
    "param_bounds",
    "state_names",
    "solver",
    "generator_config",
    "sampling",
    "seed",
    "scimeta_version",
    "git_revision",
    "created",
)

#: dtypes ``u`` may be stored in (``GenerationConfig.dtype``)
FIELD_DTYPES = ("float32", "float64")

#: variable -> (dimensions before the spatial dims, after); ``*`` marks where space goes.
REQUIRED_VARS = {
    FIELD: ("task", "time", "*", "channel"),
    "params": ("task", "param"),
    "seed": ("task",),
    "status": ("task",),
    "support_idx": ("task", "support"),
    "query_idx": ("task", "query"),
}

#: variables a v1 store may lack (written by newer scimeta versions)
OPTIONAL_VARS = {
    "y0": ("task", "*", "channel"),
}

#: the default dtype of each variable (``u`` may also be any of :data:`FIELD_DTYPES`)
DTYPES = {
    FIELD: "float32",
    "y0": "float64",
    "params": "float64",
    "seed": "uint64",
    "status": "int8",
    "support_idx": "int64",
    "query_idx": "int64",
}


def expected_dims(var: str, space_dims: tuple[str, ...]) -> tuple[str, ...]:
    """The dimension names of ``var`` for a file with the given spatial dims."""
    out: list[str] = []
    for d in {**REQUIRED_VARS, **OPTIONAL_VARS}[var]:
        out.extend(space_dims if d == "*" else (d,))
    return tuple(out)


def chunk_shape(n_time: int, space_shape: tuple[int, ...], n_channel: int,
                itemsize: int = 4) -> tuple[int, ...]:
    """Chunks of ``u``: one task per chunk, split along time to stay ≤ 1 MiB."""
    per_time = itemsize * n_channel
    for s in space_shape:
        per_time *= s
    t_chunk = max(1, min(n_time, MAX_CHUNK_BYTES // per_time))
    return (1, t_chunk, *space_shape, n_channel)
