"""A human-readable summary of a task store (``scimeta info``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..family import STATUS_NAMES
from .config import filter_name
from .store import open_h5, read_meta


def summarize(path: str | os.PathLike) -> dict:
    """Family, regime, parameter ranges, counts by status, solver, sizes (JSON-ready)."""
    path = Path(path)
    with open_h5(path) as f:
        meta = read_meta(f, path)
        params = f["params"][:]
        shape = f["u"].shape
        storage = {"compression": filter_name(f["u"].compression),
                   "shuffle": bool(f["u"].shuffle)}
    try:
        return {**_summary(path, meta, params, shape), "storage": storage}
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise StoreError(f"{str(path)!r} has broken metadata ({type(exc).__name__}: {exc}); "
                         f"`scimeta validate {path}` names every problem") from None


def _summary(path: Path, meta, params: np.ndarray, shape: tuple[int, ...]) -> dict:
    ok = meta.ok
    a = meta.attrs
    solver, sampling = json.loads(a["solver"]), json.loads(a["sampling"])
    if not (isinstance(solver, dict) and isinstance(sampling, dict)):
        raise TypeError("solver and sampling must be JSON objects")
    for key in ("name", "method"):
        str(solver[key])
    for key in ("rule", "support", "query"):
        str(sampling[key])
    ranges = {}
    for j, name in enumerate(meta.param_names):
        col = params[ok, j] if ok.size else np.array([np.nan])
        ranges[name] = [float(col.min()), float(col.max())]
    counts = {STATUS_NAMES[k]: int((meta.status == k).sum()) for k in sorted(STATUS_NAMES)}
    return {
        "path": str(path),
        "family": meta.family,
        "regime": meta.regime,
        "complete": meta.complete,
        "equation": a.get("equation"),
        "tasks": len(meta.status),
        "status_counts": counts,
        "param_units": dict(zip(meta.param_names, json.loads(a["param_units"]), strict=True)),
        "regime_bounds": dict(zip(meta.param_names, _pairs(json.loads(a["param_bounds"])),
                                  strict=True)),
        "param_ranges_ok_tasks": ranges,
        "state": list(meta.state_names),
        "field_shape": list(shape),
        "time": [float(meta.time[0]), float(meta.time[-1]), len(meta.time)],
        "space": {d: [float(s[0]), float(s[-1]), len(s)]
                  for d, s in zip(meta.space_dims, meta.space, strict=True)},
        "solver": solver,
        "solver_preset": str(a.get("solver_preset", "accurate")),
        "sampling": sampling,
        "seed": a.get("seed"),
        "created": a.get("created"),
        "scimeta_version": a.get("scimeta_version"),
        "git_revision": a.get("git_revision"),
        "size_bytes": path.stat().st_size,
    }


def _pairs(value) -> list[list[float]]:
    return [[float(lo), float(hi)] for lo, hi in value]


def format_summary(s: dict) -> str:
    """Render :func:`summarize` output as aligned text."""
    lines = [
        f"{s['path']}: {s['family']} / {s['regime']}"
        + ("" if s["complete"] else "  [INCOMPLETE]"),
        f"  equation   {s['equation']}",
        f"  tasks      {s['tasks']}  ("
        + ", ".join(f"{k} {v}" for k, v in s["status_counts"].items() if v) + ")",
        f"  fields     u{tuple(s['field_shape'])}  state {', '.join(s['state'])}",
        f"  time       [{s['time'][0]:g}, {s['time'][1]:g}] with {s['time'][2]} points",
    ]
    for d, (lo, hi, n) in s["space"].items():
        lines.append(f"  {d:<10} [{lo:g}, {hi:g}] with {n} points")
    lines.append("  parameters (regime bounds | range over ok tasks):")
    for name, (lo, hi) in s["regime_bounds"].items():
        rlo, rhi = s["param_ranges_ok_tasks"][name]
        unit = s["param_units"][name]
        lines.append(f"    {name:<10} [{lo:g}, {hi:g}] | [{rlo:.4g}, {rhi:.4g}]  {unit}")
    sv = s["solver"]
    tol = ", ".join(f"{k}={sv[k]:g}" for k in ("rtol", "atol", "dt")
                    if isinstance(sv.get(k), int | float))
    lines.append(f"  solver     {sv['name']} {sv['method']} ({tol})"
                 + (f"  [preset {s['solver_preset']}]"
                    if s.get("solver_preset", "accurate") != "accurate" else "")
                 + (f"  {sv['note']}" if sv.get("note") else ""))
    sm = s["sampling"]
    lines.append(f"  sampling   {sm['rule']}: support {sm['support']}, query {sm['query']}")
    lines.append(f"  provenance seed {s['seed']}, scimeta {s['scimeta_version']}, "
                 f"git {str(s['git_revision'])[:12]}, created {s['created']}")
    st = s.get("storage", {})
    lines.append(f"  size       {s['size_bytes'] / 1e6:.2f} MB  (u: "
                 f"{st.get('compression', '?')}{' + shuffle' if st.get('shuffle') else ''})")
    return "\n".join(lines)
