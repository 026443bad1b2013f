"""``OUT/report.md``: one markdown table of every evaluation of a suite's output.

One row per (evaluation, init, optimizer) at the evaluation's largest budget, from
the summary variables that :func:`.report.summarize` wrote into each ``.nc``
(``median_mse``, ``n_diverged``, ``ratio_to_random``, ``ratio_to_joint``), with the
wall times of the evaluation and of its run from the suite's status, then the
command that produced each evaluation.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import RunError
from .suite_status import suite_status, write_text

COLUMNS = ("evaluation", "run", "init", "optimizer", "budget", "median MSE", "diverged",
           "vs random", "vs joint", "vs data-only", "eval s", "run s")


def _num(v: float) -> str:
    return f"{v:.3g}" if isinstance(v, float) and math.isfinite(v) else "n/a"


def _ratio(row: dict, ref: str, ok: bool = True) -> str:
    """The ratio with its interval; "–" when either side has a diverged task (``ok``
    False: a ratio to a failure is no evidence) or there is none."""
    v = row.get(f"ratio_to_{ref}", math.nan)
    if not ok or row.get("n_diverged") or not math.isfinite(v):
        return "–"
    low, high = row.get(f"ratio_to_{ref}_low", math.nan), row.get(f"ratio_to_{ref}_high",
                                                                   math.nan)
    return f"{v:.3g} [{_num(low)}, {_num(high)}]" if math.isfinite(low) else f"{v:.3g}"


def _redo(out: Path, step: str) -> str:
    """The command that redoes ``step``, for a record written without one."""
    try:
        suite = json.loads((out / "suite.json").read_text())["suite"]
    except (OSError, ValueError, KeyError, TypeError):
        suite = "SUITE"
    return f"scimeta suite {suite} --out {out} --only {step}"


def report_rows(out: str | os.PathLike) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """The table's rows and ``(evaluation, command)`` pairs of every evaluation that
    the status of ``out`` records and whose ``.nc`` exists."""
    import xarray as xr

    from .report import summary_table

    steps = suite_status(out)["steps"]
    seconds = {r["step"]: r.get("seconds") for r in steps}
    rows: list[list[str]] = []
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
            rows.append([name, run, row["init"], opt, str(row["budget"]),
                         _num(row["median"]), str(row["n_diverged"]),
                         _ratio(row, "random", ("random", opt) not in failed),
                         _ratio(row, "joint", ("joint", opt) not in failed),
                         _ratio(row, "data_only",
                                (row["init"], opt.removesuffix("+physics")) not in failed),
                         _num(float(rec.get("seconds") or math.nan)),
                         _num(float(run_s if run_s is not None else math.nan))])
        commands.append((name, str(rec.get("command") or _redo(Path(out), rec["step"]))))
    return rows, commands


def write_report(out: str | os.PathLike) -> str:
    """Write ``OUT/report.md`` (atomically) and return its text.

    Args:
        out: a suite's output folder (its ``status/`` or ``suite.json`` say which
            evaluations exist).

    Returns:
        The markdown: a title, the table, the commands. A :class:`RunError` when
        ``out`` holds no status.
    """
    out = Path(out)
    if not (out / "status").is_dir() and not (out / "suite.json").is_file():
        raise RunError(f"out={str(out)!r}: no suite output here (no status/ or suite.json); "
                       "run `scimeta suite SUITE --out OUT` first")
    rows, commands = report_rows(out)
    lines = [f"# Suite report: {out.name}", ""]
    if rows:
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", "Median query MSE over tasks at the largest budget; ratios are median "
                  "MSE over the reference's (95% bootstrap interval); wall times in "
                  "seconds from the status.", "", "## Commands", ""]
        lines += [f"- `{name}`: `{cmd}`" for name, cmd in commands]
    else:
        lines.append("No finished evaluation yet.")
    text = "\n".join(lines) + "\n"
    write_text(out / "report.md", text)
    return text
