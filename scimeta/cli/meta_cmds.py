"""CLI verbs for meta-learning runs: quickstart, train, evaluate, adapt."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_commands(sub) -> None:
    q = sub.add_parser("quickstart", help="generate, meta-train and evaluate on the oscillator")
    q.add_argument("--out", default="scimeta-quickstart", help="output folder")
    q.add_argument("--iterations", type=int, default=None, help="meta-iterations per init")
    q.add_argument("--workers", type=int, default=1, help="generation worker processes")
    q.set_defaults(func=cmd_quickstart)

    t = sub.add_parser("train", help="meta-train from a TOML config")
    t.add_argument("config", help="TOML config (see README)")
    t.add_argument("--run-dir", required=True, help="output run directory")
    t.add_argument("--resume", action="store_true", help="continue a stopped run")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="adaptation curves of every init on held-out tasks")
    e.add_argument("run_dir")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--regime", help="a label of the config's [data.validation] table")
    src.add_argument("--data", help="a task store of the same family")
    e.add_argument("--steps", type=int, default=None, help="inner steps N (default: training's)")
    e.add_argument("--max-tasks", type=int, default=None)
    e.set_defaults(func=cmd_evaluate)

    a = sub.add_parser("adapt", help="adapt a trained init to your own measurements")
    a.add_argument("run_dir")
    a.add_argument("--support", required=True, help="CSV (header t[,x,y],states) or .h5 store")
    a.add_argument("--init", default="maml", help="which trained init (maml, fomaml, joint)")
    a.add_argument("--steps", type=int, default=None)
    a.add_argument("--out", default=None, help="write predictions (.nc or .csv)")
    a.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="the task's physical parameters (all of them), for runs whose inner "
                        "loop uses the equation residual")
    a.set_defaults(func=cmd_adapt)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ..train.evaluate import format_table
    from ..train.quickstart import quickstart

    tables = quickstart(args.out, iterations=args.iterations, workers=args.workers)
    if not tables:
        print(f"stopped early; run `scimeta quickstart --out {args.out}` again to resume")
        return 0
    for split, rows in tables.items():
        print(format_table(rows, f"oscillator / {split} (query MSE after 10 inner steps)"))
        print()
    print(f"results, datasets and plots in {args.out}/ (run/evaluation/*.nc, *.png)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..train import load_train_config, train

    result = train(load_train_config(args.config), args.run_dir, resume=args.resume,
                   config_dir=Path(args.config).parent)
    if not result.completed:
        print(f"stopped by {result.stopped_by}; continue with: scimeta train {args.config} "
              f"--run-dir {args.run_dir} --resume")
        return 0
    print(f"trained {args.run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..train import RunDir
    from ..train.evaluate import evaluate, format_table, summary_table

    label = args.regime
    store = args.data
    if label is not None:
        known = RunDir(args.run_dir).load_config().data.validation
        if label not in known:
            raise ConfigError(f"--regime {label!r} is not in the run's [data.validation] table "
                              f"({', '.join(known) or 'empty'}); pass --data PATH instead")
        store = known[label]
    ds = evaluate(args.run_dir, store, label=label, steps=args.steps, max_tasks=args.max_tasks)
    print(format_table(summary_table(ds), f"{ds.attrs['family']} / {ds.attrs['label']}"))
    print(f"wrote {Path(args.run_dir) / 'evaluation' / (ds.attrs['label'] + '.nc')}")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from ..train.adapt import adapt

    params = None
    if args.param:
        from .. import registry
        from ..errors import ConfigError
        from ..train import RunDir
        from .data_cmds import parse_bounds

        family = registry.get(RunDir(args.run_dir).load_info()["family"])
        given = {name: lo for name, lo, _ in parse_bounds(args.param)}
        unknown = sorted(set(given) - set(family.param_names))
        missing = [n for n in family.param_names if n not in given]
        if unknown or missing:
            raise ConfigError(f"--param: family {family.name!r} needs exactly "
                              f"{', '.join(family.param_names)}; unknown {unknown}, "
                              f"missing {missing}")
        params = np.array([given[n] for n in family.param_names])
    ds = adapt(args.run_dir, args.support, init=args.init, steps=args.steps, params=params)
    if args.out is None or args.out.endswith(".csv"):
        table = np.column_stack([ds[c].values for c in ds["input"].values]
                                + [ds["prediction"].values])
        header = ",".join([*map(str, ds["input"].values), *map(str, ds["channel"].values)])
        if args.out is None:
            print(header)
            for row in table:
                print(",".join(f"{v:.8g}" for v in row))
        else:
            np.savetxt(args.out, table, delimiter=",", header=header, comments="", fmt="%.8g")
    else:
        ds.to_netcdf(args.out, engine="h5netcdf")
    return 0
