"""Summaries of an evaluation Dataset: medians, IQRs, ratios with bootstrap intervals, tables.

A diverged task counts as a failure: +inf in every median and quantile (so a cell
with more than half its tasks diverged has an infinite median), and the table prints
a cell with any diverged task as ``diverged (k/N)``, never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .selection import bootstrap_ratio, failures_as_inf

REFERENCES = ("random", "joint")


def summarize(ds: xr.Dataset, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> xr.Dataset:
    """Per (init, optimizer, budget): ``median_mse``, ``q25_mse``, ``q75_mse``,
    ``n_diverged``, and for each reference init present (``random``, ``joint``)
    ``ratio_to_<ref>`` — median MSE over the median MSE of the reference adapted
    with the same optimizer and budget — and ``ratio_to_<ref>_ci`` (…, bound) its
    percentile-bootstrap interval over ``n_boot`` paired resamples of the tasks."""
    mse = ds["query_mse"].transpose("init", "optimizer", "budget", "task").values
    inits = [str(v) for v in ds["init"].values]
    failed = failures_as_inf(mse)
    with np.errstate(invalid="ignore"):  # inf - inf between two failures: a failure
        q25, med, q75 = np.nan_to_num(np.quantile(failed, [0.25, 0.5, 0.75], axis=-1),
                                      nan=np.inf, posinf=np.inf)
    dims = ("init", "optimizer", "budget")
    out = {
        "median_mse": (dims, med, {"long_name": "median query MSE over tasks (diverged = "
                                   "+inf)"}),
        "q25_mse": (dims, q25), "q75_mse": (dims, q75),
        "n_diverged": (dims, np.isnan(mse).sum(-1).astype(np.int64)),
    }
    boot = (n_boot, seed, level)
    for ref in REFERENCES:
        if ref in inits:
            _ratio_vars(out, ref, _paired(mse, _init_row(inits.index(ref)), *boot),
                        f"median MSE / median MSE of {ref}", *boot)
    opts = [str(v) for v in ds["optimizer"].values]
    base = {j: opts.index(o.removesuffix("+physics")) for j, o in enumerate(opts)
            if o.endswith("+physics") and o.removesuffix("+physics") in opts}
    if base:
        _ratio_vars(out, "data_only", _paired(mse, lambda i, j: (i, base[j]) if j in base
                                              else None, *boot),
                    "median MSE of a physics-informed optimizer / median MSE of its "
                    "data-only base (same init, budget; NaN for data-only optimizers)", *boot)
    return xr.Dataset(out, coords={"bound": ["low", "high"]})


def _init_row(r: int) -> Callable[[int, int], tuple[int, int]]:
    """``ref_of`` for :func:`_paired`: init ``r``, the same optimizer."""
    return lambda i, j: (r, j)


def _paired(mse: np.ndarray, ref_of: Callable[[int, int], tuple[int, int] | None],
            n_boot: int, seed: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(point ``[I, O, B]``, interval ``[I, O, B, 2]``): cell (i, j, k) of ``mse``
    ``[I, O, B, task]`` over cell (*ref_of(i, j), k), paired over tasks; NaN where
    ``ref_of`` gives None."""
    point = np.full(mse.shape[:3], np.nan)
    ci = np.full((*mse.shape[:3], 2), np.nan)
    for i, j, k in np.ndindex(*mse.shape[:3]):
        ref = ref_of(i, j)
        if ref is not None:
            point[i, j, k], *ci[i, j, k] = bootstrap_ratio(mse[i, j, k], mse[(*ref, k)],
                                                           n_boot, seed, level)
    return point, ci


def _ratio_vars(out: dict, name: str, ratios: tuple[np.ndarray, np.ndarray],
                long_name: str, n_boot: int, seed: int, level: float) -> None:
    """``ratio_to_<name>`` and its ``_ci`` (…, bound) into ``out``."""
    dims = ("init", "optimizer", "budget")
    out[f"ratio_to_{name}"] = (dims, ratios[0], {"long_name": long_name})
    out[f"ratio_to_{name}_ci"] = ((*dims, "bound"), ratios[1], {
        "long_name": f"{level:.0%} percentile-bootstrap interval, {n_boot} resamples, "
                     f"seed {seed}"})


def summary_table(ds: xr.Dataset, budget: int | None = None) -> list[dict]:
    """One row per (init, optimizer) at ``budget`` (default the largest) from the
    summary variables of :func:`summarize`: ``init``, ``optimizer``, ``rate``,
    ``tuned``, ``budget``, ``median``, ``q25``, ``q75``, ``initial_median`` (budget
    0, NaN if not recorded), ``n_diverged``, ``n_tasks``, ``ratio_to_<ref>`` with
    ``ratio_to_<ref>_low`` / ``_high``."""
    b = int(ds["budget"].values[-1]) if budget is None else budget
    has0 = 0 in ds["budget"].values
    tuned = bool(ds.attrs.get("rates_tuned", 0))
    rows = []
    for name in ds["init"].values:
        for opt in ds["optimizer"].values:
            cell: dict[str, Any] = {"init": str(name), "optimizer": str(opt)}
            at = ds.sel(init=name, optimizer=opt, budget=b)
            row: dict = {
                **cell, "budget": b, "rate": float(ds["chosen_rate"].sel(**cell)),
                "tuned": tuned and opt != "learned",
                "median": float(at["median_mse"]), "q25": float(at["q25_mse"]),
                "q75": float(at["q75_mse"]), "n_diverged": int(at["n_diverged"]),
                "n_tasks": int(ds.sizes["task"]),
                "initial_median": float(ds["median_mse"].sel(**cell, budget=0))
                if has0 else math.nan}
            for ref in (*REFERENCES, "data_only"):
                if f"ratio_to_{ref}" in ds and math.isfinite(float(at[f"ratio_to_{ref}"])):
                    row[f"ratio_to_{ref}"] = float(at[f"ratio_to_{ref}"])
                    low, high = at[f"ratio_to_{ref}_ci"].values
                    row[f"ratio_to_{ref}_low"], row[f"ratio_to_{ref}_high"] = float(low), \
                        float(high)
            rows.append(row)
    if "sysid_mse" in ds:
        rows.append(_sysid_row(ds, rows, b))
    return rows


def _sysid_row(ds: xr.Dataset, rows: list[dict], budget: int) -> dict:
    """The system-identification reference row: its median MSE, ratios to the best
    (least median) ``random`` / ``joint`` cell at ``budget``, and cost per task."""
    mse = ds["sysid_mse"].values
    q25, med, q75 = np.quantile(failures_as_inf(mse), [0.25, 0.5, 0.75])
    row: dict = {"init": "sysid (reference)", "optimizer": "lsq", "reference": True,
                 "budget": budget, "rate": math.nan, "tuned": True, "median": float(med),
                 "q25": float(q25), "q75": float(q75), "n_diverged": 0,
                 "n_tasks": int(ds.sizes["task"]), "initial_median": math.nan,
                 "seconds": float(np.mean(ds["sysid_seconds"].values)),
                 "converged": int(ds["sysid_converged"].values.sum()),
                 "protocol": str(ds.attrs.get("reference", "sysid"))}
    for ref in REFERENCES:
        cells = [r for r in rows if r["init"] == ref and not r["n_diverged"]]
        if cells and f"ratio_to_{ref}" in ds:
            best = min(cells, key=lambda r: r["median"])
            other = ds["query_mse"].sel(init=ref, optimizer=best["optimizer"], budget=budget)
            row[f"ratio_to_{ref}"], row[f"ratio_to_{ref}_low"], row[f"ratio_to_{ref}_high"] = \
                bootstrap_ratio(mse, other.values)
    return row


def _num(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else "n/a"


def _ratio(r: dict, ref: str, ok: bool) -> str:
    v = r.get(f"ratio_to_{ref}", math.nan)
    if not ok or not math.isfinite(v):
        return "—"
    return (f"{v:.3f}" if v >= 1e-3 else f"{v:.2g}") + (
            f" [{_num(r.get(f'ratio_to_{ref}_low', math.nan))}, "
            f"{_num(r.get(f'ratio_to_{ref}_high', math.nan))}]")


def format_table(rows: list[dict], title: str = "") -> str:
    """Fixed-width text table of :func:`summary_table` rows (columns sized to fit).

    A cell with diverged tasks prints ``diverged (k/N)`` and no IQR or ratio; a rate
    that was not tuned on a validation store is marked ``*`` with a footnote.
    """
    budget = rows[0].get("budget", "N") if rows else "N"
    head = ["init", "optimizer", "rate", "MSE@0", f"MSE@{budget} median", "IQR",
            "/random [95% CI]", "/joint [95% CI]", "/data-only [95% CI]"]
    names = ("random", "joint", "data_only")
    refs = {ref: any(f"ratio_to_{ref}" in r for r in rows) for ref in names}
    body, untuned = [], False
    by_opt = {(r["init"], r.get("optimizer")): r for r in rows}
    for r in rows:
        k, n = r.get("n_diverged", 0), r.get("n_tasks", 0)
        rate = r.get("rate", math.nan)
        rate_s = _num(rate) if math.isfinite(rate) else "—" if r.get("reference") else "learned"
        if not r.get("tuned", True) and r.get("optimizer") != "learned":
            rate_s += "*"
            untuned = True
        refs_ok = {ref: not by_opt.get((ref, r.get("optimizer")), {}).get("n_diverged", 0)
                   for ref in ("random", "joint")}
        base = str(r.get("optimizer", "")).removesuffix("+physics")
        refs_ok["data_only"] = not by_opt.get((r["init"], base), {}).get("n_diverged", 0)
        cells = [r["init"], str(r.get("optimizer", "")), rate_s,
                 "—" if r.get("reference") else _num(r.get("initial_median", math.nan)),
                 f"diverged ({k}/{n})" if k else _num(r["median"]),
                 "—" if k else f"[{_num(r['q25'])}, {_num(r['q75'])}]",
                 _ratio(r, "random", not k and refs_ok["random"]),
                 _ratio(r, "joint", not k and refs_ok["joint"]),
                 _ratio(r, "data_only", not k and refs_ok["data_only"])]
        body.append(cells)
    keep = [c for c in range(len(head)) if c < 6 or refs[names[c - 6]]]
    table = [[row[c] for c in keep] for row in [head, *body]]
    widths = [max(len(row[c]) for row in table) for c in range(len(keep))]
    lines = [title] if title else []
    for row in table:
        lines.append("  ".join(cell.ljust(w) if c < 3 else cell.rjust(w)
                               for c, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     .rstrip())
    if untuned:
        lines.append("* rate NOT tuned (no validation store): fixed, not chosen per init")
    for r in rows:
        if r.get("reference"):
            lines.append(f"{r['init']}: the family's own equation fitted to the support points "
                         f"by least squares ({r['protocol']}: parameters "
                         f"{'known' if r['protocol'] == 'sysid-known' else 'fitted'}); "
                         f"{r['seconds']:.3g} s per task, {r['converged']}/{r['n_tasks']} "
                         "converged; ratios to the best random/joint cell; a reference, "
                         "not a competitor")
    return "\n".join(lines)


def validation_table(table: dict, inits: list[str], optimizers: tuple[str, ...],
                     grids: Mapping[str, Sequence[float]]) -> xr.Dataset:
    """The validation table of rate selection: ``grid_rate`` (optimizer, rate_index),
    ``validation_median``, ``validation_diverged_fraction`` (init, optimizer,
    rate_index) and ``validation_query_mse`` (…, validation_task); ``table`` maps
    (init, optimizer) to a :class:`~.selection.Selection`. NaN where not tuned."""
    tuned = [o for o in optimizers if o != "learned"]
    r = max(len(grids[o]) for o in tuned)
    nv = next(iter(table.values())).mse.shape[1]
    grid = np.full((len(optimizers), r), np.nan)
    med = np.full((len(inits), len(optimizers), r), np.nan)
    frac, vmse = med.copy(), np.full((*med.shape, nv), np.nan)
    for (name, opt), sel in table.items():
        i, j, k = inits.index(name), optimizers.index(opt), len(sel.grid)
        grid[j, :k], med[i, j, :k], frac[i, j, :k] = sel.grid, sel.median, sel.diverged
        vmse[i, j, :k] = sel.mse
    d3 = ("init", "optimizer", "rate_index")
    return xr.Dataset({
        "grid_rate": (("optimizer", "rate_index"), grid, {"long_name": "candidate rate"}),
        "validation_median": (d3, med, {"long_name": "median validation query MSE at "
                                        "select_budget (diverged = +inf)"}),
        "validation_diverged_fraction": (d3, frac),
        "validation_query_mse": ((*d3, "validation_task"), vmse),
    }, coords={"init": inits, "optimizer": list(optimizers)})
