"""CLI verb ``scimeta suite SUITE.toml``: generate the stores, train the runs and
evaluate them as a suite file declares, skipping the steps already done."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_parser


def add_commands(sub) -> None:
    c = add_parser(sub, "suite", help="run a problem suite: generate its stores, train its "
                   "runs and evaluate them in dependency order, skipping finished steps")
    c.add_argument("suite", help="the suite file (TOML; see docs/scale-out.md)")
    c.add_argument("--out", help="output folder: stores/, runs/ and the status file "
                   "suite.json (default: the suite file's name without .toml, in the "
                   "working directory)")
    c.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these steps (store, run or evaluation names) and the "
                        "steps they need (default: every step)")
    c.add_argument("--dry-run", action="store_true",
                   help="print each step and whether it is done or to run; run nothing")
    c.set_defaults(func=cmd_suite)


def _line(rec: dict) -> None:
    seconds = f" {rec['seconds']:.1f} s" if "seconds" in rec else ""
    print(f"{rec['status']:>8}  {rec['step']:<32} {rec['output']}{seconds}",
          flush=True)


def cmd_suite(args: argparse.Namespace) -> int:
    from ..train.suite import run_suite

    out = args.out or Path(args.suite).stem
    status = run_suite(args.suite, out, only=args.only, dry_run=args.dry_run,
                       on_step=_line, progress=None)
    if not args.dry_run:
        print(f"suite: {len(status['steps'])} step(s) finished; status in "
              f"{Path(out) / 'suite.json'}")
    return 0
