"""CLI verb of the Bayesian view: ``scimeta posterior``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_parser, keyword_flags

#: library keyword -> flag, for rewording the library's errors (see common.as_flags)
POSTERIOR_FLAGS = {"structure": "--structure", "steps": "--steps", "max_tasks": "--max-tasks",
                   "init": "--init", "validation": "--validation", "label": "--label"}


def add_commands(sub) -> None:
    p = add_parser(sub, "posterior",
                   help="Laplace posteriors around adapted parameters, with calibration scores")
    p.add_argument("run_dir", help="a run directory written by `scimeta train`")
    p.add_argument("--data", required=True, metavar="STORE",
                   help="a task store of the run's family (held-out regime)")
    p.add_argument("--init", default="maml",
                   help="trained init used as the prior mean (maml, fomaml, joint)")
    p.add_argument("--structure", default="kron",
                   help="curvature: full, diag, kron, last-layer or hessian")
    p.add_argument("--steps", type=int, default=None,
                   help="inner steps (default: training's meta.inner_steps)")
    p.add_argument("--max-tasks", type=int, default=None,
                   help="use the first N ok tasks only (default: all)")
    p.add_argument("--validation", default=None, metavar="STORE",
                   help="fit the noise and prior precision on this store's tasks, then hold "
                        "them fixed (default: none; fitted on --data's support sets)")
    p.add_argument("--label", default=None,
                   help="output name RUN_DIR/posterior/LABEL.nc (default: the store's regime)")
    p.set_defaults(func=cmd_posterior)


def cmd_posterior(args: argparse.Namespace) -> int:
    from ..bayes import posterior

    with keyword_flags(**POSTERIOR_FLAGS):
        ds = posterior(args.run_dir, args.data, init=args.init, structure=args.structure,
                       steps=args.steps, max_tasks=args.max_tasks, validation=args.validation,
                       label=args.label)
    cov = ds["coverage"].mean("task")
    print(f"{ds.attrs['family']} / {ds.attrs['label']}: {ds.sizes['task']} tasks, "
          f"structure {ds.attrs['structure']}")
    print("coverage " + "  ".join(f"{float(lv):.0%}: {float(c):.3f}"
                                  for lv, c in zip(cov["level"].values, cov.values,
                                                   strict=True)))
    print(f"NLL {float(ds['nll'].mean()):.4f} (point estimate + fitted noise "
          f"{float(ds['base_nll'].mean()):.4f}), CRPS {float(ds['crps'].mean()):.4g} "
          f"({float(ds['base_crps'].mean()):.4g})")
    print(f"wrote {Path(args.run_dir) / 'posterior' / (ds.attrs['label'] + '.nc')}")
    return 0
