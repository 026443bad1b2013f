"""Headline table of the new-regime suites: each init with the optimizer chosen on validation.

``scimeta evaluate`` records every (init, optimizer) cell; a reader who wants one number
per init must not pick the optimizer on the test store. Here each init's optimizer is
the one with the least median *validation* query MSE at its chosen rate (the
validation table the evaluation stores), among data-only optimizers, among
physics-informed ones, and among all; its test median at ``--budget`` is printed with
the ratio to ``random``, ``joint`` and ``conditioned`` (each at its own
validation-chosen optimizer; paired bootstrap 95% interval over tasks) and the
physics gain (best data-only over best physics-informed, both chosen on validation).
Then, per file, every cell: init x optimizer, the test median (diverged tasks).

    python bench/new_regimes.py osc-extra/runs/maml/evaluation/*.nc [--budget 50]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import xarray as xr

from scimeta.train.selection import bootstrap_ratio

REFS = ("random", "joint", "conditioned")


def chosen(ds: xr.Dataset, init: str, optimizers: list[str]) -> str | None:
    """The optimizer of ``optimizers`` with the least validation median at its rate."""
    best, best_v = None, math.inf
    for opt in optimizers:
        grid = ds["grid_rate"].sel(optimizer=opt).values
        rate = float(ds["chosen_rate"].sel(init=init, optimizer=opt))
        hit = np.flatnonzero(np.isclose(grid, rate))
        if not len(hit):
            continue
        v = float(ds["validation_median"].sel(init=init, optimizer=opt).values[hit[0]])
        if v < best_v:
            best, best_v = opt, v
    return best


def rows(path: Path, budget: int) -> list[dict]:
    ds = xr.open_dataset(path, engine="h5netcdf").load()
    opts = [str(o) for o in ds["optimizer"].values if o != "learned"]
    data = [o for o in opts if not o.endswith("+physics")]
    phys = [o for o in opts if o.endswith("+physics")]
    b = max(int(v) for v in ds["budget"].values if int(v) <= budget)
    mse = ds["query_mse"].sel(budget=b)
    pick = {str(i): {"data": chosen(ds, str(i), data), "physics": chosen(ds, str(i), phys),
                     "all": chosen(ds, str(i), opts)} for i in ds["init"].values}
    out = []
    for init, p in pick.items():
        opt = p["all"]
        if opt is None:
            continue
        a = mse.sel(init=init, optimizer=opt).values
        row = {"file": f"{ds.attrs['family']} / {path.stem}", "init": init,
               "optimizer": opt, "budget": b, "diverged": int(np.isnan(a).sum()),
               "median": float(np.median(np.where(np.isnan(a), np.inf, a)))}
        for ref in REFS:
            if ref in pick and pick[ref]["all"] is not None:
                r = mse.sel(init=ref, optimizer=pick[ref]["all"]).values
                row[ref] = bootstrap_ratio(a, r)
                row[ref + "_diverged"] = int(np.isnan(r).sum())
        if p["data"] and p["physics"]:
            row["gain"] = bootstrap_ratio(mse.sel(init=init, optimizer=p["data"]).values,
                                          mse.sel(init=init, optimizer=p["physics"]).values)
        out.append(row)
    return out


def fmt(r: tuple[float, float, float] | None, diverged: int = 0) -> str:
    """A ratio with its interval; a reference with diverged tasks is marked ``†k``
    (its diverged tasks count as +inf, which favours the other side)."""
    if r is None or not math.isfinite(r[0]):
        return "–"
    return f"{r[0]:.3g} [{r[1]:.3g}, {r[2]:.3g}]" + (f" †{diverged}" if diverged else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path, help="evaluation .nc files")
    ap.add_argument("--budget", type=int, default=50, help="largest budget to report")
    args = ap.parse_args()
    print("| family / regime | init | optimizer (chosen on validation) | budget | median MSE "
          "(diverged) | /random | /joint | /conditioned | data-only / physics |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in args.files:
        for r in rows(f, args.budget):
            refs = " | ".join(fmt(r.get(k), r.get(k + "_diverged", 0)) for k in REFS)
            print(f"| {r['file']} | {r['init']} | {r['optimizer']} | {r['budget']} | "
                  f"{r['median']:.3g} ({r['diverged']}) | {refs} | {fmt(r.get('gain'))} |")
    print("\n†k: the reference cell has k diverged tasks, counted as +inf (ratios against "
          "it favour the other side)")
    for f in args.files:
        print("\n" + matrix(f, args.budget))


def matrix(path: Path, budget: int) -> str:
    """Every cell of one evaluation file: median test query MSE (diverged tasks, counted
    as +inf) per init and optimizer, each at its validation-chosen rate and λ."""
    ds = xr.open_dataset(path, engine="h5netcdf").load()
    opts = [str(o) for o in ds["optimizer"].values if o != "learned"]
    b = max(int(v) for v in ds["budget"].values if int(v) <= budget)
    lines = [f"{ds.attrs['family']} / {path.stem}: median query MSE after {b} steps "
             f"(diverged tasks), {ds.sizes['task']} tasks", "",
             "| init | " + " | ".join(opts) + " |", "|---|" + "---|" * len(opts)]
    for init in ds["init"].values:
        cells = []
        for opt in opts:
            a = ds["query_mse"].sel(budget=b, init=init, optimizer=opt).values
            n = int(np.isnan(a).sum())
            med = float(np.median(np.where(np.isnan(a), np.inf, a)))
            cells.append(f"{med:.3g}" + (f" ({n})" if n else ""))
        lines.append(f"| {init} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
