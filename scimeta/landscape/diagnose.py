"""Meta-overfitting diagnostics: has the meta-learner learned to adapt, or memorised?

Per task batch (any learner, at any parameters):

- :func:`adaptation_errors`: query MSE before (0 steps) and after the inner loop;
  a model that ignores its support set gains nothing.
- :func:`support_swap`: adapt task i with the support set of task i + shift (its
  collocation points and parameters go with it) and measure task i's query MSE.
  A learner that uses its support set gets much worse; one that memorised the
  tasks (reads them from the query inputs) does not care: flagged when
  ``mean swapped MSE / mean own MSE < threshold``.
- :func:`gradient_coherence`: mean pairwise cosine of the per-task meta-gradients
  (``vmap`` of ``grad`` of ``task_meta_loss``); near 0 when tasks pull the init in
  unrelated directions, near 1 when they agree.

Over a run (:func:`diagnose`): these at every kept snapshot (``run.snapshot_every``)
on the run's training store and on held-out stores; the gap between held-out and
training adaptation error as it evolves, and the iteration with the least held-out
error (the recommended stopping iteration). Written to
``RUN_DIR/diagnose/<init>.nc``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.func import grad, vmap

from ..batch import TaskBatch
from ..errors import ConfigError, RunError
from ..meta import MAML
from ..runtime.atomic import write_text
from ..typing import ParamsLike
from ._ops import objective_batch, physics_args

log = logging.getLogger(__name__)

#: support-swap ratio below which a learner is flagged as ignoring its support set
SWAP_THRESHOLD = 1.5


def adaptation_errors(learner: MAML, params: ParamsLike, batch: TaskBatch,
                      steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pre ``[B]``, post ``[B]``): query MSE at θ and after ``steps`` inner steps."""
    curve = learner.adaptation_curve(params, batch, steps)
    return curve[0].cpu().double().numpy(), curve[-1].cpu().double().numpy()


@dataclass(frozen=True)
class SwapTest:
    """Query MSE per task after adapting on its own (``own``) and on another task's
    (``swapped``) support set, ``ratio`` of their means, ``flagged`` below threshold."""

    own: np.ndarray
    swapped: np.ndarray
    ratio: float
    threshold: float

    @property
    def flagged(self) -> bool:
        """True: the learner barely cares whose support set it adapts on."""
        return bool(self.ratio < self.threshold)


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return 1.0 if num == 0 else float("inf")


def support_swap(learner: MAML, params: ParamsLike, batch: TaskBatch, *, shift: int = 1,
                 steps: int | None = None, threshold: float = SWAP_THRESHOLD,
                 own: np.ndarray | None = None) -> SwapTest:
    """The support-swap test: task i adapts on task ``(i + shift) mod B``'s support set.

    ``own``: the per-task query MSE after adapting on the own support sets, when
    already computed (:func:`adaptation_errors`).
    """
    n = batch.support_x.shape[0]
    if n < 2:
        raise ConfigError(f"the support-swap test needs at least 2 tasks, got {n}")
    if isinstance(shift, bool) or not isinstance(shift, int) or shift % n == 0:
        raise ConfigError(f"shift={shift!r} is not allowed; it must be an int that is not a "
                          f"multiple of the {n} tasks")
    if not threshold > 0:
        raise ConfigError(f"threshold={threshold!r} is not allowed; it must be > 0")

    def roll(t: torch.Tensor) -> torch.Tensor:
        return torch.roll(t, -shift, 0)

    rolled = batch.apply(roll)  # every task gets the next task's support (and physics)
    swapped = batch._replace(support_x=rolled.support_x, support_y=rolled.support_y,
                             collocation_x=rolled.collocation_x, params=rolled.params)
    if own is None:
        own = adaptation_errors(learner, params, batch, steps)[1]
    other = learner.adaptation_curve(params, swapped, steps)[-1].cpu().double().numpy()
    return SwapTest(own, other, _ratio(float(other.mean()), float(own.mean())), threshold)


def task_gradients(learner: MAML, params: ParamsLike, batch: TaskBatch,
                   names: Sequence[str] | None = None) -> torch.Tensor:
    """Per-task meta-gradients ``[B, P]`` over ``names`` (default: the model's
    parameters): ``vmap`` of ``torch.func.grad`` of ``task_meta_loss``."""
    b = objective_batch(learner, batch)
    (cx, tp), (cd, pd) = physics_args(learner, b)
    names = list(learner.names if names is None else names)
    theta = {k: v.detach() for k, v in params.items()}
    fn = vmap(grad(learner.task_meta_loss), in_dims=(None, 0, 0, 0, 0, cd, pd),
              chunk_size=learner.chunk_size)
    g = fn(theta, b.support_x, b.support_y, b.query_x, b.query_y, cx, tp)
    return torch.cat([g[n].reshape(g[n].shape[0], -1) for n in names], 1)


def gradient_coherence(learner: MAML, params: ParamsLike, batch: TaskBatch,
                       names: Sequence[str] | None = None) -> float:
    """Mean pairwise cosine of the per-task meta-gradients (tasks with a zero or
    non-finite gradient are left out; NaN with fewer than two left)."""
    g = task_gradients(learner, params, batch, names).double()
    norm = g.norm(dim=1)
    keep = torch.isfinite(norm) & (norm > 0)
    m = int(keep.sum())
    if m < 2:
        return float("nan")
    u = g[keep] / norm[keep, None]
    s = u.sum(0)
    return float((s @ s - m) / (m * (m - 1)))


def diagnose(run_dir: str | os.PathLike, stores: Sequence[str | os.PathLike] = (), *,
             init: str | None = None, learner: str | None = None, max_tasks: int | None = None,
             steps: int | None = None, swap_threshold: float = SWAP_THRESHOLD,
             include_train: bool = True, dtype: str | None = None, write: bool = True):
    """Meta-overfitting report of init ``init`` (default: the run's ``meta.algorithm``)
    over its kept snapshots, as an xarray Dataset (iteration, regime).

    ``stores``: task stores of the run's family (held-out regimes); the run's
    training store is added (role ``train``) when ``include_train`` and it still
    exists. Each snapshot (and iteration 0, the untrained network) adapts with
    ``learner`` (default: the run's ``meta.algorithm``) for ``steps`` (default
    ``meta.inner_steps``) on the first ``max_tasks`` (default ``meta.meta_batch``)
    tasks of each store. ``dtype`` defaults to the run's. With ``write``:
    ``RUN_DIR/diagnose/<init>.nc``, ``<init>.md`` (:func:`report_markdown`) and
    ``<init>.png``.
    """
    import xarray as xr

    from ..runtime import load_checkpoint
    from ..runtime.names import safe_name
    from ..train.conditioned import refuse_conditioned
    from ._run import load_run

    ctx = load_run(run_dir, learner, dtype)
    init = safe_name(init or ctx.cfg.meta.algorithm, "init")
    refuse_conditioned(init)
    snaps = ctx.rd.list_snapshots(init)
    if not snaps:
        raise RunError(f"{str(ctx.rd.path)!r} has no parameter snapshots of init {init!r}; "
                       "train with run.snapshot_every = N (> 0) in the config to keep them")
    paths = [str(s) for s in stores]
    train_store = ctx.info.get("train_store")
    roles = ["held-out"] * len(paths)
    if include_train and train_store and Path(train_store).exists():
        known = [Path(p).resolve() for p in paths]
        if Path(train_store).resolve() not in known:
            paths.insert(0, train_store)
            roles.insert(0, "train")
    elif include_train:
        log.warning("the run's training store %s is gone: no training-regime curve", train_store)
    for i, p in enumerate(paths):
        if train_store and Path(p).resolve() == Path(train_store).resolve():
            roles[i] = "train"
    if not paths:
        raise ConfigError("stores=() and no training store: give at least one store")
    n_tasks = ctx.cfg.meta.meta_batch if max_tasks is None else max_tasks
    opened = [ctx.open_store(p, n_tasks) for p in paths]
    labels = _unique([lab for _, _, lab in opened])
    iterations = [0, *(it for it, _ in snaps)]
    shape = (len(iterations), len(labels))
    out = {k: np.full(shape, np.nan) for k in ("pre_mse", "post_mse", "post_median",
                                                "swap_mse", "swap_ratio", "coherence")}
    for i, it in enumerate(iterations):
        raw = {} if it == 0 else load_checkpoint(snaps[i - 1][1])["params"]
        params = ctx.params_of(raw)
        for j, (_, batch, _) in enumerate(opened):
            pre, post = adaptation_errors(ctx.learner, params, batch, steps)
            swap = support_swap(ctx.learner, params, batch, steps=steps,
                                threshold=swap_threshold, own=post)
            out["pre_mse"][i, j] = pre.mean()
            out["post_mse"][i, j] = swap.own.mean()
            out["post_median"][i, j] = np.median(swap.own)
            out["swap_mse"][i, j] = swap.swapped.mean()
            out["swap_ratio"][i, j] = swap.ratio
            out["coherence"][i, j] = gradient_coherence(ctx.learner, params, batch)
        log.info("diagnose %s: iteration %d done", init, it)
    dims = ("iteration", "regime")
    role = np.array(roles)
    post = out["post_mse"]
    train_cols = [j for j, r in enumerate(roles) if r == "train"]
    held = [j for j, r in enumerate(roles) if r != "train"]
    gap = np.full(shape, np.nan)
    if train_cols:
        gap[:, held] = post[:, held] - post[:, train_cols[:1]]
    best, best_mse = -1, float("nan")
    if held:
        mean_held = post[:, held].mean(1)
        if np.isfinite(mean_held).any():
            k = int(np.nanargmin(mean_held))
            best, best_mse = iterations[k], float(mean_held[k])
    flagged = [lab for j, lab in enumerate(labels) if out["swap_ratio"][-1, j] < swap_threshold]
    attrs = {"run_dir": str(ctx.rd.path), "family": ctx.info["family"], "init": init,
             "learner": ctx.learner_name, "inner_lr": float(ctx.learner.inner_lr),
             "inner_steps": ctx.learner.inner_steps if steps is None else steps,
             "swap_threshold": swap_threshold, "recommended_stop": best,
             "best_heldout_mse": best_mse, "flagged_regimes": json.dumps(flagged),
             "stores": json.dumps(paths)}
    long = {"pre_mse": "query MSE before adaptation (mean over tasks)",
            "post_mse": "query MSE after adaptation (mean over tasks)",
            "post_median": "query MSE after adaptation (median over tasks)",
            "swap_mse": "query MSE after adapting on another task's support set (mean)",
            "swap_ratio": "swap_mse / post_mse (a memorising learner stays near 1)",
            "coherence": "mean pairwise cosine of per-task meta-gradients"}
    data: dict[str, tuple] = {k: (dims, v, {"long_name": long[k]}) for k, v in out.items()}
    data["gain"] = (dims, out["pre_mse"] / out["post_mse"],
                    {"long_name": "pre_mse / post_mse (1: adaptation gains nothing)"})
    data["gap"] = (dims, gap, {"long_name": "post_mse minus the training regime's"})
    data["n_tasks"] = (("regime",), np.array([b.num_tasks for _, b, _ in opened]))
    ds = xr.Dataset(data, coords={"iteration": iterations, "regime": labels,
                                  "role": ("regime", role)}, attrs=attrs)
    if flagged:
        log.warning("init %s barely uses its support set on %s: adapting on another "
                    "task's support set is nearly as good (support-swap ratio below %g), so "
                    "it has memorised the tasks or does not adapt", init, ", ".join(flagged),
                    swap_threshold)
    if write:
        write_report(ctx.rd.path, ds)
    return ds


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab}-{seen[lab]}")
    return out


def _fmt(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3g}"


def report_markdown(ds) -> str:
    """The report as Markdown: final-iteration table per regime, curves over training."""
    a = ds.attrs
    thr = a["swap_threshold"]
    lines = [f"# Meta-overfitting: {a['family']}, init {a['init']}",
             "",
             f"Learner {a['learner']}, {a['inner_steps']} inner steps at inner_lr "
             f"{a['inner_lr']:g}; support-swap flag below {thr:g}.", ""]
    if a["recommended_stop"] >= 0:
        lines.append(f"**Recommended stopping iteration: {a['recommended_stop']}** (least "
                     f"mean held-out query MSE after adaptation, {_fmt(a['best_heldout_mse'])})")
    else:
        lines.append("No held-out store: no recommended stopping iteration.")
    last = ds.isel(iteration=-1)
    lines += ["", f"At iteration {int(last['iteration'])}:", "",
              "| regime | role | tasks | pre MSE | post MSE | gain (pre/post) | swap ratio | "
              "coherence | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in ds["regime"].values:
        x = last.sel(regime=r)
        verdict = ("barely uses its support set" if float(x["swap_ratio"]) < thr
                   else "uses its support set")
        lines.append(f"| {r} | {x['role'].item()} | {int(x['n_tasks'])} | "
                     f"{_fmt(float(x['pre_mse']))} | {_fmt(float(x['post_mse']))} | "
                     f"{_fmt(float(x['gain']))} | {_fmt(float(x['swap_ratio']))} | "
                     f"{_fmt(float(x['coherence']))} | {verdict} |")
    regimes = list(ds["regime"].values)
    lines += ["", "Over training (query MSE after adaptation; gap: held-out minus train):", "",
              "| iteration | " + " | ".join(regimes) + " | mean gap |",
              "|---" * (len(regimes) + 2) + "|"]
    for it in ds["iteration"].values:
        x = ds.sel(iteration=it)
        gap = x["gap"].values
        mean_gap = float(np.nanmean(gap)) if np.isfinite(gap).any() else float("nan")
        mark = " ←" if int(it) == a["recommended_stop"] else ""
        lines.append(f"| {int(it)}{mark} | " + " | ".join(
            _fmt(float(v)) for v in x["post_mse"].values) + f" | {_fmt(mean_gap)} |")
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | os.PathLike, ds) -> Path:
    """``RUN_DIR/diagnose/<init>.nc``, ``<init>.md`` and ``<init>.png``."""
    from ..runtime.names import safe_name
    from ._plots import plot_diagnostics, render
    from ._run import write_dataset

    name = safe_name(ds.attrs["init"], "init")
    out = Path(run_dir) / "diagnose"
    path = write_dataset(ds, out / f"{name}.nc")
    md = out / f"{name}.md"
    write_text(md, report_markdown(ds))
    render(plot_diagnostics, ds, out / f"{name}.png", 16)
    return path


__all__ = ["SWAP_THRESHOLD", "SwapTest", "adaptation_errors", "diagnose", "gradient_coherence",
           "report_markdown", "support_swap", "task_gradients", "write_report"]
