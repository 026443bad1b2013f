"""Calibration of the Laplace predictive on held-out regimes (the Bayesian-view target).

For oscillator (test-interpolate, test-extrapolate), lotka_volterra and burgers
(test-interpolate, test-extrapolate): generate the stores, meta-train a small MAML run
per family, then ``scimeta.bayes.posterior`` on each held-out store (K = 10 support
points, the run's 5 inner steps) and print per regime: coverage of the 90 % central
interval over the query points and the NLL of the Laplace predictive against the
adapted point estimate with one fitted noise level per channel.

Stores, runs and results go to ``--work`` and are reused when present (delete them to
start over). ``--quick``: fewer tasks and iterations (a few minutes on 2 cores).

    OMP_NUM_THREADS=1 python bench/calibration.py --work /tmp/cal
    OMP_NUM_THREADS=1 python bench/calibration.py --quick --work /tmp/cal-quick
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import xarray as xr

FULL = {"train_tasks": 300, "test_tasks": 100, "iterations": 300}
QUICK = {"train_tasks": 40, "test_tasks": 20, "iterations": 40}
#: family -> (short name, train regime, {label: (regime, parameter bounds)})
CELLS = {
    "oscillator": ("osc", "unforced-train", {
        "interp": ("unforced-test-interpolate", ()),
        "extrap": ("unforced-test-extrapolate", (("omega0", 3.0, 3.5),))}),
    "lotka_volterra": ("lv", "train", {"interp": ("test-interpolate", ()),
                                       "extrap": ("test-extrapolate", ())}),
    "burgers": ("bu", "train", {"interp": ("test-interpolate", ()),
                                "extrap": ("test-extrapolate", ())}),
}


def config(family: str, train: Path, iterations: int) -> dict:
    """The small run of each family: MLP (64, 64) tanh, MAML, 5 steps at 0.1."""
    return {
        "data": {"train": str(train)},
        "model": {"hidden": [64, 64], "activation": "tanh",
                  "normalize": "none" if family == "oscillator" else "both"},
        "meta": {"algorithm": "maml", "inner_lr": 0.1, "inner_steps": 5, "meta_batch": 10,
                 "baselines": []},
        "optim": {"lr": 1e-3, "iterations": iterations},
        "run": {"seed": 0, "checkpoint_every": 100, "validate_every": 100, "log_every": 50},
    }


def cell(work: Path, family: str, size: dict, structure: str) -> list[dict]:
    from scimeta.bayes import posterior
    from scimeta.data import GenerationConfig, generate
    from scimeta.runtime.config import from_dict
    from scimeta.train import TrainConfig, train

    short, train_regime, tests = CELLS[family]
    store = work / f"{short}-train.h5"
    if not store.exists():
        generate(GenerationConfig(family, train_regime, tasks=size["train_tasks"], seed=0,
                                  support=10, query=100), store)
    run = work / f"{short}-run"
    if not (run / "inits" / "maml.pt").exists():
        train(from_dict(TrainConfig, config(family, store, size["iterations"])), run,
              resume=(run / "run.json").exists())
    rows = []
    for k, (label, (regime, bounds)) in enumerate(tests.items()):
        path = work / f"{short}-{label}.h5"
        if not path.exists():
            generate(GenerationConfig(family, regime, tasks=size["test_tasks"],
                                      seed=(11 if family == "oscillator" else 1) + k,
                                      support=10, query=100, bounds=bounds), path)
        out = run / "posterior" / f"{short}-{label}.nc"
        t0 = time.perf_counter()
        if out.exists():
            ds = xr.load_dataset(out, engine="h5netcdf")
        else:
            ds = posterior(run, path, structure=structure, label=f"{short}-{label}")
        rows.append(row(f"{family} / {regime}", ds, time.perf_counter() - t0))
    return rows


def row(name: str, ds: xr.Dataset, seconds: float) -> dict:
    return {"regime": name, "tasks": ds.sizes["task"],
            "cov90": float(ds["coverage"].sel(level=0.9).mean()),
            "base_cov90": float(ds["base_coverage"].sel(level=0.9).mean()),
            "nll": float(ds["nll"].mean()), "base_nll": float(ds["base_nll"].mean()),
            "oracle_nll": float(ds["oracle_nll"].mean()),
            "crps": float(ds["crps"].mean()), "base_crps": float(ds["base_crps"].mean()),
            "seconds": seconds}


def table(rows: list[dict]) -> str:
    head = ("| regime | tasks | 90% cov. Laplace | 90% cov. point+noise | NLL Laplace | "
            "NLL point+noise | NLL point+oracle noise | CRPS Laplace | CRPS point+noise |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['regime']} | {r['tasks']} | {r['cov90']:.3f} | "
                     f"{r['base_cov90']:.3f} | {r['nll']:.4f} | {r['base_nll']:.4f} | "
                     f"{r['oracle_nll']:.4f} | {r['crps']:.4g} | {r['base_crps']:.4g} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="bench-calibration", help="folder of stores and runs")
    ap.add_argument("--quick", action="store_true", help="fewer tasks and iterations")
    ap.add_argument("--structure", default="kron", help="curvature structure")
    ap.add_argument("--families", default=",".join(CELLS),
                    help="comma-separated subset of " + ", ".join(CELLS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    size = QUICK if args.quick else FULL
    rows = []
    for family in args.families.split(","):
        rows += cell(work, family.strip(), size, args.structure)
    print(f"settings: {size}, K = 10 support and 100 query points per task, "
          f"structure {args.structure}")
    print(table(rows))


if __name__ == "__main__":
    main()
