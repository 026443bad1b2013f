"""LEADS / CoDA new-environment forecasting (Lotka-Volterra, glycolytic, Gray-Scott,
Navier-Stokes).

Protocol (docs/protocols.md, "LEADS / CoDA new-environment forecasting"):

1. Build the standard stores under ``--out`` and validate them. ``--system
   lotka-volterra`` (default): ``datasets/lotka_volterra_leads`` (10 environments,
   1 training trajectory each, 32 test trajectories each) and
   ``datasets/lotka_volterra_coda`` (9 training environments x 4 trajectories; 4 new
   environments with 1 adaptation trajectory and 32 test trajectories each).
   ``--system glycolytic``: ``datasets/glycolytic_coda`` (CoDA's grid: 9 training
   environments x 32 trajectories, 32 test each; 4 new environments with 1 adaptation
   trajectory and 32 test trajectories each; t in [0, 1], dt = 0.05). ``--system
   gray-scott``: ``datasets/gray_scott_leads`` (LEADS's grid model, 9-point Laplacian
   at dx = 1 on 32 x 32 points; 3 environments (F, k), 1 training and 32 test
   trajectories each; 10 frames t = 0, 40, ..., 360). ``--system navier-stokes``:
   ``datasets/navier_stokes_leads`` (vorticity at nu = 1e-3 with LEADS's 4 forcings,
   8 training and 32 test trajectories each; 10 frames t = 0, 1, ..., 9 of omega on
   32 x 32 points; accurate data only) and ``datasets/navier_stokes_coda`` (CoDA's
   5 training viscosities x 16 trajectories, 32 test each; 4 new viscosities with 1
   adaptation and 32 test trajectories each). ``--solver-preset``
   chooses the data: ``accurate`` (scimeta's reference solver, the default) or
   ``published`` (RK45 at scipy's default tolerances, as the LEADS/CoDA generators).
   The MSE between the two solvers on the test sets is measured and printed.
2. Train inits of a ``Forecaster(VectorFieldNet)`` (``ConvVectorField``, periodic
   3x3 convolutions, for Gray-Scott; RK4 rollout, one step per output interval;
   for Navier-Stokes LEADS's ``FourierVectorField`` with one Euler step per interval
   and 2 trajectories per environment per update): ``random``
   (untrained; per-environment training from scratch, LEADS's "One-Per-Env"),
   ``joint`` (one network fitted to every training trajectory, LEADS's
   "One-For-All"), ``maml`` (second-order MAML over environments: adapt on one
   trajectory, score the forecast of others; on the LEADS grid, whose environments
   hold one training trajectory, support = query) and ``context`` (the network takes
   a learned per-environment context vector as input, CAVIA/CoDA-style; a new
   environment fits its context only) and, with ``--steps leads=N`` (on by default for
   Lotka-Volterra and Gray-Scott), ``leads``: LEADS's own method, a shared f plus one
   penalised field g_e per environment (``_leads_decomposition``); a new environment
   fits a fresh g_e (starting at 0) with f fixed.
3. For each environment, fine-tune the init with Adam on the environment's support
   trajectories (its training trajectories in-domain, its one trajectory for a new
   environment), then forecast the environment's test trajectories from their initial
   states: full rollouts over the whole time grid, no teacher forcing. MSE over
   all times and states, mean +- std over test trajectories (and over environments).
   (Lotka-Volterra: 21 times; glycolytic: 21; Gray-Scott: 10 frames of 2 x 32 x 32;
   Navier-Stokes: 10 frames of omega on 32 x 32.)

Usage::

    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/leads          # full
    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/leads --quick  # ~1/5
    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/leads --smoke  # pipeline
    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/gly --system glycolytic \\
        --solver-preset published
    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/gs --system gray-scott --quick
    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/ns --system navier-stokes
    OMP_NUM_THREADS=1 python bench/leads_protocol.py --out /tmp/ns --system navier-stokes \
        --grids leads --smoke --workers 2   # ~40 s on 2 cores, most of it the data

``--workers N`` generates the stores with N processes (the data do not depend on it).

Adam rates: ``--lr`` and ``--tune-lr`` default to 3e-3, for Gray-Scott to LEADS's 1e-3
(3e-3 left the context model unstable there; docs/protocols.md), for Navier-Stokes
3e-3 training (chosen on the training loss of 600-step joint runs at 1e-3 and 3e-3)
and 1e-3 fine-tuning; ``--schedule cosine`` decays the training rate to 0 over the
steps, ``--teacher-forcing 0.99,10`` trains on LEADS's restarted rollouts (both off by
default). Seeds: network init ``--seed``
(0), MAML batches rng 0, context init after ``--seed``;
the stores' seeds are those of the dataset configs. Writes ``results.json`` (the
command line in ``log.argv``), ``table.md`` and, per grid and test set,
``forecast-<grid>-<set>.nc`` (every test rollout's squared error at every time, before
and after each row's adaptation; ``bench/_leads_output.py``) under ``--out``, each
atomically, and prints the table; ``scimeta report OUT`` renders them.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _leads_common import build, fmt, published_solver_error, run_grid, store_preset
from _leads_decomposition import check_supported
from _leads_output import ForecastErrors, write_errors

from scimeta.batch import TaskBatch
from scimeta.data import EnvironmentReader
from scimeta.errors import ConfigError
from scimeta.runtime.atomic import write_json, write_text
from scimeta.train._teacher_forcing import check_schedule

#: LEADS repository README (github.com/yuan-yin/LEADS, "Results"), test MSE of LEADS
PUBLISHED = {"lotka_volterra": "1.16 ± 0.99 e-3", "gray_scott": "2.08 ± 2.88 e-3",
             "navier_stokes": "5.95 ± 3.65 e-3"}
_LV = {  # hidden widths, RK4 substeps per interval, Adam steps: joint, context, MAML
    # meta-steps, fine-tuning per environment
    "full": dict(hidden=(64, 64, 64), substeps=1, joint=600, context=4500, maml=50,
                 tune=150, leads=4500),
    "quick": dict(hidden=(64, 64, 64), substeps=1, joint=120, context=900, maml=10,
                  tune=30, leads=900),
    "smoke": dict(hidden=(16,), substeps=1, joint=5, context=5, maml=3, tune=3, leads=5),
}
_GLY = {
    "full": dict(hidden=(64, 64, 64), substeps=1, joint=600, context=1500, maml=30,
                 tune=150),
    "quick": dict(hidden=(64, 64, 64), substeps=1, joint=120, context=300, maml=6,
                  tune=30),
    "smoke": dict(hidden=(16,), substeps=1, joint=3, context=3, maml=2, tune=2),
}
#: Gray-Scott: ConvVectorField (periodic 3x3 convolutions, LEADS's 4 layers of 64
#: channels, output scale 1e-3 as LEADS's factor) on the 32x32 grid, 2 channels (u, v)
_GS_NET = dict(field="conv", channels=2, grid=(32, 32), scale=1e-3, substeps=1)
_GS = {  # full: about 20 CPU-minutes on one thread here (LEADS: 120 000 epochs)
    "full": dict(_GS_NET, hidden=(64, 64, 64), joint=240, context=320, maml=8, tune=40,
                 leads=320),
    "quick": dict(_GS_NET, hidden=(64, 64, 64), joint=48, context=64, maml=2, tune=8,
                  leads=64),
    "smoke": dict(_GS_NET, hidden=(4,), joint=2, context=2, maml=1, tune=1, leads=2),
}
#: Navier-Stokes: LEADS's field (FNO, modes 6 x 6, width 10, 4 Fourier layers, head 128,
#: Swish, output scale 1), forward Euler with one step per output interval (dt = 1),
#: 2 trajectories per environment per update (LEADS's mini_batch_size); omega only
_NS_NET = dict(field="fno", channels=1, grid=(32, 32), scale=1.0, substeps=1,
               method="euler", batch=2, fno=dict(modes=(6, 6), width=10), hidden=())
_NS = {  # full: LEADS trains 120 000 epochs (4 updates each) on a GPU; joint and context
    # train on 6 of the 8 trajectories per environment and keep the iterate with the
    # least MSE on the other 2 (checked every 100 updates): stopping by validation
    "full": dict(_NS_NET, joint=6000, context=6000, maml=20, tune=50, val=2, every=100),
    "quick": dict(_NS_NET, joint=600, context=600, maml=4, tune=10, val=2, every=100),
    "smoke": dict(_NS_NET, fno=dict(modes=(2, 2), width=2, head=4), joint=2, context=2,
                  maml=1, tune=1, val=1, every=1, batch=1, leads=2),
}
#: per system: family, title, grids -> dataset folder, sizes, smoke training tasks (one
#: count, or one per grid),
#: MAML query trajectories per environment (None: every other training one); optional:
#: Adam rates, the state channels served, the solver presets the system has
SYSTEMS: dict[str, dict] = {
    "lotka-volterra": dict(family="lotka_volterra", title="Lotka-Volterra",
                           datasets={"leads": "lotka_volterra_leads",
                                     "coda": "lotka_volterra_coda"},
                           sizes=_LV, smoke_train=None, maml_query=None),
    "glycolytic": dict(family="glycolytic", title="Glycolytic oscillator",
                       datasets={"coda": "glycolytic_coda"}, sizes=_GLY, smoke_train=36,
                       maml_query=8),
    "gray-scott": dict(family="gray_scott_leads", title="Gray-Scott (LEADS grid model)",
                       datasets={"leads": "gray_scott_leads", "coda": "gray_scott_coda"},
                       sizes=_GS, smoke_train=None,
                       maml_query=None, rates=dict(lr=1e-3, tune_lr=1e-3)),
    "navier-stokes": dict(family="navier_stokes_forced",
                          title="Navier-Stokes (LEADS forcings, nu = 1e-3)",
                          datasets={"leads": "navier_stokes_leads",
                                    "coda": "navier_stokes_coda"}, sizes=_NS,
                          smoke_train=dict(leads=8, coda=10), maml_query=4,
                          rates=dict(lr=3e-3, tune_lr=1e-3),
                          states=("omega",), presets=("accurate",)),
}
DATA = {"accurate": "scimeta's accurate solver (the family's reference solver)",
        "published": "the published way (RK45 at scipy's default tolerances, "
                     "rtol 1e-3, atol 1e-6)"}


def parse() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (data, results)")
    ap.add_argument("--system", choices=sorted(SYSTEMS), default="lotka-volterra")
    ap.add_argument("--solver-preset", choices=("accurate", "published"), default="accurate",
                    help="solver the stores are generated with")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="about a fifth of the full steps")
    g.add_argument("--smoke", action="store_true", help="tiny sizes: a pipeline check")
    ap.add_argument("--seed", type=int, default=0, help="network init seed")
    ap.add_argument("--workers", type=int, default=1,
                    help="processes that generate the stores (the data do not depend on it)")
    ap.add_argument("--lr", type=float, default=None,
                    help="Adam rate, training (default 3e-3; gray-scott 1e-3)")
    ap.add_argument("--tune-lr", type=float, default=None,
                    help="Adam rate, fine-tuning every parameter (default 3e-3; "
                         "gray-scott 1e-3)")
    ap.add_argument("--context-lr", type=float, default=1e-2,
                    help="Adam rate, fine-tuning the context only")
    ap.add_argument("--inner-lr", type=float, default=0.02, help="MAML inner SGD rate")
    ap.add_argument("--context-dim", type=int, default=2, help="context size, context init")
    ap.add_argument("--inner-steps", type=int, default=1, help="MAML inner steps")
    ap.add_argument("--steps", default="", help="override sizes, e.g. joint=500,maml=100 "
                    "(also batch, val: held-out trajectories per environment, 0 = none)")
    ap.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                    help="Adam rate schedule of the joint and context training "
                         "(cosine: from --lr down to 0 over the steps)")
    ap.add_argument("--teacher-forcing", default="", metavar="K,EVERY",
                    help="LEADS's training rollouts for the joint and context training: "
                         "restart from the observed state at each time with probability "
                         "K^(1 + update // EVERY); LEADS's is 0.99,10 (default: none)")
    ap.add_argument("--augment", choices=("none", "d4", "forcing"), default="none",
                    help="train the joint and context inits on images of each training "
                         "trajectory; d4 (gray-scott): its 8 rotations/reflections (the "
                         "grid model is isotropic), one image per environment per update; "
                         "forcing (navier-stokes): 16 images under the grid isometries "
                         "that leave its environment's forcing unchanged")
    ap.add_argument("--hidden", default="", help="override hidden widths, e.g. 64,64,64")
    ap.add_argument("--activation", default="silu", help="tanh, silu, relu or sine")
    ap.add_argument("--grids", default="", help="comma list of leads, coda (default: "
                    "every grid of the system; glycolytic has coda only)")
    args = ap.parse_args()
    if args.workers < 1:
        ap.error(f"--workers {args.workers}: give an int >= 1")
    return args


#: the sizes ``--steps`` may override
STEP_KEYS = ("joint", "context", "maml", "tune", "substeps", "batch", "val", "every",
             "leads")


def sizes(args: argparse.Namespace, level: str) -> dict:
    """The size table of ``level`` with the command line's overrides."""
    size = dict(SYSTEMS[args.system]["sizes"][level])
    size["activation"] = args.activation
    size["schedule"] = args.schedule
    if args.augment != "none":
        allowed = {"d4": "gray-scott", "forcing": "navier-stokes"}[args.augment]
        if args.system != allowed:
            raise SystemExit(f"--augment {args.augment}: {allowed} only (the ODE states "
                             "have no such symmetry; d4 does not keep the Navier-Stokes "
                             "forcings, and Gray-Scott has no forcing)")
        size["augment"] = args.augment
        size.setdefault("batch", 1)
        if args.augment == "forcing":
            size["images"] = 16
    if args.teacher_forcing:
        k, _, every = args.teacher_forcing.partition(",")
        try:  # checked here, before any store is built
            size["teacher_forcing"] = check_schedule((float(k), int(every)))
        except (ValueError, ConfigError):
            raise SystemExit(f"--teacher-forcing {args.teacher_forcing!r}: give K,EVERY "
                             "with 0 <= K <= 1 and an int EVERY >= 1, e.g. 0.99,10") from None
    if args.hidden:
        size["hidden"] = tuple(int(w) for w in args.hidden.split(","))
    for item in filter(None, args.steps.split(",")):
        key, _, value = item.partition("=")
        if key not in STEP_KEYS:
            raise SystemExit(f"--steps: unknown size {key!r}; use {', '.join(STEP_KEYS)}")
        size[key] = int(value)
    if size.get("leads"):  # checked here, before any store is built
        check_supported(SYSTEMS[args.system]["family"])
    return size


def smoke_train(system: dict, grid: str) -> int | None:
    """Training tasks of ``grid`` at the smoke size (``smoke_train``: one count for
    every grid, or one per grid; a multiple of the grid's environment count)."""
    n = system["smoke_train"]
    return n.get(grid) if isinstance(n, dict) else n


def table(system: dict, level: str, log: dict, rows: list[dict],
          floor: dict[str, float]) -> str:
    """The markdown table and its notes."""
    preset = log["solver_preset"]
    lines = [f"{system['title']} forecasting, {level} size {log['size']}; data: "
             f"{preset} ({DATA[preset]}); MSE mean ± std over test trajectories "
             "[std of environment means]",
             "",
             "| grid | set | init | adapted | no adaptation | after adaptation | support MSE |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        sup = "" if r["support"] is None else f"{r['support']:.2g}"
        lines.append(f"| {r['grid']} | {r['set']} | {r['init']} | {r['adapted']} | "
                     f"{fmt(r['none'])} | "
                     f"{fmt(r['tuned'])} [{r['tuned']['std_env']:.2g}] | {sup} |")
    if system["family"] == "lotka_volterra":
        ref = (f"Published (LEADS repository README): LEADS test MSE Lotka-Volterra "
               f"{PUBLISHED['lotka_volterra']} (10 envs, 1 trajectory/env); Gray-Scott "
               f"{PUBLISHED['gray_scott']}; Navier-Stokes {PUBLISHED['navier_stokes']}.")
    elif system["family"] == "gray_scott_leads":
        ref = (f"Published (LEADS repository README): LEADS test MSE Gray-Scott "
               f"{PUBLISHED['gray_scott']} (3 envs, 1 trajectory/env, 120 000 epochs; "
               "LEADS's code keeps the lowest test MSE seen during training).")
    elif system["family"] == "navier_stokes_forced":
        ref = (f"Published (LEADS repository README): LEADS test MSE Navier-Stokes "
               f"{PUBLISHED['navier_stokes']} (4 envs, 8 trajectories/env, 120 000 epochs; "
               "LEADS's code keeps the lowest test MSE seen during training).")
    else:
        ref = ("Published: no figure for this system is quoted in docs/protocols.md "
               "(CoDA's paper tables could not be checked), so none is shown.")
    other = "the accurate solver" if preset == "published" else "RK45 at scipy defaults"
    what = "the published solver's error"
    if system["family"] == "navier_stokes_forced":
        other = "a solve on the stored 32 x 32 grid (LEADS's resolution)"
        what = "the error of solving at the published resolution"
    floors = ", ".join(f"{k.removesuffix('/exact-field RK4 MSE')} {v:.2g}"
                       + (f" ({n} of {log[k.replace('MSE', 'n')]} rollouts diverged)"
                          if (n := log[k.replace("MSE", "diverged")]) else "")
                       for k, v in log.items() if k.endswith("RK4 MSE"))
    lines += ["", ref,
              f"Data: {preset} stores (root attribute solver_preset = {preset!r}).",
              f"MSE between {other} and the {preset} test data ({what}): "
              + ", ".join(f"{k} {v:.2g}" for k, v in floor.items()),
              "Exact field under the same steps (the discretisation floor): "
              + (floors or "none for this system (one explicit step per output interval "
                 "is unstable for the PDE's own field)"),
              *([f"Stopping by validation ({log['size']['val']} held-out training "
                 "trajectories per environment): kept update "
                 + ", ".join(f"{k.split('/')[0]} {k.split('/')[1].split('_')[0]} "
                             f"{v} (validation MSE {log[k.replace('kept_step', 'val_mse')]:.3g})"
                             for k, v in log.items() if k.endswith("_kept_step"))]
                if log["size"].get("val") else []),
              "MAML meta-steps skipped (non-finite meta-loss): "
              + ", ".join(f"{k.split('/')[0]} {v}" for k, v in log.items()
                          if k.endswith("maml_skipped_steps")),
              f"Wall time {log['wall_s']:.0f} s: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in log.items() if k.endswith("_s"))]
    return "\n".join(lines)


def main() -> None:
    args = parse()
    system = SYSTEMS[args.system]
    for key, rate in dict(dict(lr=3e-3, tune_lr=3e-3), **system.get("rates", {})).items():
        if getattr(args, key) is None:  # the system's default Adam rates
            setattr(args, key, rate)
    family, preset = system["family"], args.solver_preset
    if preset not in system.get("presets", ("accurate", "published")):
        raise SystemExit(f"--solver-preset {preset}: not available for {args.system} "
                         "(LEADS's generator is Crank-Nicolson on the stored 32 x 32 grid, "
                         "not RK45; the table reports how far a solve at that resolution "
                         "lies from the data instead)")
    states = system.get("states")
    level = "smoke" if args.smoke else "quick" if args.quick else "full"
    size = sizes(args, level)
    grids = args.grids.split(",") if args.grids else list(system["datasets"])
    unknown = set(grids) - set(system["datasets"])
    if unknown:
        raise SystemExit(f"--grids: {sorted(unknown)} not available for {args.system}; "
                         f"use {', '.join(system['datasets'])}")
    torch.set_num_threads(1)
    # progress of the long fits (validation checks, or every tenth of the updates) on
    # stderr; the tables go to stdout
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("scimeta.train.forecast").setLevel(logging.INFO)
    start = time.perf_counter()
    log: dict = {"system": args.system, "family": family, "solver_preset": preset,
                 "level": level, "size": {k: list(v) if isinstance(v, tuple) else v
                                          for k, v in size.items()},
                 "args": dict(vars(args)), "argv": sys.argv[1:], "store_presets": {}}
    log["args"]["out"] = str(args.out)
    rows: list[dict] = []
    errors: dict[str, ForecastErrors] = {}  # per test set, the errors at every time
    floor: dict[str, float] = {}
    if "leads" in grids:
        d = build(system["datasets"]["leads"], args.out, args.smoke, preset,
                  smoke_train(system, "leads"), args.workers)
        log["store_presets"].update({str(p): store_preset(p) for p in d.values()})
        log["leads/data_s"] = time.perf_counter() - start
        # in-domain: adapt on every training trajectory of the environment, forecast its
        # test ones; MAML: with one training trajectory per environment, support = query
        # (that trajectory), else adapt on one and forecast the others
        per_env = int(np.min(EnvironmentReader(d["train"], query_path=d["train"],
                                               states=states).counts))
        test = EnvironmentReader(d["train"], n_support_traj=per_env, query_path=d["test"],
                                 states=states)
        floor["leads/test"] = published_solver_error(test, family, preset)
        whole = test.batch(range(len(test)))
        maml_train = (EnvironmentReader(d["train"], n_support_traj=1, states=states)
                      if per_env > 1 else test)

        def leads_sample(rng: np.random.Generator) -> TaskBatch:
            if per_env > 1:
                return maml_train.sample(len(maml_train), rng)
            return TaskBatch(whole.support_x, whole.support_y, whole.support_x,
                             whole.support_y, None, whole.params)

        rows += run_grid("leads", {"in-domain": test}, maml_train, leads_sample, size, args,
                         log, family, errors)
    if "coda" in grids:
        t0 = time.perf_counter()
        d = build(system["datasets"]["coda"], args.out, args.smoke, preset,
                  smoke_train(system, "coda"), args.workers)
        log["store_presets"].update({str(p): store_preset(p) for p in d.values()})
        log["coda/data_s"] = time.perf_counter() - t0
        # MAML: adapt on 1 training trajectory, forecast maml_query others; with a
        # single training trajectory per environment (CoDA's Gray-Scott) support = query,
        # as on the LEADS grid
        train = EnvironmentReader(d["train"], n_support_traj=1, query_path=d["train"],
                                  states=states)
        per_env = int(np.min(train.counts))  # in-domain: adapt on every training one
        if per_env > 1:
            train = EnvironmentReader(d["train"], n_support_traj=1, states=states)
        if system["maml_query"] and system["maml_query"] < per_env - 1:
            train = EnvironmentReader(d["train"], n_support_traj=1,
                                      n_query_traj=system["maml_query"], states=states)
        sets = {"in-domain": EnvironmentReader(d["train"], n_support_traj=per_env,
                                               query_path=d["test"], states=states),
                "new env": EnvironmentReader(d["adapt"], n_support_traj=1,
                                             query_path=d["adapt-test"], states=states)}
        for name, reader in sets.items():
            floor[f"coda/{name}"] = published_solver_error(reader, family, preset)
        log["coda/solver_error_s"] = time.perf_counter() - t0 - log["coda/data_s"]
        rows += run_grid("coda", sets, train, lambda rng: train.sample(len(train), rng),
                         size, args, log, family, errors)
    log["wall_s"] = time.perf_counter() - start
    log["published_solver_mse"] = floor
    text = table(system, level, log, rows, floor)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "table.md", text + "\n")
    write_errors(args.out, errors, {"system": args.system, "family": family,
                                    "solver_preset": preset, "level": level,
                                    "argv": shlex.join(log["argv"])})
    write_json(args.out / "results.json", {"rows": rows, "log": log}, indent=1)
    print(text)


if __name__ == "__main__":
    main()
