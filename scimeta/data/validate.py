"""Checking a task store against schema v1; every violation is named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import StoreError
from ..family import STATUS_OK, STATUS_PENDING
from ..runtime.names import ALLOWED, is_safe_name
from . import schema
from .config import COMPRESSIONS, filter_name
from .store import open_h5, read_meta


def validate(path: str | os.PathLike) -> list[str]:
    """All violations of schema v1 in ``path`` (an empty list means valid)."""
    path = Path(path)
    try:
        f = open_h5(path)
    except StoreError as exc:
        return [str(exc)]
    with f:
        try:
            meta = read_meta(f, path)
        except StoreError as exc:
            return [str(exc)]
        problems = [f"missing root attribute {a!r}" for a in schema.REQUIRED_ATTRS
                    if a not in f.attrs]
        problems += _check_attrs(meta)
        if not meta.complete:
            problems.append("file is marked incomplete (complete = 0): generation did not finish")
        try:
            problems += _check_dims(f, meta.space_dims)
            problems += _check_layout(f)
            problems += _check_tasks(f, meta)
        except (OSError, KeyError, ValueError) as exc:  # damaged data past the header
            problems.append(f"file is damaged: {type(exc).__name__}: {exc}")
    return problems


def _check_dims(f: h5py.File, space_dims: tuple[str, ...]) -> list[str]:
    out = []
    for var in (*schema.REQUIRED_VARS, *(v for v in schema.OPTIONAL_VARS if v in f)):
        want = schema.expected_dims(var, space_dims)
        ds = f[var]
        if ds.ndim != len(want):
            out.append(f"{var}: rank {ds.ndim}, expected {len(want)} dims {want}")
            continue
        got = tuple(_scale_name(ds.dims[i]) for i in range(ds.ndim))
        if got != want:
            out.append(f"{var}: dimension scales {got}, expected {want}")
        allowed = schema.FIELD_DTYPES if var == schema.FIELD else (schema.DTYPES[var],)
        if ds.dtype not in [np.dtype(a) for a in allowed]:
            out.append(f"{var}: dtype {ds.dtype}, expected {' or '.join(allowed)}")
    for dim in ("time", *space_dims):
        if dim in f and "units" not in f[dim].attrs:
            out.append(f"coordinate {dim!r} has no units attribute")
    return out


def _check_attrs(meta) -> list[str]:
    """Names that become file names, the family, and the JSON attributes readers use."""
    from .. import registry

    a = meta.attrs
    out = []
    for key in ("family", "regime"):
        if key in a and not is_safe_name(a[key]):
            out.append(f"{key} attribute {a[key]!r} is not a safe name ({ALLOWED})")
    if "family" in a and is_safe_name(a["family"]) and a["family"] not in registry.names():
        out.append(f"family {a['family']!r} is not a known task family (see `scimeta "
                   "problems`; a plugin family must be installed)")
    n_param = len(meta.param_names)
    checks = {
        "param_bounds": lambda v: (isinstance(v, list) and len(v) == n_param and all(
            isinstance(b, list) and len(b) == 2 and all(_number(x) for x in b)
            and b[0] <= b[1] for b in v), f"a list of {n_param} [low, high] pairs"),
        "param_units": lambda v: (isinstance(v, list) and len(v) == n_param
                                  and all(isinstance(x, str) for x in v),
                                  f"a list of {n_param} unit strings"),
        "solver": lambda v: (isinstance(v, dict) and all(
            isinstance(v.get(k), str) for k in ("name", "method")), "an object with "
            "string 'name' and 'method'"),
        "sampling": lambda v: (isinstance(v, dict) and isinstance(v.get("rule"), str) and all(
            isinstance(v.get(k), int) and v[k] >= 1 for k in ("support", "query")),
            "an object with 'rule' and integer 'support', 'query'"),
    }
    for key, check in checks.items():
        if key not in a:
            continue  # reported as missing
        try:
            ok, want = check(json.loads(a[key]))
        except (TypeError, ValueError) as exc:
            ok, want = False, f"valid JSON ({exc})"
        if not ok:
            out.append(f"{key} attribute is unusable: expected {want}")
    return out


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x)


def _scale_name(dim) -> str | None:
    scales = list(dim.keys())
    return scales[0] if scales else None


def _check_layout(f: h5py.File) -> list[str]:
    u = f[schema.FIELD]
    out = []
    if u.chunks is None:
        return [f"{schema.FIELD}: not chunked (expected one task per chunk)"]
    if u.chunks[0] != 1:
        out.append(f"{schema.FIELD}: chunks {u.chunks} span several tasks")
    nbytes = int(np.prod(u.chunks)) * u.dtype.itemsize
    if nbytes > schema.MAX_CHUNK_BYTES:
        out.append(f"{schema.FIELD}: chunk of {nbytes} bytes exceeds {schema.MAX_CHUNK_BYTES}")
    allowed = {codec for codec, _, _ in COMPRESSIONS.values()}
    if u.compression not in allowed:
        out.append(f"{schema.FIELD}: filter {u.compression!r} is not allowed; expected one of "
                   f"{', '.join(COMPRESSIONS)}")
    asked = _config(f).get("compression", "gzip")
    if asked in COMPRESSIONS and u.compression != COMPRESSIONS[asked][0]:
        out.append(f"{schema.FIELD}: stored with filter {filter_name(u.compression)!r} but "
                   f"generator_config asks compression={asked!r}")
    return out


def _config(f: h5py.File) -> dict:
    """The store's ``generator_config`` as a dict (empty when missing or unparsable)."""
    raw = f.attrs.get("generator_config")
    try:
        d = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (TypeError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def notes(path: str | os.PathLike) -> list[str]:
    """What a valid store was written with that a reader may want to know: the filter of
    ``u`` and, for a non-default solver preset, the preset and its tolerances (a
    ``published`` store is valid; its solver is loose by design). Empty if unreadable."""
    path = Path(path)
    try:
        with open_h5(path) as f:
            u = f[schema.FIELD]
            codec = filter_name(u.compression)
            level = f" level {u.compression_opts}" if u.compression == "gzip" else ""
            out = [f"{schema.FIELD}: compression {codec}{level}"
                   + (" + shuffle" if u.shuffle else "")]
            raw = f.attrs.get("solver_preset", "accurate")
            preset = raw.decode() if isinstance(raw, bytes) else str(raw)
            if preset != "accurate":
                sv = json.loads(f.attrs["solver"])
                out.append(f"solver preset {preset}: {sv.get('method')} rtol={sv.get('rtol')} "
                           f"atol={sv.get('atol')} (loose by design; not a reference solution)")
    except (StoreError, OSError, KeyError, TypeError, ValueError, AttributeError):
        return []
    return out


def _check_tasks(f: h5py.File, meta) -> list[str]:
    out = []
    status = meta.status
    bad = ~np.isin(status, schema.STATUS_VALUES)
    if bad.any():
        out.append(f"status: {int(bad.sum())} task(s) with unknown codes "
                   f"{sorted(set(status[bad].tolist()))}")
    if meta.complete and (status == STATUS_PENDING).any():
        out.append(f"status: {int((status == STATUS_PENDING).sum())} task(s) pending in a "
                   "file marked complete")
    ok = meta.ok
    n_grid = int(np.prod(meta.grid_shape))
    sup, qry = f["support_idx"][:][ok], f["query_idx"][:][ok]
    for name, idx in (("support_idx", sup), ("query_idx", qry)):
        if idx.size and (idx.min() < 0 or idx.max() >= n_grid):
            out.append(f"{name}: indices outside [0, {n_grid}) for ok tasks")
    overlap = [int(t) for t, s, q in zip(ok, sup, qry, strict=True)
               if np.intersect1d(s, q).size or len(np.unique(s)) < len(s)
               or len(np.unique(q)) < len(q)]
    if overlap:
        out.append(f"support/query: repeated or shared points in task(s) {overlap[:10]}")
    params = f["params"][:][ok]
    try:
        bounds = np.asarray(json.loads(meta.attrs["param_bounds"]), dtype=np.float64)
        outside = ok[((params < bounds[:, 0]) | (params > bounds[:, 1])).any(axis=1)]
        if outside.size:
            out.append(f"params: task(s) {outside[:10].tolist()} outside the regime bounds")
    except (KeyError, ValueError, IndexError, TypeError):
        pass  # reported by _check_attrs
    u = f[schema.FIELD]
    nonfinite = [int(t) for t in ok if not np.isfinite(u[int(t)]).all()]
    if nonfinite:
        out.append(f"{schema.FIELD}: non-finite values in ok task(s) {nonfinite[:10]} "
                   f"(status should be non-finite)")
    if not np.isfinite(params).all():
        out.append("params: non-finite values in ok tasks")
    n_ok = int((status == STATUS_OK).sum())
    if n_ok == 0:
        out.append("no task has status ok")
    return out
