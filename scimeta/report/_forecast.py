"""The LEADS/CoDA forecasting protocol's results (``bench/leads_protocol.py``) in
the report: its ``results.json`` beside the published LEADS figure it compares with,
the command that produced it, and a plot of the forecast error along the horizon per
``forecast-<grid>-<set>.nc`` file beside it."""

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


def command(log: dict[str, Any], path: Path) -> list[str]:
    """The command line of the run: as recorded (``log["argv"]``), or for results
    written before it was, rebuilt from every recorded argument (``log["args"]``;
    flags set, values given, unset ones left out), so the options that shaped the run
    (steps, seed, augmentation, ...) are never dropped."""
    script = ["python", "bench/leads_protocol.py"]
    if isinstance(log.get("argv"), list):
        return script + [str(a) for a in log["argv"]]
    args = dict(log.get("args", {}))
    args.setdefault("system", log["system"])
    args.setdefault("solver_preset", log.get("solver_preset", "accurate"))
    if log.get("level") in ("quick", "smoke"):
        args.setdefault(log["level"], True)
    args.setdefault("out", str(path.parent))
    cmd = list(script)
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False or value == "":  # unset options
            continue
        cmd += [flag] if value is True else [flag, str(value)]
    return cmd


def forecast_blocks(path: Path, fig_dir: Path, doc_dir: Path) -> list[Block]:
    """Heading, provenance and one table of a forecasting run; the LEADS grid's
    in-domain rows carry the published LEADS figure of the family, if any; then one
    PNG in ``fig_dir`` per ``forecast-*.nc`` beside ``path`` (the forecast error
    against time, before and after adaptation), linked relative to ``doc_dir``."""
    data = _load(path)
    assert data is not None
    log = data["log"]
    family, system = log.get("family"), log["system"]
    preset = log.get("solver_preset", "accurate")
    pub = next((p for p in PUBLISHED.values()
                if p.match.get("forecast") and p.match.get("family") == family), None)
    cmd = command(log, path)
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
    return blocks + _error_figures(path, fig_dir, doc_dir)


def _error_figures(path: Path, fig_dir: Path, doc_dir: Path) -> list[Block]:
    """One image block per ``forecast-*.nc`` beside ``path``."""
    from ._figures import folder_tag, have_matplotlib, image_block

    found = sorted(path.parent.glob("forecast-*.nc"))
    if not found:
        return []
    if not have_matplotlib():
        return [("p", f"{len(found)} forecast-error plot(s) left out: matplotlib is not "
                      "installed (`pip install \"scimeta[plot]\"`).")]
    fig_dir.mkdir(parents=True, exist_ok=True)
    tag = folder_tag(path.parent)
    return [image_block(error_png(nc, fig_dir / f"{tag}-{nc.stem}.png"), doc_dir,
                        f"forecast error against time, {nc.stem}") for nc in found]


def error_png(nc: Path, png: Path) -> Path:
    """The forecast error of ``nc`` against time, before and after adaptation (two
    panels), written to ``png`` atomically (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    from ..plot.forecast import plot_forecast_error
    from ..runtime.atomic import save_figure

    with xr.open_dataset(nc, engine="h5netcdf") as ds:
        ds = ds.load()
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 3.6), layout="constrained")
    try:
        for ax, stage in zip(axes, ("none", "tuned"), strict=True):
            plot_forecast_error(ds, ax=ax, stage=stage)
            ax.set_title(f"{ds.attrs.get('system', '')}, {ds.attrs.get('grid', '')} grid, "
                         f"{ds.attrs.get('set', '')}", fontsize="medium")
        save_figure(fig, png, dpi=90)
    finally:
        plt.close(fig)
    return png
