"""``scimeta report``: one document from the results under a folder.

:func:`build_report` walks a folder for suite outputs (and any
``runs/RUN/evaluation/*.nc``), and writes a markdown or standalone HTML document with,
per results folder, the evaluation tables (ratios to the random and joint inits),
our numbers beside the published figures the suite file names
(:mod:`scimeta.report.published`), the adaptation-curve plots (PNG files in a folder
next to the document), the wall times and the commands; then the forecasting
protocol's runs (``results.json``, :mod:`._forecast`) and the meta-learned PINN
protocol's (``meta_pinn.nc``, :mod:`._pinn`) found under the folder. See
docs/report.md.
"""

from __future__ import annotations

import datetime
import logging
import os
import shlex
from pathlib import Path

from ..errors import ConfigError, RunError

log = logging.getLogger(__name__)

FORMATS = ("md", "html")


def default_out(results_dir: str | os.PathLike, fmt: str = "md") -> Path:
    """``RESULTS_DIR/scimeta-report.<fmt>`` (not ``report.md``: a suite folder's
    ``scimeta suite --report`` writes that)."""
    return Path(results_dir) / f"scimeta-report.{fmt}"


def build_report(results_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 fmt: str = "md", command: str | None = None) -> Path:
    """Render the report of every result under ``results_dir`` and write it.

    Args:
        results_dir: a folder holding one or more suite output folders (or one).
        out: the document (default :func:`default_out`); the figures go to the
            folder ``<out stem>_figures`` next to it.
        fmt: ``"md"`` or ``"html"``.
        command: the command line to record (default: the equivalent
            ``scimeta report`` call).

    Returns:
        The document's path. A :class:`RunError` naming ``results_dir`` when it holds
        no results; a :class:`ConfigError` for an unknown ``fmt``.
    """
    from .._version import __version__
    from ..runtime.atomic import write_text
    from ._collect import collect, find_results
    from ._document import header_blocks, suite_blocks
    from ._forecast import find_forecasts, forecast_blocks
    from ._pinn import find_pinn, pinn_blocks
    from ._render import to_html, to_markdown

    if fmt not in FORMATS:
        raise ConfigError(f"fmt={fmt!r}: expected one of {', '.join(FORMATS)}")
    root = Path(results_dir)
    forecasts = find_forecasts(root) if root.is_dir() else []
    pinns = find_pinn(root) if root.is_dir() else []
    try:
        folders = find_results(root)
    except RunError:
        if not forecasts and not pinns:
            raise
        folders = []
    doc = Path(out) if out is not None else default_out(root, fmt)
    doc.parent.mkdir(parents=True, exist_ok=True)
    fig_dir = doc.parent / f"{doc.stem}_figures"
    if command is None:
        command = shlex.join(["scimeta", "report", str(root), "--format", fmt,
                              "--out", str(doc)])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    blocks = header_blocks(root.resolve(), command, __version__, when)
    for folder in folders:
        log.info("report: reading %s", folder)
        blocks += suite_blocks(collect(folder), fig_dir, doc.parent)
    for path in forecasts:
        blocks += forecast_blocks(path, fig_dir, doc.parent)
    for path in pinns:
        blocks += pinn_blocks(path, fig_dir, doc.parent)
    title = f"scimeta report: {root.resolve().name}"
    write_text(doc, to_html(blocks, title) if fmt == "html" else to_markdown(blocks))
    return doc


__all__ = ["FORMATS", "build_report", "default_out"]
