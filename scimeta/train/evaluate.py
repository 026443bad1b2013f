"""Does the springboard beat the bullseye? A fair comparison of several inits.

Every init — the meta-learned one, the baselines (first-order MAML, joint training),
a random network — adapts to each held-out task with each test-time optimizer
(:mod:`.adaptation`: ``sgd``, ``adam``, ``learned``) at *its own* rate, chosen from
a log grid on a validation store whose regime is disjoint from the training and
test regimes (:mod:`.selection`); the test store is read only after every rate is
chosen. The query MSE is recorded at step budgets; a diverging adaptation is
flagged (``diverged``) and its MSE stored as NaN. Without a validation store the
rates are NOT tuned (``sgd`` at the run's ``meta.inner_lr``, ``adam`` at 1e-3),
and the Dataset, the log and the table say so. See docs/evaluation.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .. import registry
from ..data import TaskReader
from ..errors import ConfigError, RunError
from ..meta import RATE_PREFIX, learner_names
from ..runtime.names import safe_name
from .adaptation import (
    DIVERGENCE_FACTOR,
    adapt_curve,
    check_optimizer,
)
from .eval_checks import budgets_of, check_memory, check_options, missing_inits
from .models import build_learner, build_model
from .report import format_table, summarize, summary_table, validation_table
from .run_dir import RunDir
from .selection import GRIDS, MAX_DIVERGED, check_disjoint, select_rate
from .setup import load_init, open_reader, resolve_device
from .sysid import check_reference, sysid_variables

__all__ = ["available_inits", "evaluate", "format_table", "summary_table"]

log = logging.getLogger(__name__)

INIT_ORDER = ("maml", "fomaml", "joint", "random")
#: the Adam rate used when no validation store is given (torch.optim.Adam's default)
UNTUNED_ADAM_LR = 1e-3


def available_inits(rd: RunDir) -> list[str]:
    """Trained inits of the run (labelled by role) plus ``random``."""
    names = [p.stem for p in sorted(rd.inits.glob("*.pt"))]
    names.sort(key=lambda n: INIT_ORDER.index(n) if n in INIT_ORDER else len(INIT_ORDER))
    return [*names, "random"]


def _batches(reader: TaskReader, n: int, chunk: int, device, dtype) -> list:
    return [reader.batch(range(s, min(n, s + chunk))).to(device=device, dtype=dtype)
            for s in range(0, n, chunk)]


def evaluate(
    run_dir: str | os.PathLike, store: str | os.PathLike, *, label: str | None = None,
    steps: int | None = None, max_tasks: int | None = None, chunk: int = 50,
    write: bool = True, validation: str | os.PathLike | None = None,
    optimizers: Sequence[str] = ("sgd", "adam"), budgets: Sequence[int] | None = None,
    select_budget: int | None = None, grids: Mapping[str, Sequence[float]] | None = None,
    max_diverged: float = MAX_DIVERGED, factor: float = DIVERGENCE_FACTOR,
    bootstrap: int = 1000, seed: int = 0, reference: str | None = None,
) -> xr.Dataset:
    """Query MSE of every init on every ok task of ``store`` after each step budget.

    ``steps=N`` records budgets 0..N (the former curve); ``budgets`` lists them
    (default 0, 1, 5, 10, 50, 200). ``validation``: a store of a regime disjoint from
    the run's training store and from ``store``; each (init, optimizer) then adapts
    at the rate of ``grids[optimizer]`` (default :data:`~.selection.GRIDS`) with the
    least median validation query MSE after ``select_budget`` steps (default
    ``min(50, max budget)``), among rates with at most ``max_diverged`` of the tasks
    diverged (support loss non-finite or above ``factor`` × its initial value).
    ``max_tasks`` caps the tasks read from each store; ``chunk`` tasks adapt at once.
    ``reference``: ``"sysid"`` or ``"sysid-known"`` adds the system-identification
    reference (:mod:`.sysid`; parameters fitted, or known) on the same tasks.

    Returns a Dataset with ``query_mse`` and ``diverged`` (init, optimizer, budget,
    task), ``chosen_rate`` and ``seconds_per_task`` (init, optimizer), the validation
    table (``validation_*``), the summary (:func:`.report.summarize`, ``bootstrap``
    resamples seeded by ``seed``) and ``params`` (task, param); with ``write`` it is
    saved atomically to ``RUN_DIR/evaluation/<label>.nc`` with a plot ``<label>.png``;
    with ``reference`` also ``sysid_mse``, ``sysid_seconds``, ``sysid_converged`` (task).
    """
    rd = RunDir(run_dir)
    info, cfg = rd.load_info(), rd.load_config()
    budgets = budgets_of(steps, budgets)
    optimizers = tuple(check_optimizer(o) for o in dict.fromkeys(optimizers))
    if not optimizers:
        raise ConfigError("optimizers=() is not allowed; give one or more of sgd, adam, learned")
    if select_budget is None:
        select_budget = min(50, budgets[-1])
    check_options(select_budget, grids, max_diverged, bootstrap, chunk)
    grids = {**GRIDS, **(grids or {})}
    reader = open_reader(str(store), cfg)
    if reader.meta.family != info["family"]:
        raise ConfigError(f"{store}: family {reader.meta.family!r}, but the run was trained on "
                          f"{info['family']!r}")
    label = safe_name(label or reader.meta.regime,
                      "label" if label else f"regime attribute of {str(store)!r}")
    missing = missing_inits(rd, cfg)
    if missing:
        raise RunError(f"run {str(rd.path)!r} is unfinished: no trained init "
                       f"{', '.join(missing)}; finish it with scimeta train CONFIG --run-dir "
                       f"{str(rd.path)!r} --resume")
    if max_tasks is not None and (isinstance(max_tasks, bool) or not isinstance(max_tasks, int)
                                  or max_tasks < 1):
        raise ConfigError(f"max_tasks={max_tasks!r} is not allowed; it must be an int >= 1 "
                          "or None (all tasks)")
    device, dtype = resolve_device(cfg.run.device), getattr(torch, cfg.run.dtype)
    family = registry.get(info["family"])
    check_reference(family, reference)
    model = build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], cfg.run.seed)
    model = model.to(device=device, dtype=dtype)
    plain = build_learner(cfg, model, family, "maml")
    inits = available_inits(rd)
    check_memory(len(inits), len(optimizers), len(budgets),
                  len(reader) if max_tasks is None else min(max_tasks, len(reader)))
    states, own = {}, {}
    for name in inits:
        algo = name if name in learner_names() and name != "random" else "maml"
        own[name] = build_learner(cfg, model, family, algo)
        raw = dict(plain.init_params()) if name == "random" else load_init(rd, name)
        states[name] = {k: v.detach().to(device=device, dtype=dtype) for k, v in raw.items()
                        if k in plain.names or k.startswith(RATE_PREFIX)}
    chosen = np.full((len(inits), len(optimizers)), np.nan)
    for i, name in enumerate(inits):
        for j, opt in enumerate(optimizers):
            if opt == "learned":
                chosen[i, j] = np.nan if own[name].rule.learned else cfg.meta.inner_lr
            else:
                chosen[i, j] = cfg.meta.inner_lr if opt == "sgd" else UNTUNED_ADAM_LR
    table = None
    if validation is not None:
        # selection: only the validation store's tasks are read until every rate is chosen
        vreader = open_reader(str(validation), cfg)
        if vreader.meta.family != info["family"]:
            raise ConfigError(f"validation={str(validation)!r}: family "
                              f"{vreader.meta.family!r}, the run's is {info['family']!r}")
        _check_regimes(family, vreader, reader, info)
        nv = len(vreader) if max_tasks is None else min(max_tasks, len(vreader))
        vbatches = _batches(vreader, nv, chunk, device, dtype)
        table = {}
        for i, name in enumerate(inits):
            for j, opt in enumerate(optimizers):
                if opt == "learned":
                    continue
                sel = select_rate(plain, states[name], vbatches, opt, grids[opt],
                                  select_budget, max_diverged=max_diverged)
                chosen[i, j] = sel.rate
                table[name, opt] = sel
                log.info("%s/%s: rate %g (median validation MSE %.3g at %d steps)", name,
                         opt, sel.rate, sel.median[np.argmax(sel.grid == sel.rate)],
                         select_budget)
        del vbatches
    else:
        log.warning("no validation store: test-time rates were NOT tuned (sgd at "
                    "meta.inner_lr = %g, adam at %g); pass validation=STORE for a fair "
                    "comparison", cfg.meta.inner_lr, UNTUNED_ADAM_LR)
    n = len(reader) if max_tasks is None else min(max_tasks, len(reader))
    batches = _batches(reader, n, chunk, device, dtype)  # the test store, read once
    first = batches[0].tasks(slice(0, 1))
    for j, opt in enumerate(optimizers):  # first-call overheads stay out of the timings
        adapt_curve(own[inits[0]] if opt == "learned" else plain, states[inits[0]], first,
                    opt, chosen[0, j], (1,), factor=factor)
    mse = np.empty((len(inits), len(optimizers), len(budgets), n))
    div = np.zeros(mse.shape, dtype=bool)
    seconds = np.zeros((len(inits), len(optimizers)))
    for i, name in enumerate(inits):
        for j, opt in enumerate(optimizers):
            learner = own[name] if opt == "learned" else plain
            for s, batch in zip(range(0, n, chunk), batches, strict=True):
                c = adapt_curve(learner, states[name], batch, opt, chosen[i, j], budgets,
                                factor=factor)
                mse[i, j, :, s:s + chunk] = c.query_mse.numpy()
                div[i, j, :, s:s + chunk] = c.diverged.numpy()
                seconds[i, j] += c.seconds / n
            k = int(div[i, j, -1].sum())
            if k:
                log.warning("%s/%s: %d of %d tasks diverged by %d steps", name, opt, k, n,
                            budgets[-1])
    units = ("state units squared (mean over points and channels)"
             if cfg.model.normalize == "none" else
             "1 (errors in units of each channel's spread, then squared)")
    dims = ("init", "optimizer", "budget", "task")
    ds = xr.Dataset(
        {
            "query_mse": (dims, mse, {"long_name": "query MSE after adaptation (NaN: "
                                      "diverged)", "units": units}),
            "diverged": (dims, div, {"long_name": f"support loss non-finite or above "
                                     f"{factor:g}x its initial value by this budget"}),
            "chosen_rate": (("init", "optimizer"), chosen, {
                "long_name": "test-time rate (NaN: the init's learned per-parameter or "
                             "per-step rates)"}),
            "seconds_per_task": (("init", "optimizer"), seconds, {
                "long_name": "wall time of adapting and predicting, per task", "units": "s"}),
            "params": (("task", "param"), reader.params[:n]),
        },
        coords={"init": list(inits), "optimizer": list(optimizers), "budget": list(budgets),
                "task": reader.tasks[:n].astype(np.int64),
                "param": list(reader.meta.param_names)},
        attrs={"run_dir": str(rd.path), "store": str(reader.path), "label": label,
               "family": info["family"], "regime": reader.meta.regime,
               "inner_lr": cfg.meta.inner_lr, "inner_steps": cfg.meta.inner_steps,
               "physics_weight": cfg.meta.physics_weight,
               "physics_where": cfg.meta.physics_where, "divergence_factor": factor,
               "rates_tuned": int(table is not None),
               "rate_selection": _selection_note(table is not None, validation, select_budget,
                                                 max_diverged, cfg.meta.inner_lr)},
    )
    if table is not None and validation is not None:
        if table:
            ds = ds.merge(validation_table(table, inits, optimizers, grids))
        ds.attrs["validation_store"] = str(Path(validation).resolve())
        ds.attrs["select_budget"] = select_budget
    if reference is not None:  # the norm's y_scale: the learners' MSE units
        scale = info["norm"]["y_scale"] if cfg.model.normalize != "none" and info.get(
            "norm") else None
        ds = ds.merge(sysid_variables(family, str(reader.path), n, reference, scale, seed))
        ds.attrs["reference"] = reference
    ds = ds.merge(summarize(ds, n_boot=bootstrap, seed=seed))
    if write:
        _write(rd, ds, label)
    return ds


def _selection_note(tuned: bool, validation, budget: int, max_div: float, lr: float) -> str:
    if not tuned:
        return (f"rates NOT tuned (no validation store): sgd at meta.inner_lr = {lr:g}, "
                f"adam at {UNTUNED_ADAM_LR:g}, learned at the init's own rates")
    return (f"per init and optimizer, the grid rate with the least median query MSE after "
            f"{budget} steps on {validation} (diverged tasks count as failures; rates with "
            f"more than {max_div:.0%} diverged are not eligible); the test store is not read")


def _check_regimes(family, vreader: TaskReader, reader: TaskReader, info: dict) -> None:
    specs = [next(s for s in family.params if s.name == p) for p in vreader.meta.param_names]
    others = {"test": (reader.meta.attrs, reader.params)}
    train_path = info.get("train_store")
    if train_path and Path(train_path).exists():
        tr = TaskReader(train_path, in_memory=False)
        others["train"] = (tr.meta.attrs, tr.params)
    else:
        log.warning("the run's training store %s is gone: validation tasks are checked "
                    "against the test store only", train_path)
    check_disjoint(specs, (str(vreader.path), vreader.meta.attrs, vreader.params), others)


def _write(rd: RunDir, ds: xr.Dataset, label: str) -> Path:
    rd.evaluation.mkdir(exist_ok=True)
    path = rd.evaluation / f"{label}.nc"
    tmp = path.with_name(path.name + ".tmp")
    ds.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plot import plot_adaptation
    except ImportError:  # the plot module or matplotlib is missing
        log.info("matplotlib not installed: no plot for %s", label)
        return path
    opts = list(ds["optimizer"].values)
    fig, axes = plt.subplots(1, len(opts), figsize=(5.5 * len(opts), 3.5), squeeze=False)
    for ax, opt in zip(axes[0], opts, strict=True):
        curves = ds["query_mse"].sel(optimizer=opt).rename(budget="step")
        plot_adaptation(xr.Dataset({"query_mse": curves}), ax=ax)
        ax.set_title(f"{ds.attrs['family']} / {label} / {opt}")
    fig.tight_layout()
    tmp_png = rd.evaluation / f"{label}.tmp.png"
    fig.savefig(tmp_png, dpi=120)
    os.replace(tmp_png, rd.evaluation / f"{label}.png")
    plt.close(fig)
    return path
