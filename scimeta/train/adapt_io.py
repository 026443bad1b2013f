"""Inputs and outputs of :func:`~scimeta.train.adapt.adapt`: support and point CSVs,
``--param`` values, their checks, and saving predictions.

Every check raises a one-line :class:`~scimeta.errors.ConfigError` naming the file,
the row or the value and what is allowed, before any work is done.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import xarray as xr

from ..errors import ConfigError
from ..family import ProblemFamily
from ..runtime.atomic import atomic_path


def _read_csv(path: str | os.PathLike, what: str) -> list[list[str]]:
    """The non-empty rows of a text CSV, with one-line errors for anything else."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a directory, not a CSV file")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [r for r in csv.reader(fh) if r]
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not a text CSV file (binary content)"
                          ) from None
    except csv.Error as exc:
        raise ConfigError(f"{what} {str(path)!r} is not a CSV file ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r}: cannot be read ({exc.strerror})") from None


def _numbers(rows: list[list[str]], header: list[str], what: str, path) -> np.ndarray:
    """Rows of numbers ``[R, len(header)]``; an empty cell (or ``nan``) is missing."""
    if any(len(r) != len(header) for r in rows):
        bad = next(k for k, r in enumerate(rows) if len(r) != len(header))
        raise ConfigError(f"{what} {str(path)!r}: row {bad + 2} has {len(rows[bad])} "
                          f"values, the header {len(header)} (ragged rows)")
    try:
        return np.array([[float(v) if v.strip() else np.nan for v in r] for r in rows],
                        dtype=np.float64).reshape(len(rows), len(header))
    except ValueError as exc:
        raise ConfigError(f"{what} {str(path)!r}: non-numeric value ({exc})") from None


def read_support_csv(path: Path, inputs: list[str], states: list[str]) -> tuple[np.ndarray, ...]:
    """Inputs ``[K, d_in]`` and outputs ``[K, C]`` from a CSV with a header row.

    State columns may be a subset of ``states``; an empty cell or ``nan`` is a missing
    value (not fitted). Inputs must all be given. Row order does not matter (each point
    is fitted on its own, unsorted times are fine); :func:`check_support` refuses a point
    given twice.
    """
    rows = _read_csv(path, "support")
    if len(rows) < 2:
        raise ConfigError(f"support {str(path)!r}: expected a header and at least one row")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in inputs if c not in header]
    extra = [c for c in header if c not in inputs and c not in states]
    twice = sorted({c for c in header if header.count(c) > 1})
    if missing or extra or twice or not any(s in header for s in states):
        raise ConfigError(
            f"support {str(path)!r}: columns {header}; need inputs {inputs} and one or more "
            f"of the states {states}" + (f"; unknown columns {extra}" if extra else "")
            + (f"; repeated columns {twice}" if twice else "")
        )
    data = _numbers(rows[1:], header, "support", path)
    x = data[:, [header.index(c) for c in inputs]]
    y = np.full((len(data), len(states)), np.nan)
    for j, s in enumerate(states):
        if s in header:
            y[:, j] = data[:, header.index(s)]
    return x, y


def read_points_csv(path: str | os.PathLike, inputs: Sequence[str]) -> np.ndarray:
    """Prediction points ``[M, d_in]`` from a CSV whose header names exactly ``inputs``."""
    rows = _read_csv(path, "at")
    header = [h.strip() for h in rows[0]] if rows else []
    if sorted(header) != sorted(inputs) or len(rows) < 2:
        raise ConfigError(f"at {str(path)!r}: columns {header} and {max(len(rows) - 1, 0)} "
                          f"row(s); need a header of exactly {list(inputs)} and one or more "
                          "rows")
    data = _numbers(rows[1:], header, "at", path)
    if not np.isfinite(data).all():
        row = int(np.flatnonzero(~np.isfinite(data).all(axis=1))[0])
        raise ConfigError(f"at {str(path)!r}: row {row + 2} has a missing or non-finite "
                          "value; every prediction point needs finite coordinates")
    return data[:, [header.index(c) for c in inputs]]


def parse_assignments(items: Sequence[str]) -> dict[str, float]:
    """``["omega0=1.2", "F=0"]`` -> ``{"omega0": 1.2, "F": 0.0}`` (each name once, finite)."""
    out: dict[str, float] = {}
    for item in items:
        name, eq, value = (part.strip() for part in item.partition("="))
        try:
            if not eq or not name or name in out:
                raise ValueError
            out[name] = float(value)
            if not math.isfinite(out[name]):
                raise ValueError
        except ValueError:
            raise ConfigError(f"params {item!r}: expected NAME=VALUE, a finite number, each "
                              "name once") from None
    return out


def param_vector(family: ProblemFamily, values: Mapping[str, float]) -> np.ndarray:
    """The family's parameter vector ``[P]`` from values given by name (all of them)."""
    names = family.param_names
    unknown = sorted(set(values) - set(names))
    missing = [n for n in names if n not in values]
    if unknown or missing:
        raise ConfigError(f"params {dict(values)}: family {family.name!r} needs exactly "
                          f"{', '.join(names)}; unknown {unknown}, missing {missing}")
    return check_params_vector(family, [values[n] for n in names])


def check_params_vector(family: ProblemFamily, params) -> np.ndarray:
    """``params`` as ``[P]`` float64: the family's count, finite, in each domain."""
    try:
        p = np.asarray(params, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"params {params!r}: expected {len(family.params)} numbers") from None
    if p.shape != (len(family.params),):
        raise ConfigError(f"params has {p.size} values; family {family.name!r} needs "
                          f"{len(family.params)} ({', '.join(family.param_names)})")
    for spec, v in zip(family.params, p, strict=True):
        lo, hi = spec.domain
        if not math.isfinite(v) or not lo <= v <= hi:
            raise ConfigError(f"params: {spec.name} = {v!r} is outside its physical domain "
                              f"[{lo}, {hi}] (a finite number is needed)")
    return p


def check_support(x: np.ndarray, y: np.ndarray, inputs: Sequence[str], lo: Sequence[float],
                  hi: Sequence[float]) -> None:
    """Refuse support data adaptation cannot use: missing or non-finite inputs, points
    outside the training grid ``[lo, hi]``, repeated points, infinite values, nothing
    observed."""
    def row(mask: Any) -> int:
        return int(np.flatnonzero(mask)[0])

    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ConfigError(f"support: point {row(bad) + 1} has a missing or non-finite "
                          f"input ({', '.join(inputs)} = {x[row(bad)].tolist()})")
    lo_a, hi_a = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    tol = 1e-9 * np.maximum(hi_a - lo_a, 1.0)
    out = ((x < lo_a - tol) | (x > hi_a + tol)).any(axis=1)
    if out.any():
        box = ", ".join(f"{n} in [{a:g}, {b:g}]" for n, a, b in zip(inputs, lo_a, hi_a,
                                                                      strict=True))
        raise ConfigError(f"support: point {row(out) + 1} ({x[row(out)].tolist()}) lies "
                          f"outside the grid the run was trained on ({box})")
    _, first, counts = np.unique(x, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = x[first[np.flatnonzero(counts > 1)[0]]].tolist()
        raise ConfigError(f"support: the point {dup} appears more than once; give each "
                          "point once (one row per point, missing channels left empty)")
    if np.isinf(y).any():
        raise ConfigError(f"support: point {row(np.isinf(y).any(axis=1)) + 1} has an "
                          "infinite value")
    if not np.isfinite(y).any():
        raise ConfigError("support: no observed value (every state value is missing or nan)")


OUT_SUFFIXES = {".csv": "CSV", ".nc": "netCDF", ".nc4": "netCDF", ".h5": "netCDF"}


def check_output(out: str | os.PathLike | None) -> None:
    """Refuse, before any work, an ``out`` that cannot be written: an unknown suffix
    (``.csv`` is CSV, ``.nc``/``.nc4``/``.h5`` netCDF), a directory, a missing or
    read-only folder."""
    if out is None:
        return
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"out {str(path)!r} is a directory; give a file name ending in "
                          f"{', '.join(OUT_SUFFIXES)}")
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise ConfigError(f"out {str(path)!r}: unknown suffix {path.suffix or '(none)'!r}; "
                          f"use .csv (CSV) or .nc (netCDF)")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"out {str(path)!r}: folder {str(folder)!r} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".scimeta-", delete=True):
            pass
    except OSError as exc:
        raise ConfigError(f"out {str(path)!r}: cannot write in {str(folder)!r} "
                          f"({exc.strerror})") from None


def write_predictions_csv(ds: xr.Dataset, fh: TextIO) -> None:
    """The inputs and predicted channels of :func:`adapt`'s result as CSV, one row a point."""
    table = np.column_stack([ds[c].values for c in ds["input"].values]
                            + [ds["prediction"].values])
    fh.write(",".join([*map(str, ds["input"].values), *map(str, ds["channel"].values)]) + "\n")
    for row in table:
        fh.write(",".join(f"{v:.8g}" for v in row) + "\n")


def save_predictions(ds: xr.Dataset, out: str | os.PathLike | None = None) -> None:
    """Save :func:`adapt`'s result: ``.csv`` as CSV, ``.nc``/``.nc4``/``.h5`` as netCDF
    (other names are refused, see :func:`check_output`); None: CSV on stdout. Files are
    written to a temporary name and renamed: never left half-written."""
    if out is None:
        write_predictions_csv(ds, sys.stdout)
        return
    check_output(out)
    path = Path(out)
    try:
        with atomic_path(path) as tmp:
            if path.suffix.lower() == ".csv":
                with open(tmp, "w", newline="") as fh:
                    write_predictions_csv(ds, fh)
            else:
                ds.to_netcdf(tmp, engine="h5netcdf")
    except OSError as exc:
        raise ConfigError(f"out {str(path)!r}: cannot be written "
                          f"({getattr(exc, 'strerror', None) or exc})") from None
