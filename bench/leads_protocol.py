"""LEADS / CoDA new-environment forecasting on Lotka-Volterra, beside the published MSE.

Protocol (docs/protocols.md, "LEADS / CoDA new-environment forecasting"):

1. Build the standard stores ``datasets/lotka_volterra_leads`` (10 environments,
   1 training trajectory each, 32 test trajectories each) and
   ``datasets/lotka_volterra_coda`` (9 training environments x 4 trajectories; 4 new
   environments with 1 adaptation trajectory and 32 test trajectories each) under
   ``--out`` and validate them. scimeta's accurate solver (DOP853, tight tolerances);
   the error of the published solver (RK45, scipy defaults) on the test sets is
   measured and printed beside the results.
2. Train inits of a ``Forecaster(VectorFieldNet)`` (RK4 rollout): ``random``
   (untrained; per-environment training from scratch, LEADS's "One-Per-Env"),
   ``joint`` (one network fitted to every training trajectory, LEADS's
   "One-For-All"), ``maml`` (second-order MAML over environments: adapt on one
   trajectory, score the forecast of others; on the LEADS grid, whose environments
   hold one training trajectory, support = query) and ``context`` (the network takes
   a learned per-environment context vector as input, CAVIA/CoDA-style; a new
   environment fits its context only).
3. For each environment, fine-tune the init with Adam on the environment's support
   trajectories (its training trajectories in-domain, its one trajectory for a new
   environment), then forecast the environment's test trajectories from their initial
   states: full rollouts on t in [0, 10] (21 times), no teacher forcing. MSE over all
   times and both states, mean +- std over test trajectories (and over environments).

Usage::

    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/leads          # full
    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/leads --quick  # ~1/5
    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/leads --smoke  # pipeline

The full size takes about 11 min on a shared 2-core CPU (one thread). Seeds: network
init ``--seed`` (0), MAML batches rng 0, context init after ``--seed``; the stores'
seeds are those of the dataset configs.

Writes ``results.json`` and ``table.md`` under ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scimeta import problems
from scimeta.batch import TaskBatch
from scimeta.data import EnvironmentReader, generate
from scimeta.data import manifest as dataset_manifest
from scimeta.data.validate import validate
from scimeta.meta import MAML
from scimeta.nn import Forecaster, VectorFieldNet
from scimeta.train.forecast import fine_tune, forecast_mse

REPO = Path(__file__).resolve().parents[1]
#: LEADS repository README (github.com/yuan-yin/LEADS, "Results"), test MSE of LEADS
PUBLISHED = {"lotka_volterra": "1.16 ± 0.99 e-3", "gray_scott": "2.08 ± 2.88 e-3",
             "navier_stokes": "5.95 ± 3.65 e-3"}
SIZES = {  # hidden widths, RK4 substeps per interval, Adam steps: joint, context, MAML
    # meta-steps, fine-tuning per environment
    "full": dict(hidden=(64, 64, 64), substeps=1, joint=600, context=4500, maml=50,
                 tune=150),
    "quick": dict(hidden=(64, 64, 64), substeps=1, joint=120, context=900, maml=10,
                  tune=30),
    "smoke": dict(hidden=(16,), substeps=1, joint=5, context=5, maml=3, tune=3),
}


def build(name: str, out: Path, smoke: bool) -> dict[str, Path]:
    """Generate (or reuse) and validate every split of ``datasets/<name>`` under out."""
    cfg = dataset_manifest.load_config(REPO / "datasets" / name)
    paths = {}
    for split, gc in dataset_manifest.split_configs(cfg).items():
        if smoke and split in ("test", "adapt-test"):
            gc = dataclasses.replace(gc, tasks=gc.tasks // 16)  # 2 per environment
        path = out / "data" / name / f"{split}.h5"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            generate(gc, path)
        problems_found = validate(path)
        if problems_found:
            raise SystemExit(f"{path} failed validation: {problems_found}")
        paths[split] = path
    return paths


def published_solver_error(reader: EnvironmentReader, query_store: bool) -> float:
    """MSE between the stored (accurate) test trajectories and RK45 at scipy defaults."""
    fam = problems.get("lotka_volterra")
    t = reader.time.double().numpy()
    errs = []
    for e in range(len(reader)):
        traj = reader.trajectories(e, query_store=query_store).double().numpy()
        for y in traj:
            rk45 = fam.solve(reader.params[e], y[0], t, rtol=1e-3, atol=1e-6, method="RK45")
            errs.append(np.mean((rk45 - y) ** 2))
    return float(np.mean(errs))


class TrueField(torch.nn.Module):
    """The exact Lotka-Volterra field; ``p`` = (alpha, beta, delta, gamma)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(4))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return problems.get("lotka_volterra").rhs_torch(None, y, self.p)


def discretisation_floor(reader: EnvironmentReader, batch: TaskBatch, substeps: int) -> float:
    """Forecast MSE of the exact field under the model's RK4 steps (the model's floor)."""
    true = Forecaster(TrueField(), reader.time, substeps=substeps)
    p = {"field.p": torch.as_tensor(reader.params, dtype=reader.dtype)}
    return float(forecast_mse(true, p, batch.query_x, batch.query_y).mean())


class ContextField(torch.nn.Module):
    """``f(y, c)``: a VectorFieldNet with a learned context vector ``c`` as extra input.

    The CAVIA/CoDA-style baseline: the network is shared by the environments, each
    environment has its own ``c`` ``[context_dim]``; a new environment fits ``c`` only.
    """

    def __init__(self, state_dim: int, context_dim: int, hidden: tuple[int, ...],
                 activation: str) -> None:
        super().__init__()
        self.net = VectorFieldNet(state_dim, param_dim=context_dim, hidden=hidden,
                                  activation=activation)
        self.context = torch.nn.Parameter(torch.zeros(context_dim))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y, self.context)


def make_model(reader: EnvironmentReader, size: dict, seed: int,
               context_dim: int = 0) -> Forecaster:
    torch.manual_seed(seed)
    field: torch.nn.Module = (
        ContextField(reader.state_dim, context_dim, size["hidden"], size["activation"])
        if context_dim else VectorFieldNet(reader.state_dim, hidden=size["hidden"],
                                           activation=size["activation"]))
    return Forecaster(field, reader.time, substeps=size["substeps"])


def all_trajectories(reader: EnvironmentReader) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training trajectory by environment: y0 ``[E, K, S]``, ``[E, K, T, S]``."""
    traj = torch.stack([reader.trajectories(e) for e in range(len(reader))])
    return traj[:, :, 0], traj


def train_maml(model: Forecaster, sample, steps: int, lr: float, inner_lr: float,
               inner_steps: int) -> tuple[MAML, dict[str, torch.Tensor], int]:
    """Second-order MAML; ``sample(rng)`` gives one meta-batch (a TaskBatch).

    Returns the learner, the trained init and the number of meta-steps skipped
    because the meta-loss was not finite.
    """
    maml = MAML(model, inner_lr=inner_lr, inner_steps=inner_steps)
    params = maml.init_params()
    opt = torch.optim.Adam(params.values(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    rng = np.random.default_rng(0)
    skipped = 0
    for _ in range(steps):
        loss = maml.meta_loss(params, sample(rng))
        opt.zero_grad()
        if torch.isfinite(loss):  # an inner step can blow a rollout up: skip, count
            loss.backward()
            opt.step()
            sched.step()
        else:
            skipped += 1
    return maml, {k: v.detach().clone() for k, v in params.items()}, skipped


def stats(a: np.ndarray) -> dict:
    """Over the finite entries of ``a`` ``[E, N]``: mean and std over trajectories, std
    of the per-environment means; ``diverged`` counts the non-finite ones (left out)."""
    ok = np.isfinite(a)
    env = [row[m].mean() for row, m in zip(a, ok, strict=True) if m.any()]
    nan = float("nan")
    return {"mean": float(a[ok].mean()) if ok.any() else nan,
            "std": float(a[ok].std()) if ok.any() else nan,
            "std_env": float(np.std(env)) if env else nan, "n_env": a.shape[0],
            "n": a.size, "diverged": int((~ok).sum())}


def fmt(d: dict) -> str:
    div = f" ({d['diverged']} div.)" if d["diverged"] else ""
    return f"{d['mean']:.3g} ± {d['std']:.2g}{div}"


def run_grid(name: str, sets: dict[str, EnvironmentReader], train: EnvironmentReader,
             maml_sample, size: dict, args, log: dict) -> list[dict]:
    """Train the inits on ``train``; adapt and score on each reader of ``sets``."""
    y0, traj = all_trajectories(train)
    plain = make_model(train, size, args.seed)
    names = [k for k, _ in plain.named_parameters()]
    inits: dict[str, tuple[Forecaster, dict, list[str] | None]] = {
        "random": (plain, {k: v.detach().clone() for k, v in plain.named_parameters()},
                   None)}
    t0 = time.perf_counter()
    joint, _ = fine_tune(plain, None, y0, traj, size["joint"], args.lr, names=[],
                         shared=names)
    inits["joint"] = (plain, joint, None)
    log[f"{name}/joint_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    maml, theta, skipped = train_maml(make_model(train, size, args.seed), maml_sample,
                                      size["maml"], args.lr, args.inner_lr,
                                      args.inner_steps)
    log[f"{name}/maml_skipped_steps"] = skipped
    inits["maml"] = (plain, theta, None)
    log[f"{name}/maml_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctx_model = make_model(train, size, args.seed, args.context_dim)
    start = {k: v.detach() for k, v in ctx_model.named_parameters()}
    start["field.context"] = 0.1 * torch.randn(len(train), args.context_dim)
    net = [k for k in start if k != "field.context"]
    ctx, _ = fine_tune(ctx_model, start, y0, traj, size["context"], args.lr,
                       names=["field.context"], shared=net)
    log[f"{name}/context_s"] = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for set_name, reader in sets.items():
        batch = reader.batch(range(len(reader)))
        log[f"{name}/{set_name}/exact-field RK4 MSE"] = discretisation_floor(
            reader, batch, size["substeps"])
        same = np.array_equal(reader.params, train.params)
        mean_ctx = dict(ctx, **{"field.context": ctx["field.context"].mean(0)})
        inits["context"] = (ctx_model, ctx if same else mean_ctx, ["field.context"])
        for init, (model, p, tuned) in inits.items():
            s = batch.support_x.shape[-1]
            qy, sy = (b.unflatten(-1, (-1, s)) for b in (batch.query_y, batch.support_y))
            before = forecast_mse(model, p, batch.query_x, qy).numpy()
            phi, curve = fine_tune(model, p, batch.support_x, sy, steps=size["tune"],
                                   lr=args.context_lr if tuned else args.tune_lr,
                                   names=tuned)
            after = forecast_mse(model, phi, batch.query_x, qy).numpy()
            rows.append({"grid": name, "set": set_name, "init": init,
                         "adapted": "context" if tuned else "all", "none": stats(before),
                         "tuned": stats(after), "support": float(curve[-1].mean())})
        adapted = maml.adapt_batch(theta, batch)  # MAML's own rule
        own = forecast_mse(plain, {k: adapted[k] for k in theta}, batch.query_x,
                           batch.query_y).numpy()
        rows.append({"grid": name, "set": set_name, "init": "maml",
                     "adapted": f"all, {args.inner_steps} SGD step(s) {args.inner_lr:g}",
                     "none": rows[-2]["none"], "tuned": stats(own), "support": None})
    log[f"{name}/eval_s"] = time.perf_counter() - t0
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (data, results)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="about a fifth of the full steps")
    g.add_argument("--smoke", action="store_true", help="tiny sizes: a pipeline check")
    ap.add_argument("--seed", type=int, default=0, help="network init seed")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam rate, training")
    ap.add_argument("--tune-lr", type=float, default=3e-3,
                    help="Adam rate, fine-tuning every parameter")
    ap.add_argument("--context-lr", type=float, default=1e-2,
                    help="Adam rate, fine-tuning the context only")
    ap.add_argument("--inner-lr", type=float, default=0.02, help="MAML inner SGD rate")
    ap.add_argument("--context-dim", type=int, default=2, help="context size, context init")
    ap.add_argument("--inner-steps", type=int, default=1, help="MAML inner steps")
    ap.add_argument("--steps", default="", help="override sizes, e.g. joint=500,maml=100")
    ap.add_argument("--hidden", default="", help="override hidden widths, e.g. 64,64,64")
    ap.add_argument("--activation", default="silu", help="tanh, silu, relu or sine")
    ap.add_argument("--grids", default="leads,coda", help="comma list of leads, coda")
    args = ap.parse_args()
    level = "smoke" if args.smoke else "quick" if args.quick else "full"
    size = dict(SIZES[level])
    size["activation"] = args.activation
    if args.hidden:
        size["hidden"] = tuple(int(w) for w in args.hidden.split(","))
    for item in filter(None, args.steps.split(",")):
        key, _, value = item.partition("=")
        if key not in ("joint", "context", "maml", "tune", "substeps"):
            raise SystemExit(f"--steps: unknown size {key!r}; use joint, context, maml, "
                             "tune, substeps")
        size[key] = int(value)
    torch.set_num_threads(1)
    start = time.perf_counter()
    log: dict = {"level": level, "size": {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in size.items()}, "args": dict(vars(args))}
    log["args"]["out"] = str(args.out)
    rows: list[dict] = []
    floor: dict[str, float] = {}
    grids = args.grids.split(",")
    if "leads" in grids:
        d = build("lotka_volterra_leads", args.out, args.smoke)
        log["leads/data_s"] = time.perf_counter() - start
        # support: each environment's single training trajectory; query: its test ones
        test = EnvironmentReader(d["train"], n_support_traj=1, query_path=d["test"])
        floor["leads/test"] = published_solver_error(test, query_store=True)
        whole = test.batch(range(len(test)))

        def leads_sample(rng: np.random.Generator) -> TaskBatch:  # support = query
            return TaskBatch(whole.support_x, whole.support_y, whole.support_x,
                             whole.support_y, None, whole.params)

        rows += run_grid("leads", {"in-domain": test}, test, leads_sample, size, args, log)
    if "coda" in grids:
        t0 = time.perf_counter()
        d = build("lotka_volterra_coda", args.out, args.smoke)
        log["coda/data_s"] = time.perf_counter() - t0
        train = EnvironmentReader(d["train"], n_support_traj=1)       # query: 3 others
        sets = {"in-domain": EnvironmentReader(d["train"], n_support_traj=4,
                                               query_path=d["test"]),
                "new env": EnvironmentReader(d["adapt"], n_support_traj=1,
                                             query_path=d["adapt-test"])}
        floor["coda/in-domain"] = published_solver_error(sets["in-domain"], True)
        floor["coda/new env"] = published_solver_error(sets["new env"], True)
        rows += run_grid("coda", sets, train, lambda rng: train.sample(len(train), rng),
                         size, args, log)
    log["wall_s"] = time.perf_counter() - start
    log["published_solver_mse"] = floor
    lines = [f"Lotka-Volterra forecasting, {level} size {log['size']}; MSE mean ± std over "
             "test trajectories [std of environment means]",
             "",
             "| grid | set | init | adapted | no adaptation | after adaptation | support MSE |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        sup = "" if r["support"] is None else f"{r['support']:.2g}"
        lines.append(f"| {r['grid']} | {r['set']} | {r['init']} | {r['adapted']} | "
                     f"{fmt(r['none'])} | "
                     f"{fmt(r['tuned'])} [{r['tuned']['std_env']:.2g}] | {sup} |")
    lines += ["", f"Published (LEADS repository README): LEADS test MSE Lotka-Volterra "
              f"{PUBLISHED['lotka_volterra']} (10 envs, 1 trajectory/env); Gray-Scott "
              f"{PUBLISHED['gray_scott']}; Navier-Stokes {PUBLISHED['navier_stokes']}.",
              "MSE of RK45 at scipy defaults against the accurate test data: "
              + ", ".join(f"{k} {v:.2g}" for k, v in floor.items()),
              "Exact field under the same RK4 steps (the discretisation floor): "
              + ", ".join(f"{k.removesuffix('/exact-field RK4 MSE')} {v:.2g}"
                          for k, v in log.items() if k.endswith("RK4 MSE")),
              "MAML meta-steps skipped (non-finite meta-loss): "
              + ", ".join(f"{k.split('/')[0]} {v}" for k, v in log.items()
                          if k.endswith("maml_skipped_steps")),
              f"Wall time {log['wall_s']:.0f} s: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in log.items() if k.endswith("_s"))]
    text = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "log": log}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
