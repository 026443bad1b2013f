"""CLI verbs for the meta-landscape and meta-overfitting: landscape, diagnose."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_parser, keyword_flags

#: library keyword -> flag, for rewording the library's errors (see common.as_flags)
FLAGS = {"k": "--k", "max_tasks": "--max-tasks", "init": "--init", "learner": "--learner",
         "probes": "--probes", "dtype": "--dtype", "steps": "--steps",
         "threshold": "--swap-threshold"}


def add_commands(sub) -> None:
    land = add_parser(sub, "landscape", help="meta-Hessian spectrum, trace, density and stable "
                      "inner rates of a trained init")
    land.add_argument("run_dir", help="a run directory written by `scimeta train`")
    land.add_argument("--data", required=True, help="a task store of the run's family; its "
                      "regime names the output RUN_DIR/landscape/<regime>.nc")
    land.add_argument("--init", default=None, help="which init: a trained one (maml, fomaml, "
                      "joint, ...) or random (default: the run's meta.algorithm)")
    land.add_argument("--learner", default=None, help="whose meta-objective (default: the "
                      "run's meta.algorithm)")
    land.add_argument("--k", type=int, default=10, help="eigenpairs from each end of the "
                      "spectrum")
    land.add_argument("--max-tasks", type=int, default=None, help="tasks of the objective, the "
                      "store's first ok ones (default: the run's meta.meta_batch)")
    land.add_argument("--probes", type=int, default=20, help="Hutchinson probes for the trace")
    land.add_argument("--slq-probes", type=int, default=5, help="probes of the spectral "
                      "density (stochastic Lanczos quadrature)")
    land.add_argument("--slq-steps", type=int, default=30, help="Lanczos steps per SLQ probe")
    land.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                      help="arithmetic of the products")
    land.add_argument("--seed", type=int, default=0, help="seed of the random start vectors "
                      "and probes (default: 0)")
    land.set_defaults(func=cmd_landscape)

    diag = add_parser(sub, "diagnose", help="meta-overfitting report over a run's snapshots: "
                      "train vs held-out adaptation, support swap, gradient coherence")
    diag.add_argument("run_dir", help="a run directory trained with run.snapshot_every > 0")
    diag.add_argument("--data", action="append", required=True, metavar="STORE",
                      help="a held-out task store of the run's family (repeat the option); "
                      "the run's training store is added when it still exists")
    diag.add_argument("--init", default=None, help="which init's snapshots (default: the "
                      "run's meta.algorithm)")
    diag.add_argument("--learner", default=None, help="whose adaptation rule and meta-gradient "
                      "(default: the run's meta.algorithm)")
    diag.add_argument("--max-tasks", type=int, default=None, help="tasks per store (default: "
                      "the run's meta.meta_batch)")
    diag.add_argument("--steps", type=int, default=None, help="inner steps (default: the run's "
                      "meta.inner_steps)")
    diag.add_argument("--swap-threshold", type=float, default=1.5, help="flag a regime whose "
                      "support-swap MSE ratio is below this")
    diag.add_argument("--no-train", action="store_true", help="leave out the run's training "
                      "store")
    diag.set_defaults(func=cmd_diagnose)


def cmd_landscape(args: argparse.Namespace) -> int:
    from ..landscape import landscape

    with keyword_flags(**FLAGS):
        ds = landscape(args.run_dir, args.data, init=args.init, learner=args.learner, k=args.k,
                       max_tasks=args.max_tasks, probes=args.probes, slq_probes=args.slq_probes,
                       slq_steps=args.slq_steps, dtype=args.dtype, seed=args.seed)
    a = ds.attrs
    top = ds["eigenvalue"].sel(end="top").values
    bottom = ds["eigenvalue"].sel(end="bottom").values
    rates = ds["stable_rate"].values
    print(f"{a['family']} / {a['regime']}: init {a['init']}, {a['n_params']} parameters, "
          f"{a['n_tasks']} tasks, meta-loss {a['meta_loss']:.4g}")
    print("top eigenvalues:    " + " ".join(f"{v:.4g}" for v in top))
    print("bottom eigenvalues: " + " ".join(f"{v:.4g}" for v in bottom))
    print(f"trace {ds['trace'].item():.4g} ± {ds['trace_stderr'].item():.2g} (Hutchinson, "
          f"{a['trace_probes']} probes)")
    print(f"stable inner rate 2/λ_max: median {float(_median(rates)):.3g}, min "
          f"{float(rates.min()):.3g}; inner_lr {a['inner_lr']:g} exceeds it on "
          f"{a['share_unstable']:.0%} of the tasks")
    print(f"wrote {Path(a['run_dir']) / 'landscape' / (a['regime'] + '.nc')} "
          f"({a['hvp_products']} products, {a['seconds']:.1f} s)")
    return 0


def _median(x):
    import numpy as np

    return np.median(x)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ..landscape import diagnose, report_markdown

    with keyword_flags(**FLAGS):
        ds = diagnose(args.run_dir, args.data, init=args.init, learner=args.learner,
                      max_tasks=args.max_tasks, steps=args.steps,
                      swap_threshold=args.swap_threshold, include_train=not args.no_train)
    print(report_markdown(ds))
    print(f"wrote {Path(ds.attrs['run_dir']) / 'diagnose' / (ds.attrs['init'] + '.nc')} "
          "(.md, .png)")
    return 0
