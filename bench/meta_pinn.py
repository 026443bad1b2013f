"""Meta-learned PINN initialisation on the classic Burgers problem (docs/meta-pinn.md).

u_t + u u_x = ν u_xx on [−1, 1] × [0, 1], u(0, x) = −sin(πx), u(±1, t) = 0 (family
``burgers``, regime ``classic`` with ν bounds overridden). A network (t, x) -> u adapts
to an unseen ν with Adam on

    L = MSE(IC/BC points [+ 10 interior data points]) + λ · mean (residual / s)²

from four inits: ``maml`` (MAML, IC/BC support + λ·residual in the inner loop, interior
query data of training ν in the outer loss), ``random``, ``joint`` (one network fitted
to the training tasks' data) and ``conditioned`` (a network of (t, x, ν) fitted jointly;
its step 0 is its zero-shot prediction). Measured: the relative L2 error over the
solver's whole (t, x) grid (101 × 1024) at a few step counts, and the steps to reach
1e-2 (checked every ``--check-every`` steps on an x-subsampled grid).

Splits of ν: train [0.1, 1] (log-uniform) minus the interpolation band; validation
[0.07, 0.1) (chooses λ); test-extrapolate [0.04, 0.07); test-interpolate [0.2, 0.3)
(excluded from training).

    OMP_NUM_THREADS=1 python bench/meta_pinn.py --out results/meta_pinn          # full
    OMP_NUM_THREADS=1 python bench/meta_pinn.py --smoke --out /tmp/meta_pinn     # < 60 s
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scimeta.batch import TaskBatch
from scimeta.data import GenerationConfig, TaskReader, generate, validate
from scimeta.meta import MAML, Conditioned, Joint, PhysicsLoss
from scimeta.nn import CoordinateMLP, Rescaled
from scimeta.train.conditioned import condition_batch, param_box
from scimeta.train.pinn import (
    adapt_pinn,
    ic_bc_support,
    pinn_batch,
    relative_l2,
    steps_to_threshold,
    uniform_collocation,
)
from scimeta.train.setup import derivative_scale

FAMILY = "burgers"
INITS = ("maml", "random", "joint", "conditioned")
SETTINGS = ("zero-data", "10-points")
THRESHOLD = 1e-2
BOX = ((0.0, 1.0), (-1.0, 1.0))  # (t, x)


@dataclasses.dataclass(frozen=True)
class Size:
    """Every size of one run (``--smoke`` or full)."""

    train_tasks: int = 96
    val_tasks: int = 4
    test_tasks: int = 8
    train_query: int = 400
    n_ic: int = 64
    n_bc: int = 32
    train_colloc: int = 512
    test_colloc: int = 1024
    meta_iters: int = 600
    meta_batch: int = 4
    inner_steps: int = 3
    inner_lr: float = 0.01
    meta_weight: float = 1.0
    meta_lr: float = 1e-3
    joint_iters: int = 3000
    joint_batch: int = 8
    adapt_lr: float = 1e-3
    budgets: tuple[int, ...] = (0, 10, 50, 100, 200, 500)
    val_steps: int = 200
    weights: tuple[float, ...] = (0.1, 1.0, 10.0)
    check_every: int = 10
    check_stride: int = 8
    eval_stride: int = 1
    hidden: tuple[int, ...] = (64, 64, 64)


FULL = Size()
SMOKE = Size(train_tasks=8, val_tasks=2, test_tasks=2, train_query=50, n_ic=16, n_bc=8,
             train_colloc=32, test_colloc=64, meta_iters=4, meta_batch=2, inner_steps=1,
             joint_iters=10, joint_batch=4, budgets=(0, 5, 10), val_steps=5, weights=(1.0,),
             check_every=5, check_stride=16, eval_stride=8, hidden=(16, 16))

SPLITS = {"extrapolate": (0.04, 0.07), "interpolate": (0.2, 0.3)}
TRAIN_NU = (0.1, 1.0)
VAL_NU = (0.07, 0.1)


def make_store(path: Path, nu: tuple[float, float], tasks: int, seed: int, query: int) -> Path:
    """Generate (or reuse) a classic-Burgers store with ν in ``nu`` and validate it."""
    cfg = GenerationConfig(FAMILY, "classic", tasks=tasks, seed=seed, support=10, query=query,
                           bounds=(("nu", nu[0], nu[1]),))
    generate(cfg, path, overwrite=True)
    problems = validate(path)
    if problems:
        raise SystemExit(f"{path}: store failed validation: {problems}")
    reader = TaskReader(path, in_memory=True)
    reader.check_data()
    return path


def build_model(extra: int, hidden: Sequence[int], seed: int) -> nn.Module:
    """MLP (t, x[, ν̃]) -> u, tanh, inputs mapped to [−1, 1] by a fixed affine map."""
    torch.manual_seed(seed)
    net = CoordinateMLP(2 + extra, 1, hidden=tuple(hidden), activation="tanh")
    lo = [BOX[0][0], BOX[1][0], *[-1.0] * extra]
    hi = [BOX[0][1], BOX[1][1], *[1.0] * extra]
    return Rescaled(net, lo, hi, [0.0], [1.0])


def grid_inputs(time_: np.ndarray, x: np.ndarray, stride: int) -> tuple[torch.Tensor, np.ndarray]:
    """Inputs ``[T * X', 2]`` of the (t, x[::stride]) grid and the x indices."""
    xi = np.arange(0, len(x), stride)
    tt, xx = np.meshgrid(time_, x[xi], indexing="ij")
    return torch.as_tensor(np.stack([tt.ravel(), xx.ravel()], 1), dtype=torch.float32), xi


class Evaluator:
    """Relative L2 of batched adapted parameters over a grid of the tasks' reference fields."""

    def __init__(self, model: nn.Module, reader: TaskReader, tasks: Sequence[int], stride: int,
                 cond: torch.Tensor | None) -> None:
        x, xi = grid_inputs(reader.meta.time, reader.meta.space[0], stride)
        self.x = x
        self.ref = torch.stack([torch.as_tensor(reader.fields(i)[:, xi, :].reshape(-1, 1),
                                                dtype=torch.float32) for i in tasks])
        self.model = model
        self.cond = cond  # [B, 1] scaled ν for the conditioned network, or None

    def inputs(self, i: int, part: slice) -> torch.Tensor:
        x = self.x[part]
        if self.cond is None:
            return x
        return torch.cat([x, self.cond[i].expand(len(x), -1)], 1)

    def __call__(self, fast: dict[str, torch.Tensor]) -> torch.Tensor:
        out = []
        chunk = 32768
        for i in range(self.ref.shape[0]):
            p = {n: v[i] for n, v in fast.items()}
            preds = [torch.func.functional_call(self.model, p,
                                                (self.inputs(i, slice(s, s + chunk)),))
                     for s in range(0, len(self.x), chunk)]
            out.append(relative_l2(torch.cat(preds), self.ref[i]))
        return torch.stack(out)


def train_maml(model: nn.Module, reader: TaskReader, train_idx: np.ndarray, size: Size,
               scale: list[float], ic_bc: tuple[torch.Tensor, torch.Tensor],
               rng: np.random.Generator) -> tuple[dict[str, torch.Tensor], list[float]]:
    """MAML: inner = IC/BC MSE + λ·residual (SGD), outer = interior query MSE."""
    phys = PhysicsLoss(FAMILY, size.meta_weight, "inner", scale=scale)
    maml = MAML(model, inner_lr=size.inner_lr, inner_steps=size.inner_steps, physics=phys)
    params = maml.init_params()
    opt = torch.optim.Adam(params.values(), lr=size.meta_lr)
    losses = []
    for _ in range(size.meta_iters):
        idx = rng.choice(train_idx, size=size.meta_batch, replace=False)
        cx = uniform_collocation(rng, size.meta_batch, size.train_colloc, BOX)
        batch = pinn_batch(reader.batch(idx), ic_bc, 0, cx)
        loss, grads = maml.meta_gradient(params, batch)
        if not bool(torch.isfinite(loss)):
            continue
        for k, g in grads.items():
            params[k].grad = g
        torch.nn.utils.clip_grad_norm_(list(params.values()), 10.0)
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    return {k: v.detach() for k, v in params.items()}, losses


def train_joint(model: nn.Module, reader: TaskReader, train_idx: np.ndarray, size: Size,
                rng: np.random.Generator, box: tuple[list[float], list[float]] | None
                ) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Joint (box None) or conditioned (box = training ν box): pooled data MSE, Adam."""
    learner = (Joint if box is None else Conditioned)(model, inner_lr=0.01, inner_steps=1)
    params = learner.init_params()
    opt = torch.optim.Adam(params.values(), lr=size.meta_lr)
    losses = []
    for _ in range(size.joint_iters):
        idx = rng.choice(train_idx, size=min(size.joint_batch, len(train_idx)), replace=False)
        batch = reader.batch(idx)
        if box is not None:
            batch = condition_batch(batch, *box)
        loss = learner.meta_loss(params, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    return {k: v.detach() for k, v in params.items()}, losses


def run_init(init: str, params: dict[str, torch.Tensor], model: nn.Module, reader: TaskReader,
             tasks: Sequence[int], n_data: int, weight: float, size: Size, scale: list[float],
             ic_bc: tuple[torch.Tensor, torch.Tensor], colloc_seed: int,
             box: tuple[list[float], list[float]], record: Sequence[int],
             stride: int) -> np.ndarray:
    """Adapt ``init`` on ``tasks`` of ``reader``; relative L2 ``[len(record), B]``."""
    extra = 1 if init == "conditioned" else 0
    phys = PhysicsLoss(FAMILY, weight, "inner", scale=scale, extra_inputs=extra)
    learner = MAML(model, inner_lr=0.01, inner_steps=1, physics=phys)
    cx = uniform_collocation(np.random.default_rng(colloc_seed), len(tasks), size.test_colloc, BOX)
    batch = pinn_batch(reader.batch(list(tasks)), ic_bc, n_data, cx)
    cond = None
    if extra:
        batch = condition_batch(batch, *box)
        cond = batch.support_x[:, 0, 2:]
    ev = Evaluator(model, reader, tasks, stride, cond)
    err, _ = adapt_pinn(learner, params, batch, size.adapt_lr, max(record), record, ev)
    return err.numpy()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, whole pipeline (< 60 s)")
    ap.add_argument("--seed", type=int, default=0, help="base seed (stores, models, draws)")
    ap.add_argument("--splits", default="extrapolate,interpolate")
    args = ap.parse_args(argv)
    size = SMOKE if args.smoke else FULL
    splits = [s for s in args.splits.split(",") if s]
    for s in splits:
        if s not in SPLITS:
            ap.error(f"unknown split {s!r}; choose from {', '.join(SPLITS)}")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    seed = args.seed
    walls: dict[str, float] = {}
    t_all = time.perf_counter()

    # ---- stores ---------------------------------------------------------------
    t0 = time.perf_counter()
    stores = {"train": make_store(out / "train.h5", TRAIN_NU, size.train_tasks, seed,
                                  size.train_query),
              "val": make_store(out / "val.h5", VAL_NU, size.val_tasks, seed + 1, 10)}
    for i, s in enumerate(splits):
        stores[s] = make_store(out / f"test-{s}.h5", SPLITS[s], size.test_tasks, seed + 2 + i, 10)
    readers = {k: TaskReader(p, in_memory=True) for k, p in stores.items()}
    walls["stores_s"] = time.perf_counter() - t0
    train = readers["train"]
    nu_train = train.params[:, 0]
    held = np.zeros(len(train), dtype=bool)
    for s in splits:
        if s == "interpolate":
            lo, hi = SPLITS[s]
            held |= (nu_train >= lo) & (nu_train < hi)
    train_idx = np.flatnonzero(~held)
    scale = derivative_scale(train)
    box = param_box(train)
    ic_bc = ic_bc_support(size.n_ic, size.n_bc)
    print(f"stores {walls['stores_s']:.1f} s; {len(train_idx)} training tasks "
          f"({int(held.sum())} held out for interpolation), dydt scale {scale[0]:.3f}",
          flush=True)

    # ---- training -------------------------------------------------------------
    rng = np.random.default_rng(seed)
    inits: dict[str, dict[str, torch.Tensor]] = {}
    models = {"maml": build_model(0, size.hidden, seed),
              "random": build_model(0, size.hidden, seed),
              "joint": build_model(0, size.hidden, seed),
              "conditioned": build_model(1, size.hidden, seed)}
    train_loss: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    inits["maml"], train_loss["maml"] = train_maml(models["maml"], train, train_idx, size, scale,
                                                   ic_bc, rng)
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

    # ---- λ on validation ------------------------------------------------------
    t0 = time.perf_counter()
    val = readers["val"]
    vtasks = list(range(len(val)))
    chosen = np.zeros((len(INITS), len(SETTINGS)))
    val_err = np.full((len(INITS), len(SETTINGS), len(size.weights), len(vtasks)), np.nan)
    for a, init in enumerate(INITS):
        for b, setting in enumerate(SETTINGS):
            n_data = 0 if setting == "zero-data" else 10
            for c, w in enumerate(size.weights):
                err = run_init(init, inits[init], models[init], val, vtasks, n_data, w, size,
                               scale, ic_bc, seed + 100, box, [size.val_steps], size.check_stride)
                val_err[a, b, c] = err[-1]
            med = np.nanmedian(np.where(np.isfinite(val_err[a, b]), val_err[a, b], np.inf), -1)
            chosen[a, b] = size.weights[int(np.argmin(med))]
            print(f"val {init} {setting}: median rel L2 @{size.val_steps} per λ "
                  f"{dict(zip(size.weights, np.round(med, 4).tolist(), strict=True))} "
                  f"-> λ = {chosen[a, b]}", flush=True)
    walls["validation_s"] = time.perf_counter() - t0

    # ---- test -----------------------------------------------------------------
    steps = max(size.budgets)
    checks = list(range(0, steps + 1, size.check_every))
    n_task = size.test_tasks
    rel = np.full((len(splits), len(INITS), len(SETTINGS), len(size.budgets), n_task), np.nan)
    reach = np.full((len(splits), len(INITS), len(SETTINGS), n_task), np.nan)
    nus = np.full((len(splits), n_task), np.nan)
    t0 = time.perf_counter()
    for s, split in enumerate(splits):
        rd = readers[split]
        tasks = list(range(len(rd)))
        nus[s, :len(tasks)] = rd.params[:, 0]
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
                              float(chosen[a, b]), size, scale, ic_bc, seed + 200 + s, box,
                              record, full, coarse)
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
    write_outputs(out, args, size, splits, rel, reach, nus, chosen, val_err, walls, seed,
                  train_loss, len(train_idx))
    print(f"wrote {out}/meta_pinn.nc, table.md, meta_pinn.png in {walls['total_s']:.0f} s",
          flush=True)
    return 0


def run_two(init: str, params: dict[str, torch.Tensor], model: nn.Module, reader: TaskReader,
            tasks: Sequence[int], n_data: int, weight: float, size: Size, scale: list[float],
            ic_bc: tuple[torch.Tensor, torch.Tensor], colloc_seed: int,
            box: tuple[list[float], list[float]], record: Sequence[int],
            full: Evaluator, coarse: Evaluator) -> tuple[np.ndarray, np.ndarray]:
    """One adaptation; relative L2 on the full grid at the budgets and on the coarse grid
    at every recorded step: ``([R, B], [R, B])`` (full-grid rows off the budgets are NaN)."""
    extra = 1 if init == "conditioned" else 0
    phys = PhysicsLoss(FAMILY, weight, "inner", scale=scale, extra_inputs=extra)
    learner = MAML(model, inner_lr=0.01, inner_steps=1, physics=phys)
    cx = uniform_collocation(np.random.default_rng(colloc_seed), len(tasks), size.test_colloc, BOX)
    batch: TaskBatch = pinn_batch(reader.batch(list(tasks)), ic_bc, n_data, cx)
    if extra:
        batch = condition_batch(batch, *box)
        full.cond = coarse.cond = batch.support_x[:, 0, 2:]
    budgets = set(size.budgets)
    fine_rows: list[torch.Tensor] = []
    counter = iter(sorted(set(record)))

    def both(fast: dict[str, torch.Tensor]) -> torch.Tensor:
        k = next(counter)
        fine_rows.append(full(fast) if k in budgets
                         else torch.full((len(tasks),), float("nan")))
        return coarse(fast)

    err, _ = adapt_pinn(learner, params, batch, size.adapt_lr, max(record), record, both)
    return torch.stack(fine_rows).double().numpy(), err.numpy()


def hardware() -> dict[str, str]:
    return {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpu_count": str(os.cpu_count()), "torch": str(torch.__version__),
            "torch_threads": str(torch.get_num_threads()),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")}


def write_outputs(out: Path, args: argparse.Namespace, size: Size, splits: list[str],
                  rel: np.ndarray, reach: np.ndarray, nus: np.ndarray, chosen: np.ndarray,
                  val_err: np.ndarray, walls: dict[str, float], seed: int,
                  train_loss: dict[str, list[float]], n_train: int) -> None:
    import xarray as xr

    steps = max(size.budgets)
    ds = xr.Dataset(
        {"rel_l2": (("split", "init", "setting", "step", "task"), rel),
         "steps_to_1e-2": (("split", "init", "setting", "task"), reach),
         "nu": (("split", "task"), nus),
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
    (out / "table.md").write_text(markdown_table(ds, steps))
    plot(ds, out / "meta_pinn.png")


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def markdown_table(ds: Any, steps: int) -> str:
    """Median [IQR] relative L2 per step, and steps to 1e-2, per split, init, setting."""
    budgets = [int(s) for s in ds["step"].values]
    lines = []
    for split in ds["split"].values:
        nu = ds["nu"].sel(split=split).values
        lines += [f"### split `{split}` (ν ∈ [{np.nanmin(nu):.3g}, {np.nanmax(nu):.3g}], "
                  f"{int(np.isfinite(nu).sum())} tasks)", "",
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
    lines.append("Median [IQR] relative L2 over the test tasks; λ chosen on validation ν.")
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


if __name__ == "__main__":
    raise SystemExit(main())

