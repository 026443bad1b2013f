"""CLI verb ``scimeta report RESULTS_DIR``: one markdown or HTML document from the
results under a folder (scimeta.report)."""

from __future__ import annotations

import argparse

from .common import add_parser


def add_commands(sub) -> None:
    c = add_parser(sub, "report", help="render one document (markdown or standalone "
                   "HTML) from the suite outputs under a folder: evaluation tables, ours "
                   "beside the published figures, adaptation-curve plots, wall times and "
                   "commands")
    c.add_argument("results_dir", metavar="RESULTS_DIR",
                   help="a folder holding one or more suite output folders")
    c.add_argument("--format", choices=("md", "html"), default="md", dest="fmt",
                   help="markdown or one standalone HTML file")
    c.add_argument("--out", metavar="FILE",
                   help="the document (default: RESULTS_DIR/scimeta-report.md or .html); "
                        "plots go to the folder FILE-stem_figures next to it")
    c.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import build_report

    path = build_report(args.results_dir, args.out, fmt=args.fmt)
    print(f"wrote {path}")
    return 0
