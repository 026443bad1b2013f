"""CLI verb ``scimeta check FAMILY [--quick]``: run the family contract on a registered
family (built-in or installed through an entry point) and print one row per check."""

from __future__ import annotations

import argparse

from .common import add_parser


def add_commands(sub) -> None:
    c = add_parser(sub, "check", help="run the family contract: the checks every task "
                   "family must pass (exit 1 if one fails)")
    c.add_argument("family", help="a registered family (see `scimeta problems`)")
    c.add_argument("--quick", action="store_true",
                   help="draw from the train regime only and keep PDE solves to their first "
                        "output interval (default: every regime of each train/test split)")
    c.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from ..contract import check_family

    report = check_family(args.family, quick=args.quick)
    print(report.table())
    return 0 if report.passed else 1
