"""Burgers tasks by Reynolds number: how far outside the training range a task really is.

    python bench/burgers_reynolds.py TRAIN.h5 STORE.h5 [STORE.h5 ...] [--per-task CSV]
        [--versus STORE.h5 EVAL.nc ...]

Burgers' scaling symmetry (a u(a t, x) solves u_t + u u_x = ν u_xx at viscosity a ν from
a u0; tests/test_burgers_autodecoder.py checks it on the family's solver) makes a task
at (ν, u0) the task at (ν / a, u0 / a) seen over the shorter window a t: of ν and the
initial amplitude, only the Reynolds number Re = max|u0| / ν (per metre of the domain)
is left, beside the shape of u0: a task at a viscosity outside the training box is a
task of the training family seen differently whenever its Re lies inside the training
tasks' Re range.

Prints the quantiles of Re in each store beside the training store's, the share of
each store's tasks above the training store's 90th percentile and largest Re, and,
with ``--per-task`` (a CSV written by ``bench/burgers_autodecoder.py --per-task``),
the median of every row of that probe for all of a store's tasks, those at or below
the training store's 90th-percentile Re and those above it, and (for a ``--finetune``
probe) the adapted decoder's ratio to its random-weight twin with a bootstrap interval;
``--versus STORE EVAL.nc`` pairs it with the package's inits evaluated on the same store.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict

import numpy as np
import xarray as xr
from new_regimes import _budget, chosen  # this folder's script: the same choice rule

from scimeta.data import TaskReader
from scimeta.train.selection import bootstrap_ratio, failures_as_inf

ADAPTED = "support: code (λ = 0), then code + weights, λ = 1"
RANDOM = "random decoder weights, code + weights, λ = 1"


def reynolds(reader: TaskReader) -> np.ndarray:
    """max_x |u(0, x)| / ν of every task, ``[n]`` (m/s over m²/s, i.e. per metre)."""
    amp = np.array([np.abs(reader.fields(i)[0, :, 0]).max() for i in range(len(reader))])
    return amp / reader.params[: len(reader), 0]


def versus_package(rows: list[dict], store: str, path: str, q90: float,
                   budget: int = 50) -> None:
    """Print the adapted decoder's ratio to each init of the evaluation file ``path``
    (at its validation-chosen optimizer, ``budget`` steps), paired over the tasks of
    ``store``, over all of them and per Reynolds group."""
    mine = sorted((r for r in rows if r["store"] == store), key=lambda r: int(r["task"]))
    ds = xr.open_dataset(path, engine="h5netcdf").load()
    n = len(mine)
    if n == 0 or n > ds.sizes["task"]:
        raise SystemExit(f"--versus {store} {path}: {n} CSV tasks of {store!r}, "
                         f"{ds.sizes['task']} in the evaluation")
    nu_eval = ds["params"].values[:n, 0]
    if not np.allclose(nu_eval, [float(r["nu"]) for r in mine], rtol=1e-6):
        raise SystemExit(f"--versus {store} {path}: the tasks' ν differ; not the same store")
    adapted = np.array([float(r[ADAPTED]) for r in mine])
    re = np.array([float(r["reynolds"]) for r in mine])
    opts = [str(o) for o in ds["optimizer"].values if o != "learned"]
    b = _budget(ds, budget)
    print(f"\nadapted decoder / the package's inits on {store} ({path}; {b} steps, each "
          "init at its validation-chosen optimizer; paired, 95 % bootstrap interval)\n")
    print(f"| init | optimizer | median | ratio, all ({n}) | Re ≤ {q90:.0f} "
          f"({int((re <= q90).sum())}) | Re > {q90:.0f} ({int((re > q90).sum())}) |")
    print("|---|---|---|---|---|---|")
    for init in (str(i) for i in ds["init"].values):
        opt = chosen(ds, init, opts)
        if opt is None:
            continue
        ref = ds["query_mse"].sel(budget=b, init=init, optimizer=opt).values[:n]
        cells = []
        for mask in (np.ones(n, bool), re <= q90, re > q90):
            if mask.any():
                r = bootstrap_ratio(adapted[mask], ref[mask])
                cells.append(f"{r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]")
            else:
                cells.append("—")
        print(f"| {init} | {opt} | {np.median(failures_as_inf(ref)):.3f} | "
              + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("train")
    ap.add_argument("stores", nargs="+")
    ap.add_argument("--per-task", metavar="CSV", default=None,
                    help="a CSV from bench/burgers_autodecoder.py --per-task")
    ap.add_argument("--versus", nargs=2, action="append", default=[],
                    metavar=("STORE", "EVAL.nc"),
                    help="with --per-task: pair the CSV's tasks of STORE (its file name) "
                         "with the package's inits in a `scimeta evaluate` file of the "
                         "same store, each at its validation-chosen optimizer (repeatable)")
    args = ap.parse_args()
    if args.versus and not args.per_task:
        ap.error("--versus needs --per-task (the decoder's per-task errors)")
    train = TaskReader(args.train, in_memory=True)
    re_train = reynolds(train)
    q90, top = float(np.quantile(re_train, 0.9)), float(re_train.max())
    qs = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
    print("| store | tasks | Re: min | 25 % | median | 75 % | 90 % | max "
          f"| share above the training 90 % ({q90:.0f}) | above its max ({top:.0f}) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in (args.train, *args.stores):
        re = re_train if path == args.train else reynolds(TaskReader(path, in_memory=True))
        cells = " | ".join(f"{v:.1f}" for v in np.quantile(re, qs))
        print(f"| {path} | {len(re)} | {cells} | {np.mean(re > q90):.0%} "
              f"| {np.mean(re > top):.0%} |")
    if args.per_task:
        groups: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(
            lambda: defaultdict(list))
        with open(args.per_task, newline="") as fh:
            rows = list(csv.DictReader(fh))
        labels = [k for k in rows[0] if k not in ("store", "task", "nu", "reynolds")]
        for row in rows:
            re = float(row["reynolds"])
            side = f"Re ≤ {q90:.0f}" if re <= q90 else f"Re > {q90:.0f}"
            for key in ((row["store"], side), (row["store"], "all")):
                for label in labels:
                    groups[key][label].append(float(row[label]))
        keys = sorted(groups)
        print("\nmedian query MSE (units of the spread²) by Reynolds number; tasks per cell "
              "in the header\n")
        print("| row | " + " | ".join(f"{s}, {side} ({len(groups[(s, side)][labels[0]])})"
                                      for s, side in keys) + " |")
        print("|---|" + "---|" * len(keys))
        for label in labels:
            print(f"| {label} | " + " | ".join(
                f"{np.median(groups[k][label]):.3f}" for k in keys) + " |")
        if ADAPTED in labels and RANDOM in labels:
            print("\nadapted decoder / its random-weight twin (ratio of medians, 95 % "
                  "bootstrap interval over tasks)\n")
            print("| store, tasks | ratio |\n|---|---|")
            for k in keys:
                r = bootstrap_ratio(np.array(groups[k][ADAPTED]), np.array(groups[k][RANDOM]))
                print(f"| {k[0]}, {k[1]} | {r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}] |")
        for store, path in args.versus:
            versus_package(rows, store, path, q90)


if __name__ == "__main__":
    main()
