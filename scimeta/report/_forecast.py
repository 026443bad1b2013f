"""The LEADS/CoDA forecasting protocol's results (``bench/leads_protocol.py``) in
the report: its ``results.json`` beside the published LEADS figure it compares with."""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path
from typing import Any

from ._document import num
from ._render import Block
from .published import PUBLISHED


def find_forecasts(root: Path) -> list[Path]:
    """Every ``results.json`` under ``root`` written by the forecasting protocol."""
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "results.json" in files and _load(Path(here) / "results.json") is not None:
            found.append(Path(here) / "results.json")
    return sorted(found)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    rows, log = data.get("rows"), data.get("log")
    ok = isinstance(rows, list) and isinstance(log, dict) and "system" in log \
        and all(isinstance(r, dict) and "grid" in r and "tuned" in r for r in rows)
    return data if ok else None


def _stat(s: dict) -> str:
    mean, std = float(s.get("mean", math.nan)), float(s.get("std", math.nan))
    env = float(s.get("std_env", math.nan))
    out = f"{num(mean, 3)} ± {num(std, 2)}"
    return out + (f" [{num(env, 2)}]" if math.isfinite(env) else "")


def forecast_blocks(path: Path) -> list[Block]:
    """Heading, provenance and one table of a forecasting run; the LEADS grid's
    in-domain rows carry the published LEADS figure of the family, if any."""
    data = _load(path)
    assert data is not None
    log = data["log"]
    family, system = log.get("family"), log["system"]
    preset = log.get("solver_preset", "accurate")
    pub = next((p for p in PUBLISHED.values()
                if p.match.get("forecast") and p.match.get("family") == family), None)
    args = log.get("args", {})
    cmd = ["python", "bench/leads_protocol.py", "--system", str(system),
           "--solver-preset", str(preset), "--out", str(args.get("out", path.parent))]
    if log.get("level") in ("quick", "smoke"):
        cmd.append(f"--{log['level']}")
    blocks: list[Block] = [
        ("h", 2, f"Forecasting protocol: {system} ({preset} solver data)"),
        ("p", f"Results `{path}` of `{shlex.join(cmd)}` (size `{log.get('level', '?')}`). "
              "Test MSE of full rollouts (no teacher forcing), mean ± std over test "
              "trajectories [std of the environment means], before and after fine-tuning "
              "each init on the environment's support trajectories."),
    ]
    header = ["grid", "test set", "init", "adapted", "no adaptation", "after adaptation",
              "diverged", "published", "ours / published"]
    rows = []
    for r in data["rows"]:
        tuned = r["tuned"]
        cmp_pub = pub is not None and r["grid"] == "leads" and r["set"] == "in-domain"
        ours = float(tuned.get("mean", math.nan))
        published = (f"{num(pub.value, 3)} ± {num(pub.spread or math.nan, 3)} ({pub.cite})"
                     if cmp_pub and pub is not None else "")
        ratio = (f"{ours / pub.value:.3g} ({'at or below' if ours <= pub.value else 'above'})"
                 if cmp_pub and pub is not None and math.isfinite(ours) else "")
        rows.append([r["grid"], r["set"], r["init"], str(r.get("adapted", "")),
                     _stat(r.get("none", {})), _stat(tuned),
                     f"{tuned.get('diverged', 0)}/{tuned.get('n', '?')}", published, ratio])
    note = ("" if pub is not None else
            f"No published figure of this protocol for `{family}` is in the registry.")
    blocks.append(("table", header, rows, note))
    return blocks
