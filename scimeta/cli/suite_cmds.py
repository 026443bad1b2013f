"""CLI verb ``scimeta suite SUITE.toml``: generate the stores, train the runs and
evaluate them (posteriors, landscapes) as a suite file declares, skipping the steps
already done; or one array unit of it, its status, its report."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .common import EXIT_REQUEUE, add_parser


def add_commands(sub) -> None:
    c = add_parser(sub, "suite", help="run a problem suite: generate its stores, train its "
                   "runs, evaluate them and fit their posteriors and landscapes in "
                   "dependency order, skipping finished steps")
    c.add_argument("suite", help="the suite file (TOML; see docs/scale-out.md)")
    c.add_argument("--out", help="output folder: stores/, runs/, status/ and the merged "
                   "status file suite.json (default: the suite file's name without .toml, "
                   "in the working directory)")
    c.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these steps (store, run, evaluation, posterior or "
                        "landscape names; KIND:NAME picks one kind) and the steps they "
                        "need (default: every step)")
    c.add_argument("--dry-run", action="store_true",
                   help="print each step and whether it is done or to run; run nothing")
    mode = c.add_mutually_exclusive_group()
    mode.add_argument("--stage", choices=("stores",),
                      help="run only this stage: 'stores' generates every store (the first "
                           "job of a SLURM pipeline, before the --array-index array)")
    mode.add_argument("--array-index", metavar="I",
                      help="run only unit I (0-based; 'auto': from SLURM_ARRAY_TASK_ID): one "
                           "run, its evaluations, posteriors and landscapes and the stores "
                           "they need (see --list-units); status in "
                           "OUT/status/unit-RUN.json")
    mode.add_argument("--list-units", action="store_true",
                      help="print the units with their array indices and steps; run nothing")
    mode.add_argument("--status", action="store_true",
                      help="print the merged status of every step in OUT; run nothing")
    mode.add_argument("--report", action="store_true",
                      help="write OUT/report.md (a markdown table of every finished "
                           "evaluation, and of every posterior) and the same numbers to "
                           "OUT/report.nc, and print the markdown; run nothing")
    c.set_defaults(func=cmd_suite)


def _line(rec: dict) -> None:
    seconds = f" {rec['seconds']:.1f} s" if "seconds" in rec else ""
    print(f"{rec['status']:>8}  {rec['step']:<32} {rec['output']}{seconds}",
          flush=True)


def _command(args: argparse.Namespace, out: str) -> str:
    words = ["scimeta", "suite", args.suite, "--out", out]
    if args.only:
        words += ["--only", *args.only]
    if args.stage:
        words += ["--stage", args.stage]
    if args.array_index is not None:
        words += ["--array-index", args.array_index]
    return shlex.join(words)


def cmd_suite(args: argparse.Namespace) -> int:
    from ..train import suite

    out = args.out or Path(args.suite).stem
    if args.report:
        from ..train.suite_report import write_report

        print(write_report(out), end="")
        print(f"wrote {Path(out) / 'report.md'} and {Path(out) / 'report.nc'}")
        return 0
    if args.list_units or args.status:
        path = Path(args.suite)
        spec = suite.load_suite(path)
        steps = suite.plan(spec, Path(out).absolute(), path.resolve().parent)
        if args.status:
            for rec in suite.suite_status(out, [s.id for s in steps])["steps"]:
                _line(rec)
            return 0
        found = suite.units(steps)
        print(f"{len(found)} unit(s); submit with sbatch --array=0-{max(len(found) - 1, 0)}")
        for u in found:
            print(f"{u.index:>4}  {u.name:<24} {' '.join(s.id for s in u.steps)}")
        return 0
    status = suite.run_suite(args.suite, out, only=args.only, dry_run=args.dry_run,
                             stage=args.stage, array_index=args.array_index, on_step=_line,
                             progress=None, command=_command(args, out))
    if status["stopped"]:
        print(f"suite: stopped by {status['stopped']}; run the same command again to "
              f"continue (exit status {EXIT_REQUEUE}: requeue the job)")
        return EXIT_REQUEUE
    if not args.dry_run:
        print(f"suite: {len(status['steps'])} step(s) finished; status in "
              f"{Path(out) / 'suite.json'}")
    return 0
