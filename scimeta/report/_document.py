"""The report's content, as blocks (:mod:`._render`), from collected results."""

from __future__ import annotations

import math
import os
import platform
import shlex
from collections import defaultdict
from pathlib import Path

from ._collect import Results
from ._compare import Comparison, compare
from ._figures import adaptation_png, have_matplotlib, image_block
from ._render import Block

CELL_HEADER = ["evaluation", "run", "init", "optimizer", "budget", "median MSE",
               "diverged", "vs random", "vs joint"]
PUBLISHED_HEADER = ["published row", "method", "setting", "published", "source", "ours",
                    "evaluation", "diverged", "ours / published", "verdict",
                    "within published ±"]


def num(v: float, digits: int = 4) -> str:
    """``v`` to ``digits`` significant figures; ``n/a`` when not finite."""
    return f"{v:.{digits}g}" if isinstance(v, float | int) and math.isfinite(v) else "n/a"


def _ratio(cell: dict, ref: str) -> str:
    v = float(cell.get(f"ratio_to_{ref}", math.nan))
    if not math.isfinite(v):
        return "–"
    low, high = (float(cell.get(f"ratio_to_{ref}{e}", math.nan)) for e in ("_low", "_high"))
    return f"{v:.3g} [{num(low, 3)}, {num(high, 3)}]" if math.isfinite(low) else f"{v:.3g}"


def _cell_tables(res: Results) -> list[Block]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for c in res.cells:
        groups[(c["family"], c["regime"])].append(c)
    blocks: list[Block] = []
    for (family, regime), cells in sorted(groups.items()):
        rows = [[c["evaluation"], c["run"], c["init"], c["optimizer"], str(c["budget"]),
                 num(c["median_mse"]), str(c["n_diverged"]), _ratio(c, "random"),
                 _ratio(c, "joint")] for c in cells]
        blocks += [("h", 3, f"Family `{family}`, regime `{regime}`"),
                   ("table", CELL_HEADER, rows,
                    "Median query MSE over the test tasks at each evaluation's largest "
                    "budget; ratios are our median over the reference init's, with their "
                    "95% bootstrap interval; \"–\": none, or a diverged task on either "
                    "side.")]
    return blocks


def _published_row(c: Comparison) -> list[str]:
    p = c.published
    pub = num(p.value, 3) + (f" ± {num(p.spread, 3)}" if p.spread is not None else "")
    ours = (f"{num(c.ours)} ± {num(c.half_width, 3)}" if math.isfinite(c.ours)
            else "no matching result")
    ratio = num(c.ratio, 3) if math.isfinite(c.ours) else "–"
    div = f"{c.n_diverged}/{c.n_tasks}" if c.n_tasks else "–"
    return [p.key, p.method, p.setting, pub, p.cite, ours, c.evaluation, div, ratio,
            c.verdict, c.within_spread]


def _published(res: Results) -> list[Block]:
    if not res.published:
        return []
    comps = compare(res.published, res.evaluations)
    metrics = sorted({c.published.metric for c in comps})
    sources = sorted({f"{c.published.cite}: {c.published.source}; ± is "
                      f"{c.published.spread_kind}" for c in comps})
    return [("h", 3, "Ours beside the published figures"),
            ("table", PUBLISHED_HEADER, [_published_row(c) for c in comps],
             "Metric: " + "; ".join(metrics) + ". Ours: mean over the tasks that did not "
             "diverge ± 1.96 standard errors (diverged tasks counted, never averaged "
             "in). \"at or below\": ours / published ≤ 1. The protocols differ in ways "
             "docs/protocols.md lists."),
            ("p", "Sources:"), ("list", sources)]


def _figures(res: Results, fig_dir: Path, doc_dir: Path) -> list[Block]:
    blocks: list[Block] = [("h", 3, "Adaptation curves")]
    if not res.evaluations:
        return []
    if not have_matplotlib():
        return [*blocks, ("p", "Plots skipped: matplotlib is not installed "
                          "(`pip install scimeta[plot]`).")]
    fig_dir.mkdir(parents=True, exist_ok=True)
    for e in res.evaluations:
        png = adaptation_png(e, fig_dir / f"{res.folder.name}-{e.run}-{e.name}.png")
        blocks.append(image_block(png, doc_dir, f"adaptation curves of {e.name} ({e.run})"))
    return blocks


def _machine(m: dict) -> str:
    """One line from run.json's ``machine`` entry."""
    gpu = f", GPU {m['gpu']} (CUDA {m.get('cuda')})" if m.get("gpu") else ""
    return (f"{m.get('platform', '?')}, {m.get('processor', '?')}, "
            f"{m.get('cpus_usable', '?')} of {m.get('cpus', '?')} CPUs usable, "
            f"{m.get('torch_threads', '?')} torch threads, {m.get('ranks', 1)} rank(s){gpu}, "
            f"Python {m.get('python', '?')}, torch {m.get('torch', '?')}")


def _times(res: Results) -> list[Block]:
    kinds: dict[str, list[float]] = defaultdict(list)
    for r in res.steps:
        if r.get("seconds") is not None:
            kinds[r["step"].split(":", 1)[0]].append(float(r["seconds"]))
    blocks: list[Block] = [("h", 3, "Hardware and wall times")]
    devices = sorted({f"{r['device']} ({r['dtype']})" for r in res.runs})
    versions = sorted({str(r["version"]) for r in res.runs})
    machines = sorted({_machine(r["machine"]) for r in res.runs if r.get("machine")})
    where = ("Trained on " + "; ".join(machines) + "." if machines else
             "The runs record no machine description (written before run.json had one).")
    blocks.append(("p", f"{where} Devices and dtypes: {', '.join(devices) or 'n/a'}; "
                   f"scimeta version {', '.join(versions) or 'n/a'}. Wall times are from "
                   "the suite status."))
    if kinds:
        rows = [[k, str(len(v)), num(sum(v))] for k, v in kinds.items()]
        rows.append(["all", str(sum(len(v) for v in kinds.values())),
                     num(sum(sum(v) for v in kinds.values()))])
        blocks.append(("table", ["steps", "count", "wall s (sum)"], rows, ""))
    if res.runs:
        blocks.append(("table", ["run", "algorithm", "iterations", "device", "wall s"],
                       [[r["run"], str(r["algorithm"]), str(r["iterations"]),
                         str(r["device"]), num(r["seconds"])] for r in res.runs], ""))
    seconds = {r["step"]: r.get("seconds") for r in res.steps}
    if res.evaluations:
        rows = [[e.name, e.run, str(e.n_tasks), ", ".join(map(str, e.budgets)),
                 num(float(seconds.get(f"evaluation:{e.name}") or math.nan)),
                 num(e.seconds_per_task, 3)] for e in res.evaluations]
        blocks.append(("table", ["evaluation", "run", "tasks", "budgets", "wall s",
                                 "s per task (median)"], rows, ""))
    return blocks


def _commands(res: Results) -> list[Block]:
    recorded = sorted({str(r["command"]) for r in res.steps if r.get("command")})
    suite = res.suite_file or "SUITE.toml"
    blocks: list[Block] = [("h", 3, "Commands"),
                           ("p", f"Suite file: `{suite}`"
                            + (f" (found at `{res.suite_path}`)." if res.suite_path else ".")),
                           ("code", "OMP_NUM_THREADS=1 " + shlex.join(
                               ["scimeta", "suite", suite, "--out", str(res.folder)])
                            + "\n" + shlex.join(["scimeta", "suite", suite, "--out",
                                                 str(res.folder), "--report"]))]
    if recorded:
        blocks += [("p", "Recorded in the suite status:"),
                   ("list", [f"`{c}`" for c in recorded])]
    return blocks


def suite_blocks(res: Results, fig_dir: Path, doc_dir: Path) -> list[Block]:
    """Every section of one results folder."""
    blocks: list[Block] = [("h", 2, f"Suite `{res.folder.name}`"),
                           ("p", f"Results folder `{res.folder}`; tables read from "
                            f"{res.cells_source}.")]
    blocks += [("p", n) for n in res.notes]
    blocks += _cell_tables(res) or [("p", "No evaluation cells.")]
    blocks += _published(res)
    blocks += _figures(res, fig_dir, doc_dir)
    blocks += _times(res)
    blocks += _commands(res)
    return blocks


def header_blocks(root: Path, command: str, version: str, when: str) -> list[Block]:
    """The title and what rendered the report."""
    machine = (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
               f"Python {platform.python_version()}")
    return [("h", 1, f"scimeta report: {root.name}"),
            ("p", f"Rendered {when} by scimeta {version} from `{root}` with `{command}`, "
                  f"on {machine} (the machine that rendered the report, not necessarily "
                  "the one that produced the results).")]
