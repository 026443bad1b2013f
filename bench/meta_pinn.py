"""Meta-learned PINN initialisation on a 1D family (docs/meta-pinn.md).

``--family burgers`` (default): u_t + u u_x = ν u_xx on [−1, 1] × [0, 1],
u(0, x) = −sin(πx), u(±1, t) = 0 (regime ``classic``, ν bounds overridden).
``--family allen_cahn``: u_t = λ_AC (ε² u_xx + u − u³), λ_AC = 1, u(0, x) = x² cos(πx),
periodic on [−1, 1) (a box regime over ε with the family's ``x2cos`` rule). A network
(t, x) -> u adapts to an unseen parameter with Adam on

    L = MSE(IC[/BC] points [+ 10 interior data points]) + λ · mean (residual / s)²
        [+ periodic term: mean of squared jumps of u and u_x between x = −1 and x = 1]

from four inits: ``maml`` (MAML, that loss in the inner loop, interior query data of
training parameters in the outer loss), ``random``, ``joint`` (one network fitted to
the training tasks' data) and ``conditioned`` (a network of (t, x, parameters) fitted
jointly; its step 0 is its zero-shot prediction). Measured: the relative L2 error over
the solver's whole (t, x) grid (101 × 1024) at a few step counts, and the steps to
reach 1e-2 (checked every 10 steps on an x-subsampled grid).

Splits (``_pinn_common.SETUPS``): burgers ν: train [0.1, 1] minus the interpolation
band, validation [0.07, 0.1) (chooses λ), test-extrapolate [0.04, 0.07),
test-interpolate [0.2, 0.3) (excluded from training); allen_cahn ε: train [0.1, 0.5]
minus [0.2, 0.3), validation [0.07, 0.1), extrapolate [0.05, 0.07), interpolate
[0.2, 0.3).

    OMP_NUM_THREADS=1 python bench/meta_pinn.py --out results/meta_pinn          # full
    OMP_NUM_THREADS=1 python bench/meta_pinn.py --smoke --out /tmp/meta_pinn     # < 60 s
    OMP_NUM_THREADS=1 python bench/meta_pinn.py --family allen_cahn --out /tmp/mp_ac
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from _pinn_common import (
    FULL,
    INITS,
    SETTINGS,
    SETUPS,
    SMOKE,
    THRESHOLD,
    Evaluator,
    Problem,
    build_model,
    make_store,
    rate_grid,
)
from _pinn_output import write_outputs
from _pinn_train import run_init, run_two, train_joint, train_maml

from scimeta.data import TaskReader
from scimeta.train.conditioned import param_box
from scimeta.train.pinn import steps_to_threshold
from scimeta.train.setup import derivative_scale


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--family", default="burgers", choices=sorted(SETUPS))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, whole pipeline (< 60 s)")
    ap.add_argument("--seed", type=int, default=0, help="base seed (stores, models, draws)")
    ap.add_argument("--splits", default="extrapolate,interpolate")
    ap.add_argument("--test-tasks", type=int, default=None,
                    help="tasks per test split (default 8; smoke 2)")
    ap.add_argument("--weights", default=None,
                    help="λ grid, comma-separated (default 0.1,1,10; smoke 1)")
    ap.add_argument("--adapt-lr", type=float, default=None,
                    help="Adam rate of test-time adaptation (default 1e-3)")
    ap.add_argument("--adapt-lrs", default=None,
                    help="Adam rates, comma-separated, chosen on validation together with "
                         "λ per init and setting (default: --adapt-lr alone)")
    ap.add_argument("--no-slope-bc", action="store_true",
                    help="periodic families: boundary term on the jump of u only")
    args = ap.parse_args(argv)
    setup = SETUPS[args.family]
    size = SMOKE if args.smoke else FULL
    if args.test_tasks is not None:
        size = dataclasses.replace(size, test_tasks=args.test_tasks)
    if args.weights is not None:
        size = dataclasses.replace(size, weights=tuple(float(w) for w in args.weights.split(",")))
    if args.adapt_lr is not None:
        size = dataclasses.replace(size, adapt_lr=args.adapt_lr)
    if args.adapt_lrs is not None:
        try:
            rates = tuple(float(r) for r in args.adapt_lrs.split(","))
        except ValueError:
            rates = ()
        if not rates or not all(np.isfinite(r) and r > 0 for r in rates):
            ap.error(f"--adapt-lrs {args.adapt_lrs!r}: give positive rates, e.g. 3e-4,1e-3")
        size = dataclasses.replace(size, rates=rates)
    splits = [s for s in args.splits.split(",") if s]
    for s in splits:
        if s not in setup.splits:
            ap.error(f"unknown split {s!r}; choose from {', '.join(setup.splits)}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    seed = args.seed
    walls: dict[str, float] = {}
    t_all = time.perf_counter()

    # ---- stores ---------------------------------------------------------------
    t0 = time.perf_counter()
    stores = {"train": make_store(setup, out / "train.h5", setup.train, size.train_tasks, seed,
                                  size.train_query),
              "val": make_store(setup, out / "val.h5", setup.val, size.val_tasks, seed + 1, 10)}
    for i, s in enumerate(splits):
        stores[s] = make_store(setup, out / f"test-{s}.h5", setup.splits[s], size.test_tasks,
                               seed + 2 + i, 10)
    readers = {k: TaskReader(p, in_memory=True) for k, p in stores.items()}
    walls["stores_s"] = time.perf_counter() - t0
    train = readers["train"]
    col = setup.column
    p_train = train.params[:, col]
    # the interpolation band is held out of training whichever splits are tested, so
    # that `--splits extrapolate` trains the same inits as the full run
    held = np.zeros(len(train), dtype=bool)
    if "interpolate" in setup.splits:
        lo, hi = setup.splits["interpolate"]
        held |= (p_train >= lo) & (p_train < hi)
    train_idx = np.flatnonzero(~held)
    scale = derivative_scale(train)
    box = param_box(train)
    problem = Problem(setup, size, slope=not args.no_slope_bc)
    print(f"stores {walls['stores_s']:.1f} s; {len(train_idx)} training tasks "
          f"({int(held.sum())} held out for interpolation), dydt scale {scale[0]:.3f}",
          flush=True)

    # ---- training -------------------------------------------------------------
    rng = np.random.default_rng(seed)
    inits: dict[str, dict[str, torch.Tensor]] = {}
    xbox = setup.box
    models = {"maml": build_model(0, size.hidden, seed, xbox),
              "random": build_model(0, size.hidden, seed, xbox),
              "joint": build_model(0, size.hidden, seed, xbox),
              "conditioned": build_model(setup.n_params, size.hidden, seed, xbox)}
    train_loss: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    inits["maml"], train_loss["maml"] = train_maml(models["maml"], train, train_idx, size, scale,
                                                   problem, rng)
    walls["train_maml_s"] = time.perf_counter() - t0
    inits["random"] = {k: v.detach().clone() for k, v in models["random"].named_parameters()}
    t0 = time.perf_counter()
    inits["joint"], train_loss["joint"] = train_joint(models["joint"], train, train_idx, size,
                                                      rng, None)
    walls["train_joint_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    inits["conditioned"], train_loss["conditioned"] = train_joint(
        models["conditioned"], train, train_idx, size, rng, box)
    walls["train_conditioned_s"] = time.perf_counter() - t0
    for k, v in train_loss.items():
        print(f"train {k}: loss {np.mean(v[:5]):.3g} -> {np.mean(v[-5:]):.3g} "
              f"({len(v)} iterations)", flush=True)

    # ---- λ and the Adam rate on validation ------------------------------------
    t0 = time.perf_counter()
    val = readers["val"]
    vtasks = list(range(len(val)))
    rates = rate_grid(size)
    chosen = np.zeros((len(INITS), len(SETTINGS)))
    chosen_rate = np.zeros((len(INITS), len(SETTINGS)))
    val_err = np.full((len(INITS), len(SETTINGS), len(size.weights), len(rates), len(vtasks)),
                      np.nan)
    for a, init in enumerate(INITS):
        for b, setting in enumerate(SETTINGS):
            n_data = 0 if setting == "zero-data" else 10
            for c, w in enumerate(size.weights):
                for d, r in enumerate(rates):
                    err = run_init(init, inits[init], models[init], val, vtasks, n_data, w,
                                   size, scale, problem, seed + 100, box, [size.val_steps],
                                   size.check_stride, r)
                    val_err[a, b, c, d] = err[-1]
            # a diverged task counts as infinitely bad; ties go to the first (λ, rate)
            med = np.median(np.where(np.isfinite(val_err[a, b]), val_err[a, b], np.inf), -1)
            c, d = np.unravel_index(int(np.argmin(med)), med.shape)
            chosen[a, b], chosen_rate[a, b] = size.weights[c], rates[d]
            print(f"val {init} {setting}: median rel L2 @{size.val_steps} per (λ, rate) "
                  f"{np.round(med, 4).tolist()} -> λ = {chosen[a, b]}, "
                  f"rate = {chosen_rate[a, b]:g}", flush=True)
    walls["validation_s"] = time.perf_counter() - t0

    # ---- test -----------------------------------------------------------------
    steps = max(size.budgets)
    checks = list(range(0, steps + 1, size.check_every))
    n_task = size.test_tasks
    rel = np.full((len(splits), len(INITS), len(SETTINGS), len(size.budgets), n_task), np.nan)
    reach = np.full((len(splits), len(INITS), len(SETTINGS), n_task), np.nan)
    values = np.full((len(splits), n_task), np.nan)
    t0 = time.perf_counter()
    for s, split in enumerate(splits):
        rd = readers[split]
        tasks = list(range(len(rd)))
        values[s, :len(tasks)] = rd.params[:, col]
        for a, init in enumerate(INITS):
            for b, setting in enumerate(SETTINGS):
                n_data = 0 if setting == "zero-data" else 10
                record = sorted(set(size.budgets) | set(checks))
                t1 = time.perf_counter()
                # full grid at the budgets, subsampled grid every check_every steps:
                # one adaptation, two evaluators
                full = Evaluator(models[init], rd, tasks, size.eval_stride, None)
                coarse = Evaluator(models[init], rd, tasks, size.check_stride, None)
                fine, coarse_err = run_two(init, inits[init], models[init], rd, tasks, n_data,
                                           float(chosen[a, b]), size, scale, problem,
                                           seed + 200 + s, box, record, full, coarse,
                                           float(chosen_rate[a, b]))
                fine_rows = [record.index(k) for k in size.budgets]
                rel[s, a, b, :, :len(tasks)] = fine[fine_rows]
                check_rows = [record.index(k) for k in checks]
                reach[s, a, b, :len(tasks)] = steps_to_threshold(coarse_err[check_rows], checks,
                                                                 THRESHOLD)
                print(f"test {split} {init} {setting}: median rel L2 "
                      f"{np.round(np.nanmedian(rel[s, a, b], -1), 4).tolist()} "
                      f"({time.perf_counter() - t1:.0f} s)", flush=True)
    walls["test_s"] = time.perf_counter() - t0
    walls["total_s"] = time.perf_counter() - t_all

    # ---- outputs --------------------------------------------------------------
    write_outputs(out, args, setup, size, splits, rel, reach, values, chosen, chosen_rate,
                  val_err, walls,
                  seed, train_loss, len(train_idx))
    print(f"wrote {out}/meta_pinn.nc, table.md, meta_pinn.png in {walls['total_s']:.0f} s",
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
