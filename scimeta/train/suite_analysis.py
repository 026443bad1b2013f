"""Suite steps that read a trained run: ``[posteriors.NAME]`` and ``[landscapes.NAME]``.

A posterior step calls :func:`scimeta.bayes.posterior` on its run and writes
``OUT/runs/RUN/posterior/NAME.nc``; a landscape step calls
:func:`scimeta.landscape.landscape` and writes ``OUT/runs/RUN/landscape/NAME.nc``
(the step's name, not the store's regime, so two landscapes of one run on stores of
one regime do not collide). Both need their run and the suite stores they read, and
are skipped when their ``.nc`` exists, as evaluations are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: the step kinds that read a trained run, in plan order, with their output folder
ANALYSES: dict[str, str] = {"evaluation": "evaluation", "posterior": "posterior",
                            "landscape": "landscape"}


@dataclass(frozen=True)
class PosteriorSpec:
    """``[posteriors.NAME]``: the keywords of :func:`scimeta.bayes.posterior`."""

    run: str
    test: str
    validation: str | None = None
    init: str = "maml"
    structure: str = "kron"
    steps: int | None = None
    max_tasks: int | None = None


@dataclass(frozen=True)
class LandscapeSpec:
    """``[landscapes.NAME]``: the keywords of :func:`scimeta.landscape.landscape`."""

    run: str
    test: str
    init: str | None = None
    k: int = 10
    max_tasks: int | None = None


def _check_int(where: str, value: Any, low: int) -> None:
    if value is not None and (isinstance(value, bool) or value < low):
        raise ConfigError(f"{where} = {value!r} is not allowed; it must be an int >= {low}")


def check_analyses(posteriors: dict[str, PosteriorSpec],
                   landscapes: dict[str, LandscapeSpec]) -> None:
    """Check the values the loader's types do not: counts and the curvature structure
    (one-line :class:`ConfigError` naming the key, the value and what is allowed)."""
    structures: tuple[str, ...] = ()
    if posteriors:
        from ..bayes import STRUCTURES

        structures = STRUCTURES
    for name, p in posteriors.items():
        if p.structure not in structures:
            raise ConfigError(f"posteriors.{name}.structure = {p.structure!r} is not allowed "
                              f"(allowed: {', '.join(structures)})")
        _check_int(f"posteriors.{name}.steps", p.steps, 0)
        _check_int(f"posteriors.{name}.max_tasks", p.max_tasks, 1)
    for name, land in landscapes.items():
        _check_int(f"landscapes.{name}.k", land.k, 1)
        _check_int(f"landscapes.{name}.max_tasks", land.max_tasks, 1)


def output(kind: str, out: Path, run: str, name: str) -> Path:
    """``OUT/runs/RUN/<folder>/NAME.nc`` of an analysis step."""
    return out / "runs" / run / ANALYSES[kind] / f"{name}.nc"


def run_posterior(p: PosteriorSpec, run_dir: Path, test: str,
                  validation: str | None, name: str) -> None:
    """Fit and write the posterior of step ``name`` (``RUN_DIR/posterior/NAME.nc``)."""
    from ..bayes import posterior

    posterior(run_dir, test, init=p.init, structure=p.structure, steps=p.steps,
              max_tasks=p.max_tasks, validation=validation, label=name)


def run_landscape(land: LandscapeSpec, run_dir: Path, test: str, name: str) -> None:
    """Compute and write the landscape of step ``name`` (``RUN_DIR/landscape/NAME.nc``
    and its plot)."""
    from ..landscape import landscape
    from ..landscape._run import write_landscape

    ds = landscape(run_dir, test, init=land.init, k=land.k, max_tasks=land.max_tasks,
                   write=False)
    write_landscape(run_dir, ds, name)


def posterior_summary(path: str | os.PathLike) -> dict[str, Any]:
    """``init``, ``structure`` (attributes), ``tasks``, ``coverage_90`` (mean over tasks
    of the 90% band's coverage) and ``nll`` (mean over tasks) of a posterior ``.nc``."""
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return {"init": str(ds.attrs.get("init", "")),
                "structure": str(ds.attrs.get("structure", "")),
                "tasks": int(ds.sizes["task"]),
                "coverage_90": float(ds["coverage"].sel(level=0.9, method="nearest").mean()),
                "nll": float(ds["nll"].mean())}
