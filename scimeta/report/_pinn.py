"""The meta-learned PINN initialisation protocol (``bench/meta_pinn.py``) in the report.

That script writes ``meta_pinn.nc``: the relative L2 error of each init's
physics-informed adaptation per split, setting (zero data or 10 data points), step
budget and test task (``rel_l2``), the steps to reach 1e-2 (``steps_to_1e-2``), the
λ and Adam rate chosen on the validation band (``chosen_weight``, ``chosen_rate``;
older files hold λ alone), with its command, wall times and
machine as attributes. This module finds such files, tabulates them (median and
interquartile range per budget, steps to 1e-2) and draws the adaptation curves; the
script writes its own ``table.md`` and figure with the same functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ._render import Block

#: the relative L2 error the protocol counts the steps to
THRESHOLD = 1e-2
#: variables that mark a file as the protocol's results
_VARS = ("rel_l2", "steps_to_1e-2", "chosen_weight")


def find_pinn(root: Path) -> list[Path]:
    """Every ``meta_pinn.nc`` under ``root`` that holds the protocol's variables."""
    import xarray as xr

    found = []
    for path in sorted(root.rglob("meta_pinn.nc")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                ok = all(v in ds for v in _VARS)
        except (OSError, ValueError):
            continue
        if ok:
            found.append(path)
    return found


def _fmt(v: float) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def split_tables(ds: Any) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per split: its heading, the header and the rows (setting, init, λ, median
    [IQR] relative L2 at each budget, steps to 1e-2: the median, counting tasks that
    never reach it as infinite, and how many reached it)."""
    budgets = [int(s) for s in ds["step"].values]
    steps = max(budgets)
    param = str(ds.attrs.get("varied_param", ""))
    symbol = str(ds.attrs.get("symbol", param))
    has_rate = "chosen_rate" in ds
    header = ["setting", "init", "λ", *(["Adam rate"] if has_rate else []),
              *(f"@{b}" for b in budgets), "steps to 1e-2 (median; reached)"]
    out = []
    for split in ds["split"].values:
        nu = ds[param].sel(split=split).values if param in ds else np.array([np.nan])
        heading = (f"split `{split}` ({symbol} ∈ [{np.nanmin(nu):.3g}, {np.nanmax(nu):.3g}], "
                   f"{int(np.isfinite(nu).sum())} tasks)") if np.isfinite(nu).any() \
            else f"split `{split}`"
        rows = []
        for setting in ds["setting"].values:
            for init in ds["init"].values:
                r = ds["rel_l2"].sel(split=split, init=init, setting=setting).values
                cells = []
                for row in r:
                    q = (np.nanpercentile(row, [25, 50, 75]) if np.isfinite(row).any()
                         else [np.nan] * 3)
                    cells.append(f"{_fmt(q[1])} [{_fmt(q[0])}, {_fmt(q[2])}]")
                st = ds["steps_to_1e-2"].sel(split=split, init=init, setting=setting).values
                st = st[np.isfinite(nu)] if param in ds else st
                hit = np.isfinite(st)
                if hit.sum() * 2 > len(st):
                    reach = f"{np.median(np.where(hit, st, np.inf)):.0f}; {hit.sum()}/{len(st)}"
                else:
                    reach = f"not reached in {steps} (median); {hit.sum()}/{len(st)}"
                w = float(ds["chosen_weight"].sel(init=init, setting=setting))
                rate = ([f"{float(ds['chosen_rate'].sel(init=init, setting=setting)):g}"]
                        if has_rate else [])
                rows.append([str(setting), str(init), f"{w:g}", *rate, *cells, reach])
        out.append((heading, header, rows))
    return out


def caption(ds: Any) -> str:
    """What the tables show."""
    symbol = str(ds.attrs.get("symbol", ds.attrs.get("varied_param", "the parameter")))
    what = "λ and the Adam rate" if "chosen_rate" in ds else "λ"
    return (f"Median [IQR] relative L2 over the test tasks; {what} chosen on validation "
            f"{symbol}, per init and setting.")


def markdown_table(ds: Any) -> str:
    """The tables as markdown (the script's ``table.md``)."""
    lines: list[str] = []
    for heading, header, rows in split_tables(ds):
        lines += [f"### {heading}", "", "| " + " | ".join(header) + " |",
                  "|---" * len(header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    lines.append(caption(ds))
    return "\n".join(lines) + "\n"


def curves_png(ds: Any, path: Path) -> Path:
    """Median relative L2 against Adam steps, per split (rows) and setting (columns),
    one line per init, the 1e-2 threshold dotted; written atomically (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..runtime.atomic import save_figure

    splits = list(ds["split"].values)
    fig, axes = plt.subplots(len(splits), len(ds["setting"]), squeeze=False,
                             figsize=(5 * len(ds["setting"]), 3.5 * len(splits)))
    x = np.maximum(ds["step"].values, 1)
    try:
        for i, split in enumerate(splits):
            for j, setting in enumerate(ds["setting"].values):
                ax = axes[i][j]
                for init in ds["init"].values:
                    r = ds["rel_l2"].sel(split=split, init=init, setting=setting).values
                    ax.plot(x, np.nanmedian(r, -1), marker="o", label=str(init))
                ax.axhline(THRESHOLD, color="grey", ls=":")
                ax.set(xscale="log", yscale="log", title=f"{split}, {setting}",
                       xlabel="Adam steps (0 plotted at 1)", ylabel="median relative L2")
                ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, path, dpi=120)
    finally:
        plt.close(fig)
    return Path(path)


def pinn_blocks(path: Path, fig_dir: Path, doc_dir: Path) -> list[Block]:
    """Heading, provenance (command, wall times, machine), the tables and the
    adaptation-curve figure of one ``meta_pinn.nc``."""
    import xarray as xr

    from ._figures import folder_tag, have_matplotlib, image_block

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    attrs = ds.attrs
    walls = json.loads(attrs.get("wall_times", "{}") or "{}")
    machine = {k.removeprefix("hardware_"): v for k, v in attrs.items()
               if k.startswith("hardware_")}
    blocks: list[Block] = [
        ("h", 2, f"Meta-learned PINN initialisation: {attrs.get('family', '?')} "
                 f"(regime `{attrs.get('regime', '?')}`"
                 f"{', smoke size' if int(attrs.get('smoke', 0)) else ''})"),
        ("p", f"Results `{path}` of `{attrs.get('command', '?')}`. Physics-informed "
              "adaptation (residual + initial/boundary conditions, optionally 10 data "
              "points) to parameters outside the training band, from each init; no "
              "published figure is compared."),
        ("list", [f"wall time: {', '.join(f'{k} {v:g} s' for k, v in walls.items())}",
                  "machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
                  f"training tasks: {attrs.get('training_tasks', '?')}; seeds: "
                  f"{attrs.get('seeds', '?')}"]),
    ]
    for heading, header, rows in split_tables(ds):
        blocks += [("h", 3, heading), ("table", header, rows, caption(ds))]
    if have_matplotlib():
        fig_dir.mkdir(parents=True, exist_ok=True)
        png = curves_png(ds, fig_dir / f"{folder_tag(path.parent)}-meta_pinn.png")
        blocks.append(image_block(png, doc_dir, f"adaptation curves, {attrs.get('family', '')}"))
    return blocks
