"""CLI verbs for meta-learning runs: quickstart, train, evaluate, adapt."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .common import add_parser, keyword_flags

#: library keyword -> flag, for rewording the library's errors (see common.as_flags)
ADAPT_FLAGS = {"support": "--support", "at": "--at", "params": "--param", "steps": "--steps",
               "init": "--init", "out": "--out", "uncertainty": "--uncertainty",
               "optimizer": "--optimizer", "rate": "--rate", "physics_weight": "--physics-weight"}


def add_commands(sub) -> None:
    q = add_parser(sub, "quickstart", help="generate, meta-train and evaluate on the oscillator")
    q.add_argument("--out", default="scimeta-quickstart", help="output folder")
    q.add_argument("--iterations", type=int, default=None,
                   help="meta-iterations per init (default: 4000, the quick-start config's)")
    q.add_argument("--workers", type=int, default=1, help="generation worker processes")
    q.set_defaults(func=cmd_quickstart)

    t = add_parser(sub, "train", help="meta-train from a TOML config")
    t.add_argument("config", help="TOML config (see README)")
    t.add_argument("--run-dir", required=True, help="output run directory")
    t.add_argument("--resume", action="store_true", help="continue a stopped run")
    t.add_argument("--allow-config-change", nargs="+", default=[], metavar="KEY",
                   help="with --resume: config keys (e.g. optim.lr meta.inner_lr, or a "
                        "section such as data.validation) whose new values the resumed run "
                        "takes, continuing from its last checkpoint (recorded in run.json; "
                        "model.* cannot change)")
    t.set_defaults(func=cmd_train)

    e = add_parser(sub, "evaluate", help="adaptation curves of every init on held-out tasks")
    e.add_argument("run_dir", help="a run directory written by `scimeta train`")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--regime", help="a label of the config's [data.validation] table")
    src.add_argument("--data", help="a task store of the same family")
    e.add_argument("--validation", default=None, metavar="STORE",
                   help="a store of a regime disjoint from training and test: each init's "
                        "SGD, Adam and L-BFGS rates are chosen on it (default: none; rates "
                        "not tuned)")
    e.add_argument("--optimizers", default="sgd,adam",
                   help="test-time optimizers, comma-separated: sgd, adam, lbfgs, "
                        "learned, sgd+physics, adam+physics, lbfgs+physics (data plus the "
                        "equation residual at the task's known parameters)")
    e.add_argument("--physics-weights", default="1,0.1,0.01,10",
                   help="weights of the normalized residual for the +physics optimizers, "
                        "comma-separated; chosen on --validation (else the first)")
    e.add_argument("--n-collocation", type=int, default=64,
                   help="residual points per task for the +physics optimizers")
    e.add_argument("--code-steps", default="20",
                   help="decoder init only: first steps that fit its code alone on the "
                        "data before every weight adapts, comma-separated (0: none); "
                        "chosen on --validation (else the first)")
    e.add_argument("--budgets", default=None,
                   help="step budgets, comma-separated (default: 0,1,5,10,50,200)")
    e.add_argument("--steps", type=int, default=None,
                   help="record every budget 0..N instead of --budgets")
    e.add_argument("--select-budget", type=int, default=None,
                   help="budget at which rates are chosen (default: min(50, largest budget))")
    e.add_argument("--max-diverged", type=float, default=0.1,
                   help="largest share of diverged validation tasks a rate may have")
    e.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples for the ratios' 95%% intervals")
    e.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    e.add_argument("--budget", type=int, default=None,
                   help="budget the printed table shows (default: the largest)")
    e.add_argument("--max-tasks", type=int, default=None,
                   help="evaluate on the first M ok tasks only, of the test store and of "
                        "the --validation store alike (default: all)")
    e.add_argument("--reference", choices=("sysid", "sysid-known"), default=None,
                   help="add the system-identification reference row: the family's own "
                        "equation fitted to each support set by least squares (ODE and "
                        "periodic spectral PDE families; "
                        "sysid-known holds the task's true parameters) (default: none)")
    e.set_defaults(func=cmd_evaluate)

    a = add_parser(sub, "adapt", help="adapt a trained init to your own measurements")
    a.add_argument("run_dir", help="a run directory written by `scimeta train`")
    a.add_argument("--support", required=True, help="CSV (header t[,x,y],states) or .h5 store")
    a.add_argument("--init", default="maml", help="which trained init (maml, fomaml, joint)")
    a.add_argument("--steps", type=int, default=None,
                   help="inner steps (default: training's meta.inner_steps)")
    a.add_argument("--at", default=None, metavar="CSV",
                   help="prediction points, a CSV with header t[,x,y] (default: the "
                        "family's time grid; required for PDE families)")
    a.add_argument("--out", default=None,
                   help="write predictions to .csv or .nc (default: CSV on stdout)")
    a.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="the task's physical parameters (all of them, repeat the option), "
                        "for runs whose inner loop uses the equation residual")
    a.add_argument("--uncertainty", action="store_true",
                   help="add pred_std, the Laplace predictive standard deviation (.nc output)")
    a.add_argument("--optimizer", default=None,
                   help="adapt with a test-time optimizer instead of the run's inner rule: "
                        "sgd, adam, lbfgs, or sgd+physics, adam+physics, lbfgs+physics (data "
                        "plus the residual at --param; best outside the training range: "
                        "lbfgs+physics); then --steps defaults to 50")
    a.add_argument("--rate", type=float, default=None,
                   help="its rate (default: sgd meta.inner_lr, adam 1e-3, lbfgs 1)")
    a.add_argument("--physics-weight", type=float, default=None,
                   help="λ of the normalized residual for a +physics optimizer (default 0.1)")
    a.set_defaults(func=cmd_adapt)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ..train.evaluate import format_table
    from ..train.quickstart import BUDGET, quickstart

    tables = quickstart(args.out, iterations=args.iterations, workers=args.workers)
    if not tables:
        print(f"stopped early; run `scimeta quickstart --out {args.out}` again to resume")
        return 0
    for split, rows in tables.items():
        print(format_table(rows, f"oscillator / {split} (query MSE after {BUDGET} steps; "
                                 "rates chosen on the validation store)"))
        print()
    print(f"results, datasets and plots in {args.out}/ (run/evaluation/*.nc, *.png)")
    return 0


def _allow_changes_flag(text: str) -> str:
    """``allow_changes=['a.b', 'c']`` -> ``--allow-config-change a.b c``."""
    return re.sub(r"allow_changes=\[([^\]]*)\]",
                  lambda m: "--allow-config-change " + " ".join(
                      k.strip(" '\"") for k in m.group(1).split(",") if k.strip()), text)


def cmd_train(args: argparse.Namespace) -> int:
    from ..errors import ScimetaError
    from ..train import load_train_config, train

    try:
        with keyword_flags(resume="--resume", allow_changes="--allow-config-change"):
            result = train(load_train_config(args.config), args.run_dir, resume=args.resume,
                           config_dir=Path(args.config).parent,
                           allow_changes=tuple(args.allow_config_change))
    except ScimetaError as exc:
        text = _allow_changes_flag(str(exc))
        if text == str(exc):
            raise
        raise type(exc)(text) from None
    if not result.completed:
        print(f"stopped by {result.stopped_by}; continue with: scimeta train {args.config} "
              f"--run-dir {args.run_dir} --resume")
        from .common import EXIT_REQUEUE

        return EXIT_REQUEUE
    print(f"trained {args.run_dir}")
    return 0


EVALUATE_FLAGS = {"steps": "--steps", "budgets": "--budgets", "optimizers": "--optimizers",
                  "validation": "--validation", "select_budget": "--select-budget",
                  "max_diverged": "--max-diverged", "bootstrap": "--bootstrap",
                  "max_tasks": "--max-tasks", "reference": "--reference",
                  "physics_weights": "--physics-weights", "n_collocation": "--n-collocation",
                  "code_steps": "--code-steps"}


def _csv(text: str, kind: type, flag: str) -> list:
    """``"a,b"`` -> ``[kind(a), kind(b)]``; a bad item names the flag."""
    from ..errors import ConfigError

    try:
        return [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated "
                          f"{ {int: 'integers', float: 'numbers'}.get(kind, 'names')}") from None


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
    with keyword_flags(**EVALUATE_FLAGS):
        ds = evaluate(args.run_dir, store, label=label, steps=args.steps,
                      max_tasks=args.max_tasks, validation=args.validation,
                      optimizers=_csv(args.optimizers, str, "--optimizers"),
                      budgets=None if args.budgets is None else _csv(args.budgets, int,
                                                                      "--budgets"),
                      select_budget=args.select_budget, max_diverged=args.max_diverged,
                      bootstrap=args.bootstrap, seed=args.seed, reference=args.reference,
                      physics_weights=_csv(args.physics_weights, float, "--physics-weights"),
                      n_collocation=args.n_collocation,
                      code_steps=_csv(args.code_steps, int, "--code-steps"))
    print(format_table(summary_table(ds, args.budget),
                       f"{ds.attrs['family']} / {ds.attrs['label']}"))
    print(f"wrote {Path(args.run_dir) / 'evaluation' / (ds.attrs['label'] + '.nc')}")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from ..train.adapt import adapt, check_output, parse_assignments, save_predictions

    with keyword_flags(**ADAPT_FLAGS):
        check_output(args.out)  # before any work
        params = parse_assignments(args.param) if args.param else None
        ds = adapt(args.run_dir, args.support, init=args.init, steps=args.steps, at=args.at,
                   params=params, uncertainty=args.uncertainty, optimizer=args.optimizer,
                   rate=args.rate, physics_weight=args.physics_weight)
        save_predictions(ds, args.out)
    a = ds.attrs
    print(f"support loss {a['support_loss_before']:.4g} -> {a['support_loss_after']:.4g} after "
          f"{a['steps']} {a['optimizer']} step(s) on {a['observed']}", file=sys.stderr)
    return 0
