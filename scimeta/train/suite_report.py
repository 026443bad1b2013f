"""``OUT/report.md`` and ``OUT/report.nc``: every evaluation (and posterior) of a
suite's output.

One row per (evaluation, init, optimizer) at the evaluation's largest budget, from
the summary variables that :func:`.report.summarize` wrote into each ``.nc``
(``median_mse``, ``n_diverged``, ``ratio_to_random``, ``ratio_to_joint``), with the
wall times of the evaluation and of its run from the suite's status; then one row
per posterior step (90% coverage, NLL); then the command that produced each. The
same numbers go to ``report.nc`` (:mod:`.suite_report_nc`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import RunError
from ..runtime.atomic import write_netcdf, write_text
from .suite_status import suite_status

COLUMNS = ("evaluation", "run", "init", "optimizer", "budget", "median MSE", "diverged",
           "vs random", "vs joint", "vs data-only", "eval s", "run s")


def _num(v: float) -> str:
    return f"{v:.3g}" if isinstance(v, float) and math.isfinite(v) else "n/a"


def _ratio(cell: dict, ref: str) -> str:
    """The ratio with its interval; "–" when there is none (NaN in the cell)."""
    v = cell[f"ratio_to_{ref}"]
    if not math.isfinite(v):
        return "–"
    low, high = cell[f"ratio_to_{ref}_low"], cell[f"ratio_to_{ref}_high"]
    return f"{v:.3g} [{_num(low)}, {_num(high)}]" if math.isfinite(low) else f"{v:.3g}"


def _ratios(row: dict, ref: str, ok: bool) -> dict[str, float]:
    """``ratio_to_<ref>`` and its ``_low``/``_high`` from a summary row; NaN when
    either side has a diverged task (``ok`` False: a ratio to a failure is no
    evidence) or there is none."""
    keys = [f"ratio_to_{ref}{s}" for s in ("", "_low", "_high")]
    v = row.get(keys[0], math.nan)
    if not ok or row.get("n_diverged") or not math.isfinite(v):
        return dict.fromkeys(keys, math.nan)
    return {k: float(row.get(k, math.nan)) for k in keys}


def _redo(out: Path, step: str) -> str:
    """The command that redoes ``step``, for a record written without one."""
    try:
        suite = json.loads((out / "suite.json").read_text())["suite"]
    except (OSError, ValueError, KeyError, TypeError):
        suite = "SUITE"
    return f"scimeta suite {suite} --out {out} --only {step}"


def report_cells(out: str | os.PathLike) -> tuple[list[dict], list[tuple[str, str]]]:
    """The report's cells and ``(step, command)`` pairs of every evaluation that the
    status of ``out`` records and whose ``.nc`` exists.

    A cell is one (evaluation, init, optimizer) at the evaluation's largest budget:
    ``evaluation``, ``run``, ``init``, ``optimizer`` (str), ``budget``,
    ``n_diverged`` (int), ``median_mse``, ``ratio_to_<ref>`` with ``_low``/``_high``
    for ``random``, ``joint``, ``data_only`` (NaN where the table shows "–"),
    ``eval_seconds`` and ``run_seconds`` (NaN when not recorded).
    """
    import xarray as xr

    from .report import summary_table

    steps = suite_status(out)["steps"]
    seconds = {r["step"]: r.get("seconds") for r in steps}
    cells: list[dict] = []
    commands: list[tuple[str, str]] = []
    for rec in (r for r in steps if r["step"].startswith("evaluation:")):
        nc = Path(rec["output"])
        if not nc.is_file():
            continue
        name, run = rec["step"].split(":", 1)[1], nc.parent.parent.name
        try:
            with xr.open_dataset(nc, engine="h5netcdf") as ds:
                table = summary_table(ds.load())
        except (OSError, KeyError, ValueError) as exc:
            raise RunError(f"{str(nc)!r}: not an evaluation written by scimeta evaluate "
                           f"({exc})") from None
        run_s = seconds.get(f"run:{run}")
        failed = {(r["init"], r["optimizer"]) for r in table if r["n_diverged"]}
        for row in table:
            opt = row["optimizer"]
            cells.append({
                "evaluation": name, "run": run, "init": str(row["init"]), "optimizer": opt,
                "budget": int(row["budget"]), "median_mse": float(row["median"]),
                "n_diverged": int(row["n_diverged"]),
                **_ratios(row, "random", ("random", opt) not in failed),
                **_ratios(row, "joint", ("joint", opt) not in failed),
                **_ratios(row, "data_only",
                          (row["init"], opt.removesuffix("+physics")) not in failed),
                "eval_seconds": float(rec.get("seconds") or math.nan),
                "run_seconds": float(run_s if run_s is not None else math.nan)})
        commands.append((rec["step"], str(rec.get("command") or _redo(Path(out), rec["step"]))))
    return cells, commands


def format_cell(cell: dict) -> list[str]:
    """A cell of :func:`report_cells` as the table's row (:data:`COLUMNS`)."""
    return [cell["evaluation"], cell["run"], cell["init"], cell["optimizer"],
            str(cell["budget"]), _num(cell["median_mse"]), str(cell["n_diverged"]),
            _ratio(cell, "random"), _ratio(cell, "joint"), _ratio(cell, "data_only"),
            _num(cell["eval_seconds"]), _num(cell["run_seconds"])]


def report_rows(out: str | os.PathLike) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """The table's rows (:func:`format_cell`) and ``(step, command)`` pairs."""
    cells, commands = report_cells(out)
    return [format_cell(c) for c in cells], commands


def posterior_cells(out: str | os.PathLike) -> tuple[list[dict], list[tuple[str, str]]]:
    """One cell per posterior step that the status of ``out`` records and whose ``.nc``
    exists: ``posterior``, ``run``, ``init``, ``structure``, ``tasks``, ``coverage_90``
    (mean over tasks of the 90% band's coverage), ``nll`` (mean over tasks, nats per
    value), ``seconds``; and the ``(step, command)`` pairs."""
    from .suite_analysis import posterior_summary

    cells: list[dict] = []
    commands: list[tuple[str, str]] = []
    for rec in (r for r in suite_status(out)["steps"] if r["step"].startswith("posterior:")):
        nc = Path(rec["output"])
        if not nc.is_file():
            continue
        try:
            summary = posterior_summary(nc)
        except (OSError, KeyError, ValueError) as exc:
            raise RunError(f"{str(nc)!r}: not a posterior written by scimeta posterior "
                           f"({exc})") from None
        cells.append({"posterior": rec["step"].split(":", 1)[1], "run": nc.parent.parent.name,
                      **summary, "seconds": float(rec.get("seconds") or math.nan)})
        commands.append((rec["step"], str(rec.get("command") or _redo(Path(out), rec["step"]))))
    return cells, commands


def _posterior_lines(cells: list[dict]) -> list[str]:
    cols = ("posterior", "run", "init", "structure", "tasks", "90% coverage", "NLL", "s")
    lines = ["## Posteriors", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += [f"| {c['posterior']} | {c['run']} | {c['init']} | {c['structure']} | "
              f"{c['tasks']} | {_num(c['coverage_90'])} | {_num(c['nll'])} | "
              f"{_num(c['seconds'])} |" for c in cells]
    return [*lines, "", "Means over tasks of the 90% band's coverage of the query values "
            "and of the negative log-likelihood (nats per value).", ""]


def write_report(out: str | os.PathLike) -> str:
    """Write ``OUT/report.md`` and ``OUT/report.nc`` (each atomically) and return the
    markdown.

    Args:
        out: a suite's output folder (its ``status/`` or ``suite.json`` say which
            evaluations and posteriors exist).

    Returns:
        The markdown: a title, the evaluation table, the posterior table (when the
        suite has posterior steps), the commands. A :class:`RunError` when ``out``
        holds no status. ``report.nc``: :func:`.suite_report_nc.report_dataset`.
    """
    from .suite_report_nc import report_dataset

    out = Path(out)
    if not (out / "status").is_dir() and not (out / "suite.json").is_file():
        raise RunError(f"out={str(out)!r}: no suite output here (no status/ or suite.json); "
                       "run `scimeta suite SUITE --out OUT` first")
    cells, commands = report_cells(out)
    posteriors, post_commands = posterior_cells(out)
    lines = [f"# Suite report: {out.name}", ""]
    if cells:
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(format_cell(c)) + " |" for c in cells]
        lines += ["", "Median query MSE over tasks at the largest budget; ratios are median "
                  "MSE over the reference's (95% bootstrap interval); wall times in "
                  "seconds from the status.", ""]
    else:
        lines += ["No finished evaluation yet.", ""]
    if posteriors:
        lines += _posterior_lines(posteriors)
    if commands or post_commands:
        lines += ["## Commands", ""]
        lines += [f"- `{name}`: `{cmd}`" for name, cmd in (*commands, *post_commands)]
    text = "\n".join(lines).rstrip("\n") + "\n"
    write_netcdf(report_dataset(cells, posteriors), out / "report.nc")
    write_text(out / "report.md", text)
    return text
