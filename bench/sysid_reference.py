"""The system-identification reference beside an existing evaluation, on the same tasks.

`scimeta evaluate --reference sysid[-known]` adds the reference row while it evaluates
every init; for a finished evaluation (a suite's), this script fits only the reference
on the first N test tasks of the evaluation's store and prints it beside each init at
its validation-chosen optimizer and budget, on those same tasks (medians, and the
reference's wall time per task against the init's):

    OMP_NUM_THREADS=1 python bench/sysid_reference.py OUT/runs/maml/evaluation/extrapolate.nc \\
        --reference sysid-known --max-tasks 200 --save sysid-known.nc

The fitted variables are saved (atomically) with ``--save`` so a table can be redrawn
with ``--load`` without refitting.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from new_regimes import _validation_median, chosen

from scimeta import registry
from scimeta.runtime.atomic import write_netcdf
from scimeta.train.sysid import sysid_variables


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evaluation", type=Path, help="an evaluation .nc of scimeta evaluate")
    ap.add_argument("--reference", choices=("sysid", "sysid-known"), default="sysid-known")
    ap.add_argument("--max-tasks", type=int, default=50)
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--save", type=Path, help="write the reference's variables here")
    ap.add_argument("--load", type=Path, help="read them from here instead of fitting")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ev = xr.open_dataset(args.evaluation, engine="h5netcdf").load()
    if args.load:
        ref = xr.open_dataset(args.load, engine="h5netcdf").load()
    else:
        info = json.loads((Path(ev.attrs["run_dir"]) / "run.json").read_text())
        scale = np.asarray(info["norm"]["y_scale"], float) if info.get("norm") else None
        n = min(args.max_tasks, ev.sizes["task"])
        ref = sysid_variables(registry.get(ev.attrs["family"]), ev.attrs["store"], n,
                              args.reference, scale)
        ref = ref.assign_coords(task=ev["task"].values[:n])
        ref.attrs["reference"] = args.reference
        if args.save:
            write_netcdf(ref, args.save)
    tasks = ref["task"].values
    mse = ref["sysid_mse"].values
    print(f"{ev.attrs['family']} / {ev.attrs['label']}: {len(tasks)} tasks, budget "
          f"{args.budget}, MSE in the learners' units")
    print("| row | optimizer (chosen on validation) | median MSE | IQR | s per task |")
    print("|---|---|---|---|---|")
    q = np.nanpercentile(mse, [25, 50, 75])
    print(f"| {ref.attrs.get('reference', args.reference)} (reference) | least squares "
          f"| {q[1]:.3g} | [{q[0]:.3g}, {q[2]:.3g}] | {np.median(ref['sysid_seconds']):.2f} |")
    for init in ev["init"].values:
        opt = chosen(ev, str(init), [str(o) for o in ev["optimizer"].values])
        if opt is None or math.isnan(_validation_median(ev, str(init), opt)):
            continue
        cell = ev["query_mse"].sel(init=init, optimizer=opt, budget=args.budget, task=tasks)
        v = np.where(ev["diverged"].sel(init=init, optimizer=opt, budget=args.budget,
                                        task=tasks), np.inf, cell.values)
        qi = np.percentile(v, [25, 50, 75])
        sec = float(ev["seconds_per_task"].sel(init=init, optimizer=opt))
        print(f"| {init} | {opt} | {qi[1]:.3g} | [{qi[0]:.3g}, {qi[2]:.3g}] | {sec:.3f} |")


if __name__ == "__main__":
    main()
