"""Outputs of ``bench/meta_pinn.py``: the netCDF, the markdown table and the figure
(the table and figure drawn by ``scimeta.report._pinn``, which ``scimeta report``
uses too), each written atomically.

Nothing here prints; see docs/meta-pinn.md for the protocol.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
from _pinn_common import INITS, SETTINGS, Setup, Size, rate_grid

from scimeta.report._pinn import curves_png, markdown_table
from scimeta.runtime.atomic import write_netcdf, write_text


def hardware() -> dict[str, str]:
    """The run's machine (scimeta.runtime.describe_machine) and its OMP_NUM_THREADS, as
    strings for netCDF attributes."""
    from scimeta.runtime.machine import describe_machine

    facts = {**describe_machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")}
    return {k: str(v) for k, v in facts.items()}


def write_outputs(out: Path, args: argparse.Namespace, setup: Setup, size: Size,
                  splits: list[str], rel: np.ndarray, reach: np.ndarray, values: np.ndarray,
                  chosen: np.ndarray, chosen_rate: np.ndarray, val_err: np.ndarray,
                  walls: dict[str, float], seed: int,
                  train_loss: dict[str, list[float]], n_train: int) -> None:
    import xarray as xr

    steps = max(size.budgets)
    ds = xr.Dataset(
        {"rel_l2": (("split", "init", "setting", "step", "task"), rel),
         "steps_to_1e-2": (("split", "init", "setting", "task"), reach),
         setup.param: (("split", "task"), values),
         "chosen_weight": (("init", "setting"), chosen),
         "chosen_rate": (("init", "setting"), chosen_rate),
         "val_rel_l2": (("init", "setting", "weight", "rate", "val_task"), val_err)},
        coords={"split": list(splits), "init": list(INITS), "setting": list(SETTINGS),
                "step": list(size.budgets), "weight": list(size.weights),
                "rate": list(rate_grid(size))})
    ds["rel_l2"].attrs["description"] = ("relative L2 error over the solver's (t, x) grid "
                                         f"(x stride {size.eval_stride}), NaN if diverged")
    ds["steps_to_1e-2"].attrs["description"] = (
        f"first step (checked every {size.check_every}, x stride {size.check_stride}) with "
        f"rel L2 <= 1e-2; NaN = not reached in {steps}")
    ds.attrs.update({
        "family": setup.family, "regime": setup.regime, "varied_param": setup.param,
        "fixed_params": json.dumps(dict(setup.fixed)), "boundary": setup.boundary,
        "periodic_slope": int(setup.boundary == "periodic" and not args.no_slope_bc),
        "command": " ".join([sys.executable, *sys.argv]) if args else "",
        "seeds": json.dumps({"stores": {"train": seed, "val": seed + 1,
                                        **{s: seed + 2 + i for i, s in enumerate(splits)}},
                             "models": seed, "draws": seed, "val_collocation": seed + 100,
                             "test_collocation": {s: seed + 200 + i
                                                  for i, s in enumerate(splits)}}),
        "sizes": json.dumps(dataclasses.asdict(size)),
        "training_tasks": n_train,
        "final_train_loss": json.dumps({k: float(np.mean(v[-20:])) if v else None
                                        for k, v in train_loss.items()}),
        "wall_times": json.dumps({k: round(v, 1) for k, v in walls.items()}),
        **{f"hardware_{k}": v for k, v in hardware().items()},
        "smoke": int(args.smoke)})
    ds.attrs["symbol"] = setup.symbol
    write_netcdf(ds, out / "meta_pinn.nc")
    write_text(out / "table.md", markdown_table(ds))
    curves_png(ds, out / "meta_pinn.png")
