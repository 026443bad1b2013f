"""CLI verbs for task families and stores: problems, generate, validate, info, dataset."""

from __future__ import annotations

import argparse
import json
import sys

from ..data.sampling import RULES
from .common import add_parser, keyword_flags

#: library keyword -> flag, for rewording the library's errors (see common.as_flags)
GENERATE_FLAGS = {"resume": "--resume", "overwrite": "--overwrite", "out": "--out",
                  "workers": "--workers", "tasks": "--tasks", "seed": "--seed",
                  "bounds": "--param", "dtype": "--dtype", "skip_space_check": "--skip-space-check",
                  "compression": "--compression", "solver_preset": "--solver-preset",
                  "support": "--support", "query": "--query", "shard": "--shard",
                  "exclude": "--exclude"}
DATASET_FLAGS = {"update_manifest": "--update-manifest", "overwrite": "--overwrite",
                 "workers": "--workers"}


def add_commands(sub) -> None:
    p = add_parser(sub, "problems", help="list the task families and their parameters")
    p.add_argument("name", nargs="?", help="show one family in full (default: list them all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_problems)

    g = add_parser(sub, "generate", help="solve N tasks of a family into an HDF5 store")
    g.add_argument("family", help="task family (see `scimeta problems`)")
    g.add_argument("--regime", required=True, help="named regime of the family, e.g. train")
    g.add_argument("--tasks", type=int, required=True, help="number of tasks N")
    g.add_argument("--seed", type=int, default=0, help="run seed (per-task seeds derive)")
    g.add_argument("--out", required=True, help="output .h5 path")
    g.add_argument("--workers", type=int, default=1, help="worker processes")
    g.add_argument("--support", type=int, default=10, help="support points per task (K)")
    g.add_argument("--query", type=int, default=100, help="query points per task (Q)")
    g.add_argument("--sampling", default="random", choices=RULES,
                   help="how support and query points are drawn from each task's grid")
    g.add_argument("--param", action="append", default=[], metavar="NAME=LO:HI",
                   help="override a parameter's bounds (repeatable; NAME=V fixes it)")
    g.add_argument("--exclude", action="append", default=[], metavar="NAME=LO:HI[,...]",
                   help="cut a closed box out of the regime (repeatable, one box each; "
                        "comma-separated ranges of several parameters), e.g. a band held "
                        "out of training as a validation regime")
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="dtype of the stored fields (float64: no rounding beyond the "
                        "solver's, twice the size)")
    g.add_argument("--compression", default="gzip", choices=("gzip", "lzf", "none"),
                   help="filter of the stored fields: gzip (level 4, smallest), lzf (faster "
                        "reads, larger) or none (fastest reads, largest); same values")
    g.add_argument("--solver-preset", default="accurate", choices=("accurate", "published"),
                   help="accurate: the family's own solver; published: solve_ivp RK45 at "
                        "scipy's defaults (rtol 1e-3, atol 1e-6) like the LEADS/CoDA "
                        "generators (ODE families only)")
    g.add_argument("--skip-space-check", action="store_true",
                   help="do not refuse a store whose estimated size exceeds the free space, "
                        "file-size limit or memory (the run still stops cleanly, resumable, "
                        "before a write that cannot fit)")
    g.add_argument("--shard", metavar="I/N",
                   help="solve only shard I of N (0-based; 'auto': from SLURM_ARRAY_TASK_ID "
                        "and SLURM_ARRAY_TASK_COUNT) into OUT-stem.shard-I-of-N.h5; join the "
                        "shards with `scimeta merge`")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing file")
    g.set_defaults(func=cmd_generate)

    m = add_parser(sub, "merge", help="join the shard files of `generate --shard` into one store")
    m.add_argument("shards", nargs="*", help="shard files (default: every OUT-stem.shard-*)")
    m.add_argument("--out", required=True, help="the store to write")
    m.add_argument("--overwrite", action="store_true", help="replace an existing file")
    m.set_defaults(func=cmd_merge)

    v = add_parser(sub, "validate", help="check a store against the schema (exit 1 if invalid)")
    v.add_argument("path", help="the .h5 store")
    v.set_defaults(func=cmd_validate)

    i = add_parser(sub, "info", help="summarize a store")
    i.add_argument("path", help="the .h5 store")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info)

    d = add_parser(sub, "dataset", help="build or check a standard dataset folder (datasets/*)")
    d.add_argument("action", choices=("build", "check"),
                   help="build: generate the missing splits and verify them against "
                        "manifest.json; check: compare the built splits with it")
    d.add_argument("folder", help="folder holding config.toml (e.g. datasets/oscillator)")
    d.add_argument("--workers", type=int, default=1, help="generation worker processes")
    d.add_argument("--overwrite", action="store_true", help="regenerate existing splits")
    d.add_argument("--update-manifest", action="store_true",
                   help="build: record the splits' hashes in manifest.json instead of "
                        "verifying them (written anyway when there is none)")
    d.set_defaults(func=cmd_dataset)


def parse_bounds(items: list[str]) -> tuple[tuple[str, float, float], ...]:
    """``--param`` values as :attr:`GenerationConfig.bounds` (see ``data.parse_bounds``)."""
    from ..data.generate import parse_bounds as parse

    with keyword_flags(bounds="--param"):
        return parse(items)


def parse_exclude(items: list[str]) -> tuple[tuple[tuple[str, float, float], ...], ...]:
    """``--exclude`` values as :attr:`GenerationConfig.exclude`: one box per value."""
    from ..data.generate import parse_bounds as parse

    with keyword_flags(bounds="--exclude"):
        return tuple(parse(item.split(",")) for item in items)


def cmd_problems(args: argparse.Namespace) -> int:
    from .. import registry

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
    from ..data.generate import GenerationConfig, generate
    from ..data.info import summarize
    from ..data.shards import parse_shard, shard_range

    with keyword_flags(**GENERATE_FLAGS):
        shard = None if args.shard is None else parse_shard(args.shard)
        config = GenerationConfig(
            family=args.family, regime=args.regime, tasks=args.tasks, seed=args.seed,
            support=args.support, query=args.query, sampling=args.sampling,
            bounds=parse_bounds(args.param), dtype=args.dtype, compression=args.compression,
            solver_preset=args.solver_preset, exclude=parse_exclude(args.exclude),
        )
        path = generate(config, args.out, workers=args.workers, resume=args.resume,
                        overwrite=args.overwrite, skip_space_check=args.skip_space_check,
                        shard=shard)
    if shard is not None:
        lo, hi = shard_range(args.tasks, *shard)
        print(f"wrote {path}: shard {shard[0]}/{shard[1]}, tasks {lo}..{hi - 1}; join the "
              f"shards with: scimeta merge --out {args.out}")
        return 0
    s = summarize(path)
    print(f"wrote {path}: {s['tasks']} tasks, "
          + ", ".join(f"{k} {v}" for k, v in s["status_counts"].items() if v))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from ..data.info import summarize
    from ..data.shards import merge

    with keyword_flags(overwrite="--overwrite", out="--out"):
        path = merge(args.shards, args.out, overwrite=args.overwrite)
    s = summarize(path)
    print(f"wrote {path}: {s['tasks']} tasks, "
          + ", ".join(f"{k} {v}" for k, v in s["status_counts"].items() if v))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from ..data.validate import notes, validate

    problems = validate(args.path)
    if not problems:
        extra = "; ".join(notes(args.path))
        print(f"{args.path}: valid (schema v1)" + (f"; {extra}" if extra else ""))
        return 0
    for p in problems:
        print(f"{args.path}: {p}", file=sys.stderr)
    return 1


def cmd_dataset(args: argparse.Namespace) -> int:
    from ..data import manifest

    if args.action == "build":
        with keyword_flags(**DATASET_FLAGS):
            path = manifest.build(args.folder, workers=args.workers, overwrite=args.overwrite,
                                  update_manifest=args.update_manifest)
        print(f"built {args.folder}; manifest {path}")
        return 0
    problems = manifest.check(args.folder)
    for p in problems:
        print(f"{args.folder}: {p}", file=sys.stderr)
    if not problems:
        print(f"{args.folder}: every split matches its manifest")
    return 1 if problems else 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..data.info import format_summary, summarize

    s = summarize(args.path)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0
