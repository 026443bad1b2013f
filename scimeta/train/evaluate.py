"""Does the springboard beat the bullseye? Adaptation curves of several inits.

Every init (the meta-learned one, first-order MAML, the joint-trained network, a
random network) is adapted to each held-out task the same way — the run's inner
loop: plain gradient steps of size ``meta.inner_lr`` on the support set (plus the
physics residual when the run uses it in the inner loop) — and its query MSE is
recorded after 0..N steps.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .. import registry
from ..errors import ConfigError
from .loop import load_init, open_reader, resolve_device
from .models import build_learner, build_model
from .run_dir import RunDir

log = logging.getLogger(__name__)

INIT_ORDER = ("maml", "fomaml", "joint", "random")


def available_inits(rd: RunDir) -> list[str]:
    """Trained inits of the run (labelled by role) plus ``random``."""
    names = [p.stem for p in sorted(rd.inits.glob("*.pt"))]
    names.sort(key=lambda n: INIT_ORDER.index(n) if n in INIT_ORDER else len(INIT_ORDER))
    return [*names, "random"]


def evaluate(
    run_dir: str | os.PathLike, store: str | os.PathLike, *, label: str | None = None,
    steps: int | None = None, max_tasks: int | None = None, chunk: int = 50,
    write: bool = True,
) -> xr.Dataset:
    """Query MSE after 0..``steps`` inner steps for every init on every ok task.

    Returns a Dataset with ``query_mse`` (init, step, task) and ``params`` (task,
    param); with ``write`` it is saved to ``RUN_DIR/evaluation/<label>.nc`` with a
    plot ``<label>.png`` (when matplotlib is installed).
    """
    rd = RunDir(run_dir)
    info = rd.load_info()
    cfg = rd.load_config()
    steps = cfg.meta.inner_steps if steps is None else steps
    if steps < 0:
        raise ConfigError(f"--steps must be >= 0, got {steps}")
    reader = open_reader(str(store), cfg)
    if reader.meta.family != info["family"]:
        raise ConfigError(f"{store}: family {reader.meta.family!r}, but the run was trained on "
                          f"{info['family']!r}")
    label = label or reader.meta.regime
    device = resolve_device(cfg.run.device)
    dtype = getattr(torch, cfg.run.dtype)
    family = registry.get(info["family"])
    model = build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], cfg.run.seed)
    model = model.to(device=device, dtype=dtype)
    learner = build_learner(cfg, model, family, "maml")
    n = len(reader) if max_tasks is None else min(max_tasks, len(reader))
    inits = available_inits(rd)
    batches = [reader.batch(range(s, min(n, s + chunk))).to(device=device, dtype=dtype)
               for s in range(0, n, chunk)]  # read once, adapted from every init
    curves = np.empty((len(inits), steps + 1, n))
    for j, name in enumerate(inits):
        if name == "random":
            params = dict(learner.init_params())
        else:
            params = {k: v for k, v in load_init(rd, name).items() if k in learner.names}
        params = {k: v.to(device=device, dtype=dtype) for k, v in params.items()}
        for s, batch in zip(range(0, n, chunk), batches, strict=True):
            curves[j, :, s:s + chunk] = learner.adaptation_curve(params, batch, steps).cpu()
    ds = xr.Dataset(
        {
            "query_mse": (("init", "step", "task"), curves, {
                "long_name": "query mean squared error after adaptation",
                "units": "state units squared (mean over points and channels)"
                if cfg.model.normalize == "none" else
                "1 (errors in units of each channel's spread, then squared)"}),
            "params": (("task", "param"), reader.params[:n]),
        },
        coords={"init": list(inits), "step": np.arange(steps + 1),
                "task": reader.tasks[:n].astype(np.int64),
                "param": list(reader.meta.param_names)},
        attrs={"run_dir": str(rd.path), "store": str(reader.path), "label": label,
               "family": info["family"], "regime": reader.meta.regime,
               "inner_lr": cfg.meta.inner_lr, "physics_weight": cfg.meta.physics_weight,
               "physics_where": cfg.meta.physics_where},
    )
    if write:
        _write(rd, ds, label)
    return ds


def summary_table(ds: xr.Dataset) -> list[dict]:
    """Median/IQR of the final-step query MSE per init, and ratios to random and joint."""
    final = ds["query_mse"].isel(step=-1)
    med = final.median("task")
    rows = []
    for name in ds["init"].values:
        q = final.sel(init=name).quantile([0.25, 0.75], dim="task").values
        row: dict[str, str | float] = {"init": str(name), "median": float(med.sel(init=name)),
               "q25": float(q[0]), "q75": float(q[1]),
               "initial_median": float(ds["query_mse"].sel(init=name, step=0).median())}
        for ref in ("random", "joint"):
            if ref in ds["init"].values:
                row[f"ratio_to_{ref}"] = float(med.sel(init=name)) / float(med.sel(init=ref))
        rows.append(row)
    return rows


def format_table(rows: list[dict], title: str = "") -> str:
    head = f"{'init':<10}{'MSE@0':>11}{'MSE@N median':>14}{'IQR':>22}{'/random':>9}{'/joint':>8}"
    lines = [title, head] if title else [head]
    for r in rows:
        iqr = f"[{r['q25']:.3g}, {r['q75']:.3g}]"
        lines.append(f"{r['init']:<10}{r['initial_median']:>11.3g}{r['median']:>14.3g}"
                     f"{iqr:>22}{r.get('ratio_to_random', float('nan')):>9.3f}"
                     f"{r.get('ratio_to_joint', float('nan')):>8.3f}")
    return "\n".join(lines)


def _write(rd: RunDir, ds: xr.Dataset, label: str) -> Path:
    rd.evaluation.mkdir(exist_ok=True)
    path = rd.evaluation / f"{label}.nc"
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    try:
        from ..plot import plot_adaptation
    except ImportError:  # the plot module or matplotlib is missing
        return path
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib not installed: no plot for %s", label)
        return path
    fig, ax = plt.subplots(figsize=(5, 3.5))
    plot_adaptation(ds, ax=ax)
    ax.set_title(f"{ds.attrs['family']} / {label}")
    fig.tight_layout()
    fig.savefig(rd.evaluation / f"{label}.png", dpi=120)
    plt.close(fig)
    return path
