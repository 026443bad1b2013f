"""CLI verbs for task families and stores: problems, generate, validate, info."""

from __future__ import annotations

import argparse
import json
import sys

from .. import registry
from ..data import (
    RULES,
    GenerationConfig,
    format_summary,
    generate,
    manifest,
    summarize,
    validate,
)
from ..errors import ConfigError


def add_commands(sub) -> None:
    p = sub.add_parser("problems", help="list the task families and their parameters")
    p.add_argument("name", nargs="?", help="show one family in full")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_problems)

    g = sub.add_parser("generate", help="solve N tasks of a family into an HDF5 store")
    g.add_argument("family")
    g.add_argument("--regime", required=True, help="named regime, e.g. train")
    g.add_argument("--tasks", type=int, required=True, help="number of tasks N")
    g.add_argument("--seed", type=int, default=0, help="run seed (per-task seeds derive)")
    g.add_argument("--out", required=True, help="output .h5 path")
    g.add_argument("--workers", type=int, default=1, help="worker processes")
    g.add_argument("--support", type=int, default=10, help="support points per task (K)")
    g.add_argument("--query", type=int, default=100, help="query points per task (Q)")
    g.add_argument("--sampling", default="random", choices=RULES)
    g.add_argument("--param", action="append", default=[], metavar="NAME=LO:HI",
                   help="override a parameter's bounds (repeatable; NAME=V fixes it)")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing file")
    g.set_defaults(func=cmd_generate)

    v = sub.add_parser("validate", help="check a store against the schema (exit 1 if invalid)")
    v.add_argument("path")
    v.set_defaults(func=cmd_validate)

    i = sub.add_parser("info", help="summarize a store")
    i.add_argument("path")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info)

    d = sub.add_parser("dataset", help="build or check a standard dataset folder (datasets/*)")
    d.add_argument("action", choices=("build", "check"))
    d.add_argument("folder", help="folder holding config.toml (e.g. datasets/oscillator)")
    d.add_argument("--workers", type=int, default=1)
    d.add_argument("--overwrite", action="store_true", help="regenerate existing splits")
    d.set_defaults(func=cmd_dataset)


def parse_bounds(items: list[str]) -> tuple[tuple[str, float, float], ...]:
    """``["omega0=0.5:1.5", "F=0"]`` -> ``(("omega0", 0.5, 1.5), ("F", 0.0, 0.0))``."""
    out = []
    for item in items:
        name, eq, rng = item.partition("=")
        try:
            if not eq or not name:
                raise ValueError
            lo, _, hi = rng.partition(":")
            low = float(lo)
            out.append((name, low, float(hi) if hi else low))
        except ValueError:
            raise ConfigError(f"--param {item!r}: expected NAME=LOW:HIGH or NAME=VALUE") from None
    return tuple(out)


def cmd_problems(args: argparse.Namespace) -> int:
    names = [args.name] if args.name else registry.names()
    described = [registry.get(n).describe() for n in names]
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for d in described:
        print(f"{d['name']}: {d['summary']}")
        print(f"    {d['equation']}")
        for p in d["params"]:
            print(f"    {p['name']:<12} [{p['unit']}]  {p['description']}")
        print(f"    regimes: {', '.join(d['regimes'])}")
        if args.name:
            for rname, r in d["regimes"].items():
                print(f"      {rname:<22} {r['description']}")
            s = d["solver"]
            print(f"    solver: {s['name']} {s['method']} rtol={s['rtol']} atol={s['atol']}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    config = GenerationConfig(
        family=args.family, regime=args.regime, tasks=args.tasks, seed=args.seed,
        support=args.support, query=args.query, sampling=args.sampling,
        bounds=parse_bounds(args.param),
    )
    path = generate(config, args.out, workers=args.workers, resume=args.resume,
                    overwrite=args.overwrite)
    s = summarize(path)
    print(f"wrote {path}: {s['tasks']} tasks, "
          + ", ".join(f"{k} {v}" for k, v in s["status_counts"].items() if v))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    problems = validate(args.path)
    if not problems:
        print(f"{args.path}: valid (schema v1)")
        return 0
    for p in problems:
        print(f"{args.path}: {p}", file=sys.stderr)
    return 1


def cmd_dataset(args: argparse.Namespace) -> int:
    if args.action == "build":
        path = manifest.build(args.folder, workers=args.workers, overwrite=args.overwrite)
        print(f"built {args.folder}; manifest {path}")
        return 0
    problems = manifest.check(args.folder)
    for p in problems:
        print(f"{args.folder}: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.folder}: every split matches its manifest")
    return 1 if problems else 0


def cmd_info(args: argparse.Namespace) -> int:
    s = summarize(args.path)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0
