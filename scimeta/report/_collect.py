"""Find the results under a folder and read what the report shows.

A *results folder* is a suite's output (``suite.json`` or ``status/``) or any folder
with evaluation datasets ``runs/RUN/evaluation/*.nc``. Its table cells come from the
suite report's ``report.nc`` when that is newer than every evaluation, else from the
evaluations themselves (:func:`scimeta.train.suite_report.report_cells`, or the
summary variables of each ``.nc`` when there is no suite status).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, RunError
from .published import Published
from .published import rows as published_rows

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """One evaluation dataset: where it is and what it was run on."""

    name: str
    run: str
    path: Path
    attrs: dict[str, Any]
    support: int | None
    budgets: list[int]
    n_tasks: int
    seconds_per_task: float


@dataclass
class Results:
    """Everything the report shows of one results folder."""

    folder: Path
    suite_file: str | None
    suite_path: Path | None
    evaluations: list[Evaluation]
    cells: list[dict]
    cells_source: str
    steps: list[dict] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _is_results(folder: Path) -> bool:
    return ((folder / "suite.json").is_file() or (folder / "status").is_dir()
            or any(folder.glob("runs/*/evaluation/*.nc")))


def find_results(root: str | os.PathLike) -> list[Path]:
    """Every results folder at or under ``root`` (not descending into one), sorted;
    a :class:`RunError` naming ``root`` when there is none."""
    root = Path(root)
    if not root.is_dir():
        raise RunError(f"results_dir={str(root)!r} is not a folder")
    found: list[Path] = []
    for here, dirs, _files in os.walk(root):
        if _is_results(Path(here)):
            found.append(Path(here))
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    have = [f for f in found if any(f.glob("runs/*/evaluation/*.nc"))]
    if not have:
        raise RunError(f"results_dir={str(root)!r}: no results under it (no "
                       "runs/RUN/evaluation/*.nc); run `scimeta suite SUITE --out DIR` "
                       "first")
    return sorted(have)


def _store_support(path: str, folder: Path) -> int | None:
    """K of a test store, from its ``generator_config`` (the store's path as recorded,
    else the file of that name in ``folder/stores``); None when unreadable."""
    import h5py

    for p in (Path(path), folder / "stores" / Path(path).name):
        try:
            with h5py.File(p, "r") as f:
                return int(json.loads(f.attrs["generator_config"])["support"])
        except (OSError, KeyError, ValueError, TypeError):
            continue
    return None


def _evaluation(path: Path, folder: Path) -> Evaluation:
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            attrs = dict(ds.attrs)
            budgets = [int(b) for b in ds["budget"].values]
            n_tasks = int(ds.sizes["task"])
            spt = (float(np.nanmedian(ds["seconds_per_task"].values))
                   if "seconds_per_task" in ds else math.nan)
    except (OSError, KeyError, ValueError) as exc:
        raise RunError(f"{str(path)!r}: not an evaluation written by scimeta evaluate "
                       f"({exc})") from None
    return Evaluation(path.stem, path.parent.parent.name, path, attrs,
                      _store_support(str(attrs.get("store", "")), folder), budgets,
                      n_tasks, spt)


def _cells_from_report_nc(path: Path) -> list[dict]:
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    if "cell" not in ds.dims:
        return []
    names = [str(v) for v in ds.data_vars if ds[v].dims == ("cell",)]
    cells = []
    for i in range(ds.sizes["cell"]):
        cell: dict[str, Any] = {k: str(ds[k].values[i]) for k in
                                ("evaluation", "run", "init", "optimizer")}
        for v in names:
            x = ds[v].values[i]
            cell[v] = int(x) if v in ("budget", "n_diverged") else float(x)
        cells.append(cell)
    return cells


def _cells_from_evaluations(evals: list[Evaluation]) -> list[dict]:
    """The suite report's cells from the ``.nc`` summaries, for a folder without a
    suite status (no wall times)."""
    import xarray as xr

    from ..train.report import summary_table

    cells = []
    for e in evals:
        with xr.open_dataset(e.path, engine="h5netcdf") as ds:
            table = summary_table(ds.load())
        failed = {(r["init"], r["optimizer"]) for r in table if r["n_diverged"]}
        for row in table:
            cell = {"evaluation": e.name, "run": e.run, "init": str(row["init"]),
                    "optimizer": row["optimizer"], "budget": int(row["budget"]),
                    "median_mse": float(row["median"]), "n_diverged": int(row["n_diverged"]),
                    "eval_seconds": math.nan, "run_seconds": math.nan}
            for ref in ("random", "joint", "data_only"):
                other = (row["init"] if ref == "data_only" else ref,
                         row["optimizer"].removesuffix("+physics"))
                ok = not row["n_diverged"] and other not in failed
                for end in ("", "_low", "_high"):
                    v = row.get(f"ratio_to_{ref}{end}", math.nan)
                    cell[f"ratio_to_{ref}{end}"] = float(v) if ok else math.nan
            cells.append(cell)
    return cells


def _cells(folder: Path, evals: list[Evaluation], has_status: bool) -> tuple[list[dict], str]:
    report_nc = folder / "report.nc"
    newest = max((e.path.stat().st_mtime for e in evals), default=0.0)
    if report_nc.is_file() and report_nc.stat().st_mtime >= newest:
        try:
            cells = _cells_from_report_nc(report_nc)
        except (OSError, KeyError, ValueError) as exc:
            log.warning("%s: unreadable (%s); reading the evaluations instead", report_nc, exc)
        else:
            if {c["evaluation"] for c in cells} == {e.name for e in evals}:
                return cells, f"{report_nc.name} (the suite report)"
    built: list[dict] = []
    if has_status:  # the suite report's own cells, with the status's wall times
        from ..train.suite_report import report_cells

        built = report_cells(folder)[0]
    seen = {c["evaluation"] for c in built}
    return (built + _cells_from_evaluations([e for e in evals if e.name not in seen]),
            "the evaluation .nc files")


def _resolve_suite(recorded: str | None, folder: Path) -> Path | None:
    """The suite file recorded in ``suite.json``: as given, relative to the working
    directory, to the results folder's parents, or by name in ``problems/suites``."""
    if not recorded:
        return None
    p = Path(recorded)
    tries = [p] if p.is_absolute() else [Path.cwd() / p, *(q / p for q in folder.parents)]
    tries.append(Path.cwd() / "problems" / "suites" / p.name)
    return next((t.resolve() for t in tries if t.is_file()), None)


def _run_info(folder: Path, seconds: dict[str, float]) -> list[dict]:
    runs = []
    for d in sorted(p for p in (folder / "runs").glob("*") if p.is_dir()):
        info: dict[str, Any] = {"run": d.name, "seconds": seconds.get(f"run:{d.name}",
                                                                     math.nan)}
        try:
            cfg = tomllib.loads((d / "config.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            cfg = {}
        meta, run, optim = (cfg.get(k, {}) for k in ("meta", "run", "optim"))
        info.update(algorithm=meta.get("algorithm", "?"),
                    iterations=optim.get("iterations", "?"),
                    device=run.get("device", "?"), dtype=run.get("dtype", "?"))
        try:
            saved = json.loads((d / "run.json").read_text())
        except (OSError, ValueError):
            saved = {}
        info["version"] = saved.get("scimeta_version", "?")
        info["machine"] = saved.get("machine")  # runs from scimeta >= 0.1 record it
        runs.append(info)
    return runs


def collect(folder: Path) -> Results:
    """Read one results folder (see the module docstring)."""
    from ..train.suite_status import suite_status

    evals = [_evaluation(p, folder) for p in sorted(folder.glob("runs/*/evaluation/*.nc"))]
    has_status = (folder / "status").is_dir() or (folder / "suite.json").is_file()
    steps = suite_status(folder)["steps"] if has_status else []
    try:
        recorded = json.loads((folder / "suite.json").read_text()).get("suite")
    except (OSError, ValueError, AttributeError):
        recorded = None
    cells, source = _cells(folder, evals, has_status)
    by_eval = {e.name: e for e in evals}
    for c in cells:
        e = by_eval.get(c["evaluation"])
        c["family"] = str(e.attrs.get("family", "?")) if e else "?"
        c["regime"] = str(e.attrs.get("regime", "?")) if e else "?"
    seconds = {r["step"]: float(r["seconds"]) for r in steps if r.get("seconds") is not None}
    res = Results(folder, recorded, _resolve_suite(recorded, folder), evals, cells, source,
                  steps, _run_info(folder, seconds))
    if recorded and res.suite_path is None:
        res.notes.append(f"The suite file {recorded!r} recorded in suite.json was not "
                         "found, so no published figures are compared.")
    elif res.suite_path is not None:
        table = tomllib.loads(res.suite_path.read_text()).get("report", {})
        extra = sorted(set(table) - {"published"})
        if extra or not isinstance(table.get("published", []), list):
            raise ConfigError(f"{str(res.suite_path)!r}: [report] takes one key, "
                              f"published = [KEY, ...]; got {sorted(table)}")
        res.published = published_rows(list(table.get("published", [])))
    return res
