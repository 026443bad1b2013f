"""Outputs of ``bench/meta_pinn.py``: the netCDF, the markdown table and the figure.

Nothing here prints; see docs/meta-pinn.md for the protocol.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _pinn_common import INITS, SETTINGS, THRESHOLD, Setup, Size


def hardware() -> dict[str, str]:
    """The run's machine (scimeta.runtime.describe_machine) and its OMP_NUM_THREADS, as
    strings for netCDF attributes."""
    from scimeta.runtime.machine import describe_machine

    facts = {**describe_machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")}
    return {k: str(v) for k, v in facts.items()}


def write_outputs(out: Path, args: argparse.Namespace, setup: Setup, size: Size,
                  splits: list[str], rel: np.ndarray, reach: np.ndarray, values: np.ndarray,
                  chosen: np.ndarray, val_err: np.ndarray, walls: dict[str, float], seed: int,
                  train_loss: dict[str, list[float]], n_train: int) -> None:
    import xarray as xr

    steps = max(size.budgets)
    ds = xr.Dataset(
        {"rel_l2": (("split", "init", "setting", "step", "task"), rel),
         "steps_to_1e-2": (("split", "init", "setting", "task"), reach),
         setup.param: (("split", "task"), values),
         "chosen_weight": (("init", "setting"), chosen),
         "val_rel_l2": (("init", "setting", "weight", "val_task"), val_err)},
        coords={"split": list(splits), "init": list(INITS), "setting": list(SETTINGS),
                "step": list(size.budgets), "weight": list(size.weights)})
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
    ds.to_netcdf(out / "meta_pinn.nc")
    (out / "table.md").write_text(markdown_table(ds, steps, setup))
    plot(ds, out / "meta_pinn.png")


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def markdown_table(ds: Any, steps: int, setup: Setup) -> str:
    """Median [IQR] relative L2 per step, and steps to 1e-2, per split, init, setting."""
    budgets = [int(s) for s in ds["step"].values]
    lines = []
    for split in ds["split"].values:
        nu = ds[setup.param].sel(split=split).values
        lines += [f"### split `{split}` ({setup.symbol} ∈ [{np.nanmin(nu):.3g}, "
                  f"{np.nanmax(nu):.3g}], {int(np.isfinite(nu).sum())} tasks)", "",
                  "| setting | init | λ | " + " | ".join(f"@{b}" for b in budgets)
                  + " | steps to 1e-2 (median; reached) |",
                  "|---" * (len(budgets) + 4) + "|"]
        for setting in ds["setting"].values:
            for init in ds["init"].values:
                r = ds["rel_l2"].sel(split=split, init=init, setting=setting).values
                cells = []
                for row in r:
                    q = np.nanpercentile(row, [25, 50, 75]) if np.isfinite(row).any() \
                        else [np.nan] * 3
                    cells.append(f"{_fmt(q[1])} [{_fmt(q[0])}, {_fmt(q[2])}]")
                st = ds["steps_to_1e-2"].sel(split=split, init=init, setting=setting).values
                st = st[np.isfinite(nu)]
                hit = np.isfinite(st)
                if hit.sum() * 2 > len(st):
                    reach = f"{np.median(np.where(hit, st, np.inf)):.0f}; {hit.sum()}/{len(st)}"
                else:
                    reach = f"not reached in {steps} (median); {hit.sum()}/{len(st)}"
                w = float(ds["chosen_weight"].sel(init=init, setting=setting))
                lines.append(f"| {setting} | {init} | {w:g} | " + " | ".join(cells)
                             + f" | {reach} |")
        lines.append("")
    lines.append(f"Median [IQR] relative L2 over the test tasks; λ chosen on validation "
                 f"{setup.symbol}.")
    return "\n".join(lines) + "\n"


def plot(ds: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(ds["split"].values)
    fig, axes = plt.subplots(len(splits), len(ds["setting"]), squeeze=False,
                             figsize=(5 * len(ds["setting"]), 3.5 * len(splits)))
    x = np.maximum(ds["step"].values, 1)
    for i, split in enumerate(splits):
        for j, setting in enumerate(ds["setting"].values):
            ax = axes[i][j]
            for init in ds["init"].values:
                r = ds["rel_l2"].sel(split=split, init=init, setting=setting).values
                ax.plot(x, np.nanmedian(r, -1), marker="o", label=str(init))
            ax.axhline(THRESHOLD, color="grey", ls=":")
            ax.set(xscale="log", yscale="log", title=f"{split}, {setting}",
                   xlabel="Adam steps (0 plotted at 1)", ylabel="median relative L2")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
