"""``OUT/report.nc``: the suite report's numbers as one xarray Dataset.

Dimension ``cell``, one per row of the markdown's evaluation table (an evaluation,
init and optimizer at the evaluation's largest budget), with string coordinates
``evaluation``, ``run``, ``init``, ``optimizer`` and variables ``budget``,
``median_mse``, ``n_diverged``, ``ratio_to_random``, ``ratio_to_joint``,
``ratio_to_data_only`` (each with ``_low``/``_high``, the 95% bootstrap interval;
NaN where the table shows "–": none, or a diverged task on either side),
``eval_seconds``, ``run_seconds`` (NaN when not recorded). Posterior steps add a
dimension ``posterior`` with coordinates ``posterior_run``, ``posterior_init``,
``posterior_structure`` and variables ``posterior_tasks``, ``coverage_90``, ``nll``,
``posterior_seconds``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the string coordinates of a cell
CELL_COORDS = ("evaluation", "run", "init", "optimizer")
#: the numeric variables of a cell (NaN where absent), with their long names
CELL_VARS = {
    "budget": "adaptation budget (the evaluation's largest)",
    "median_mse": "median query MSE over tasks",
    "n_diverged": "tasks whose adaptation diverged",
    **{f"ratio_to_{ref}{end}": f"median MSE over the {ref.replace('_', '-')} init's{what}"
       for ref in ("random", "joint", "data_only")
       for end, what in (("", ""), ("_low", ", 95% interval low"),
                         ("_high", ", 95% interval high"))},
    "eval_seconds": "wall time of the evaluation step (s)",
    "run_seconds": "wall time of the run step (s)",
}
#: the posterior table: report.nc variable -> (cell key, long name)
POSTERIOR_VARS = {
    "posterior_tasks": ("tasks", "tasks of the posterior"),
    "coverage_90": ("coverage_90", "mean over tasks of the 90% band's coverage"),
    "nll": ("nll", "mean over tasks of the negative log-likelihood (nats per value)"),
    "posterior_seconds": ("seconds", "wall time of the posterior step (s)"),
}


def _strings(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=object) if values else np.array([], dtype=str)


def report_dataset(cells: list[dict], posteriors: list[dict] | None = None) -> Any:
    """The Dataset of ``report.nc`` from :func:`.suite_report.report_cells` and
    :func:`.suite_report.posterior_cells` (see the module docstring)."""
    import xarray as xr

    data: dict[str, Any] = {}
    for var, long_name in CELL_VARS.items():
        dtype = np.int64 if var in ("budget", "n_diverged") else np.float64
        data[var] = ("cell", np.array([c[var] for c in cells], dtype=dtype),
                     {"long_name": long_name})
    coords: dict[str, Any] = {k: ("cell", _strings([c[k] for c in cells]))
                              for k in CELL_COORDS}
    if posteriors:
        coords["posterior"] = _strings([p["posterior"] for p in posteriors])
        for key in ("run", "init", "structure"):
            coords[f"posterior_{key}"] = ("posterior", _strings([p[key] for p in posteriors]))
        for var, (key, long_name) in POSTERIOR_VARS.items():
            dtype = np.int64 if key == "tasks" else np.float64
            data[var] = ("posterior", np.array([p[key] for p in posteriors], dtype=dtype),
                         {"long_name": long_name})
    return xr.Dataset(data, coords=coords,
                      attrs={"title": "scimeta suite report",
                             "ratios": "median MSE over the reference's; NaN where there "
                                       "is none or either side has a diverged task"})
