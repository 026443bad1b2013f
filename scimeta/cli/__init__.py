"""The ``scimeta`` command line: a thin layer over library calls.

Every verb maps to a function a notebook can call too; errors a user can cause
are printed as one line (``scimeta: error: ...``) with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._version import __version__
from ..errors import ScimetaError
from . import (
    bayes_cmds,
    check_cmd,
    data_cmds,
    landscape_cmds,
    meta_cmds,
    report_cmd,
    suite_cmds,
)

COMMAND_MODULES = (meta_cmds, data_cmds, check_cmd, landscape_cmds, bayes_cmds, suite_cmds,
                   report_cmd)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, like every other scimeta error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"scimeta: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="scimeta", description="Physics-informed meta-learning for ODE/PDE task families."
    )
    parser.add_argument("--version", action="version", version=f"scimeta {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``scimeta`` command. Run as the program (``argv`` None: the command line),
    it first keeps large CPU buffers in the heap (:mod:`scimeta.runtime.allocator`;
    ``SCIMETA_MALLOC=system`` opts out); called with ``argv`` it leaves the calling
    process's allocator alone."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1
                                                 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if argv is None:
        from ..runtime.allocator import tune_allocator

        tune_allocator()
    try:
        return int(args.func(args) or 0)
    except ScimetaError as exc:
        print(f"scimeta: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scimeta: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `scimeta info x | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
