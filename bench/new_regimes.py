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

``--versus OTHER.nc`` compares two runs evaluated on the same test tasks (e.g. MAML
meta-trained with and without the residual): the ``maml`` init of each file at its
own validation-chosen optimizer, their validation medians (the adoption criterion)
and the paired bootstrap ratio of the test MSEs.

    python bench/new_regimes.py osc-extra/runs/maml/evaluation/*.nc [--budget 50]
    python bench/new_regimes.py A.nc --versus B.nc
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import xarray as xr

from scimeta.train.selection import bootstrap_ratio, failures_as_inf

REFS = ("random", "joint", "conditioned")


def _budget(ds: xr.Dataset, budget: int) -> int:
    """The largest recorded budget not above ``budget``."""
    return max(int(v) for v in ds["budget"].values if int(v) <= budget)


def _validation_median(ds: xr.Dataset, init: str, opt: str) -> float:
    """The validation median of (init, opt) at its chosen rate (NaN if off the grid)."""
    grid = ds["grid_rate"].sel(optimizer=opt).values
    hit = np.flatnonzero(np.isclose(grid, float(ds["chosen_rate"].sel(init=init,
                                                                    optimizer=opt))))
    if not len(hit):
        return math.nan
    return float(ds["validation_median"].sel(init=init, optimizer=opt).values[hit[0]])


def chosen(ds: xr.Dataset, init: str, optimizers: list[str]) -> str | None:
    """The optimizer of ``optimizers`` with the least validation median at its rate."""
    best, best_v = None, math.inf
    for opt in optimizers:
        v = _validation_median(ds, init, opt)
        if v < best_v:
            best, best_v = opt, v
    return best


def versus(path: Path, other: Path, budget: int, init: str = "maml",
           other_init: str | None = None) -> dict:
    """``init`` of ``path`` against ``other_init`` (default ``init``) of ``other`` on the
    same test tasks, each at its validation-chosen optimizer: validation medians, test
    medians and the paired bootstrap ratio (path over other)."""
    a_ds, b_ds = (xr.open_dataset(f, engine="h5netcdf").load() for f in (path, other))
    if not (np.array_equal(a_ds["task"].values, b_ds["task"].values) and (
            "params" not in a_ds or np.array_equal(a_ds["params"].values,
                                                   b_ds["params"].values))):
        raise SystemExit(f"{path} and {other} were not evaluated on the same test tasks")
    out: dict = {}
    tests = []
    for key, ds, name in (("a", a_ds, init), ("b", b_ds, other_init or init)):
        opts = [str(o) for o in ds["optimizer"].values if o != "learned"]
        opt = chosen(ds, name, opts)
        if opt is None:
            raise SystemExit(f"{key}: no validation-chosen optimizer for {name!r}")
        b = _budget(ds, budget)
        t = ds["query_mse"].sel(budget=b, init=name, optimizer=opt).values
        tests.append(t)
        out[key] = {"init": name, "optimizer": opt, "budget": b,
                    "validation": _validation_median(ds, name, opt),
                    "median": float(np.median(failures_as_inf(t)))}
    out["ratio"] = bootstrap_ratio(tests[0], tests[1])
    return out


def rows(path: Path, budget: int) -> list[dict]:
    ds = xr.open_dataset(path, engine="h5netcdf").load()
    opts = [str(o) for o in ds["optimizer"].values if o != "learned"]
    data = [o for o in opts if not o.endswith("+physics")]
    phys = [o for o in opts if o.endswith("+physics")]
    b = _budget(ds, budget)
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
               "median": float(np.median(failures_as_inf(a)))}
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
    ap.add_argument("--versus", type=Path, default=None,
                    help="another run's evaluation of the same test tasks: compare the "
                         "inits named by --init and --versus-init")
    ap.add_argument("--init", default="maml", help="the init of FILES for --versus")
    ap.add_argument("--versus-init", default=None,
                    help="the init of the --versus file (default: --init)")
    args = ap.parse_args()
    if args.versus is not None:
        for f in args.files:
            v = versus(f, args.versus, args.budget, args.init, args.versus_init)
            print(f"| file | init | optimizer (chosen on validation) | validation median | "
                  f"test median (budget {v['a']['budget']}) |\n|---|---|---|---|---|")
            for key, name in (("a", f), ("b", args.versus)):
                c = v[key]
                print(f"| {name} | {c['init']} | {c['optimizer']} | {c['validation']:.3g} | "
                      f"{c['median']:.3g} |")
            print(f"\ntest ratio {f.stem} / {args.versus.stem}: {fmt(v['ratio'])}\n")
        return
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
    b = _budget(ds, budget)
    lines = [f"{ds.attrs['family']} / {path.stem}: median query MSE after {b} steps "
             f"(diverged tasks), {ds.sizes['task']} tasks", "",
             "| init | " + " | ".join(opts) + " |", "|---|" + "---|" * len(opts)]
    for init in ds["init"].values:
        cells = []
        for opt in opts:
            a = ds["query_mse"].sel(budget=b, init=init, optimizer=opt).values
            n = int(np.isnan(a).sum())
            med = float(np.median(failures_as_inf(a)))
            cells.append(f"{med:.3g}" + (f" ({n})" if n else ""))
        lines.append(f"| {init} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
