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
from ..runtime.names import safe_name
from .adaptation import DIVERGENCE_FACTOR, adapt_curve
from .config import TrainConfig
from .decoder import CODE_STEPS
from .eval_checks import (
    budgets_of,
    check_memory,
    check_options,
    check_regimes,
    missing_inits,
    selection_note,
)
from .eval_inits import (
    N_COLLOCATION,
    PHYSICS_WEIGHTS,
    base_optimizer,
    check_code_steps,
    check_eval_optimizer,
    check_physics_weights,
    contenders,
    is_physics,
)
from .eval_io import write_evaluation
from .eval_select import choose, untuned
from .report import format_table, summarize, summary_table, validation_table
from .run_dir import RunDir
from .selection import GRIDS, MAX_DIVERGED
from .selection_cache import FOLDER, run_settings
from .setup import resolve_device
from .sysid import check_reference, sysid_variables

__all__ = ["available_inits", "evaluate", "format_table", "summary_table"]

log = logging.getLogger(__name__)

INIT_ORDER = ("maml", "fomaml", "joint", "conditioned", "decoder", "random")
#: ``backtrack`` choices: which optimizers undo a step that raises the support loss
BACKTRACK = ("physics", "all", "none")
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
    physics_weights: Sequence[float] = PHYSICS_WEIGHTS, n_collocation: int = N_COLLOCATION,
    backtrack: str = "physics", cache_selection: bool = True,
    code_steps: Sequence[int] = (CODE_STEPS,),
) -> xr.Dataset:
    """Query MSE of every init on every ok task of ``store`` after each step budget.

    ``steps=N`` records budgets 0..N (the former curve); ``budgets`` lists them
    (default 0, 1, 5, 10, 50, 200). ``validation``: a store of a regime disjoint from
    the run's training store and from ``store``; each (init, optimizer) then adapts
    at the rate of ``grids[optimizer]`` (default :data:`~.selection.GRIDS`) with the
    least median validation query MSE after ``select_budget`` steps (default
    ``min(50, max budget)``), among rates with at most ``max_diverged`` of the tasks
    diverged (support loss non-finite or above ``factor`` × its initial value).
    ``optimizers``: ``sgd``, ``adam``, ``lbfgs``, ``learned`` and the test-time
    physics-informed ``sgd+physics``, ``adam+physics``, ``lbfgs+physics``
    (:mod:`.eval_inits`): λ from ``physics_weights``
    (chosen with the rate on the validation store; the first without one),
    ``n_collocation`` residual points per task spanning its space-time window.
    ``code_steps``: for the initial-state decoder adapting every parameter, how many
    first steps fit its code alone on the data (:mod:`.decoder`; 0: none), chosen on
    the validation store with the rest (else the first).
    ``backtrack``: which optimizers undo a step that does not lower the support loss
    and halve that task's rate (:func:`~.adaptation.adapt_curve`) — ``"physics"``
    (the ``+physics`` ones, default), ``"all"`` (also ``sgd``, ``adam``) or ``"none"``.
    ``max_tasks`` caps the tasks read from each store; ``chunk`` tasks adapt at once.
    ``cache_selection`` (with ``write``): keep each validation selection under
    ``RUN/evaluation/selection-cache/`` and reuse it when an evaluation repeats it
    exactly — same init, validation tasks, settings (:mod:`.selection_cache`).
    ``reference``: ``"sysid"`` or ``"sysid-known"`` adds the system-identification
    reference (:mod:`.sysid`; parameters fitted, or known) on the same tasks. A run
    with the ``conditioned`` baseline scores it on conditioned batches (zero-shot at
    budget 0, then adapted like every init).

    Returns a Dataset with ``query_mse`` and ``diverged`` (init, optimizer, budget,
    task), ``chosen_rate``, ``chosen_physics_weight``, ``adapted_inner_set`` (an init
    whose algorithm adapts a subset of its parameters — ANIL, CAVIA — adapts either that
    subset or everything with each optimizer, as validation chooses),
    ``chosen_code_steps`` and ``seconds_per_task`` (init, optimizer), the validation
    table (``validation_*``), the summary
    (:func:`.report.summarize`, ``bootstrap`` resamples seeded by ``seed``) and
    ``params`` (task, param); with ``write`` it is saved atomically to
    ``RUN_DIR/evaluation/<label>.nc`` with a plot ``<label>.png``; with ``reference``
    also ``sysid_mse``, ``sysid_seconds``, ``sysid_converged`` (task).
    """
    rd = RunDir(run_dir)
    info, cfg = rd.load_info(), rd.load_config()
    budgets = budgets_of(steps, budgets)
    optimizers = tuple(check_eval_optimizer(o) for o in dict.fromkeys(optimizers))
    if not optimizers:
        raise ConfigError("optimizers=() is not allowed; give one or more of sgd, adam, "
                          "lbfgs, learned, sgd+physics, adam+physics, lbfgs+physics")
    weights = check_physics_weights(physics_weights)
    code_steps = check_code_steps(code_steps)
    if backtrack not in BACKTRACK:
        raise ConfigError(f"backtrack={backtrack!r} is not allowed; use one of "
                          f"{', '.join(BACKTRACK)}")

    def safe(opt: str) -> bool:
        return opt != "learned" and (backtrack == "all" or
                                     (backtrack == "physics" and is_physics(opt)))

    use_physics = any(is_physics(o) for o in optimizers)
    if isinstance(n_collocation, bool) or not isinstance(n_collocation, int) or (
            n_collocation < 1):
        raise ConfigError(f"n_collocation={n_collocation!r} is not allowed; it must be an "
                          "int >= 1 (residual points per task)")
    if select_budget is None:
        select_budget = min(50, budgets[-1])
    check_options(select_budget, grids, max_diverged, bootstrap, chunk)
    grids = {**GRIDS, **(grids or {})}
    grids.update({o: grids[base_optimizer(o)] for o in optimizers if is_physics(o)})
    n_colloc = max(cfg.data.n_collocation, n_collocation if use_physics else 0)
    reader = _reader(store, cfg, n_colloc)
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
    inits = available_inits(rd)
    check_memory(len(inits), len(optimizers), len(budgets),
                  len(reader) if max_tasks is None else min(max_tasks, len(reader)))
    cons = contenders(rd, cfg, info, family, inits, device, dtype, use_physics)
    shape = (len(inits), len(optimizers))
    chosen, lam, inner, stage_len = untuned(cons, optimizers, cfg.meta.inner_lr,
                                            UNTUNED_ADAM_LR, weights[0], code_steps)
    table = None
    if validation is not None:
        # selection: only the validation store's tasks are read until every rate is chosen
        vreader = _reader(validation, cfg, n_colloc)
        if vreader.meta.family != info["family"]:
            raise ConfigError(f"validation={str(validation)!r}: family "
                              f"{vreader.meta.family!r}, the run's is {info['family']!r}")
        check_regimes(family, vreader, reader, info)
        nv = len(vreader) if max_tasks is None else min(max_tasks, len(vreader))
        vbatches = _batches(vreader, nv, chunk, device, dtype)
        table = {}
        cache = rd.evaluation / FOLDER if write and cache_selection else None
        settings = run_settings(rd.config, info, select_budget, max_diverged, device, dtype)
        for i, c in enumerate(cons):
            vb = c.batches(vbatches, info)
            for j, opt in enumerate(optimizers):
                if opt == "learned":
                    continue
                got = choose(c, vb, opt, weights=weights, grid=grids[opt],
                             budget=select_budget, max_diverged=max_diverged,
                             backtrack=safe(opt), cache=cache, settings=settings,
                             code_steps=code_steps)
                chosen[i, j], lam[i, j], inner[i, j] = got.rate, got.weight, got.inner_set
                stage_len[i, j] = got.first_steps
                table[c.name, opt] = got.selection
        del vbatches
    else:
        log.warning("no validation store: test-time rates were NOT tuned (sgd at "
                    "meta.inner_lr = %g, adam at %g, lbfgs at step 1, physics weight %g); pass "
                    "validation=STORE for a fair comparison", cfg.meta.inner_lr,
                    UNTUNED_ADAM_LR, weights[0])
    n = len(reader) if max_tasks is None else min(max_tasks, len(reader))
    batches = _batches(reader, n, chunk, device, dtype)  # the test store, read once
    for j, opt in enumerate(optimizers):  # first-call overheads stay out of the timings
        c = cons[0]
        first = c.batches([batches[0].tasks(slice(0, 1))], info)[0]
        sub = c.inner_set if inner[0, j] else None
        adapt_curve(c.learner(opt, lam[0, j]), c.state, first, base_optimizer(opt),
                    chosen[0, j], (1,), factor=factor, backtrack=safe(opt), names=sub,
                    **c.staged(sub, opt, stage_len[0, j]))
    mse = np.empty((len(inits), len(optimizers), len(budgets), n))
    div = np.zeros(mse.shape, dtype=bool)
    seconds = np.zeros(shape)
    for i, c in enumerate(cons):
        cb = c.batches(batches, info)
        for j, opt in enumerate(optimizers):
            learner = c.learner(opt, lam[i, j])
            for s, batch in zip(range(0, n, chunk), cb, strict=True):
                sub = c.inner_set if inner[i, j] else None
                cur = adapt_curve(learner, c.state, batch, base_optimizer(opt), chosen[i, j],
                                  budgets, factor=factor, backtrack=safe(opt), names=sub,
                                  **c.staged(sub, opt, stage_len[i, j]))
                mse[i, j, :, s:s + chunk] = cur.query_mse.numpy()
                div[i, j, :, s:s + chunk] = cur.diverged.numpy()
                seconds[i, j] += cur.seconds / n
            k = int(div[i, j, -1].sum())
            if k:
                log.warning("%s/%s: %d of %d tasks diverged by %d steps", c.name, opt, k, n,
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
            "chosen_physics_weight": (("init", "optimizer"), lam, {
                "long_name": "test-time weight λ of the normalized equation residual "
                             "(NaN: data only)"}),
            "adapted_inner_set": (("init", "optimizer"), inner, {
                "long_name": "adapted only the parameters the init's algorithm adapts in "
                             "its inner loop (ANIL's head, CAVIA's context), chosen on "
                             "validation; else every parameter"}),
            "chosen_code_steps": (("init", "optimizer"), stage_len, {
                "long_name": "first steps fitting the decoder's code alone on the data "
                             "before every weight joins (-1: no such stage)"}),
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
               "n_collocation": n_colloc if use_physics else cfg.data.n_collocation,
               "physics_weights": list(weights) if use_physics else [],
               "code_steps": list(code_steps),
               "backtrack": ", ".join(o for o in optimizers if safe(o)) or "none",
               "rates_tuned": int(table is not None),
               "rate_selection": selection_note(table is not None, validation, select_budget,
                                                max_diverged, cfg.meta.inner_lr, UNTUNED_ADAM_LR)},
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
        write_evaluation(rd, ds, label)
    return ds



def _reader(path: str | os.PathLike, cfg: TrainConfig, n_collocation: int) -> TaskReader:
    return TaskReader(str(path), in_memory=cfg.data.in_memory, n_collocation=n_collocation)
