"""Argument and resource checks of :func:`~scimeta.train.evaluate.evaluate`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..data import TaskReader
from ..errors import ConfigError
from .adaptation import DEFAULT_BUDGETS, check_budgets
from .config import TrainConfig
from .run_dir import RunDir
from .selection import GRIDS, check_disjoint
from .setup import phases

log = logging.getLogger(__name__)


def budgets_of(steps: int | None, budgets: Sequence[int] | None) -> tuple[int, ...]:
    """The step budgets to record: every step 0..steps, or the given ones (default
    :data:`~.adaptation.DEFAULT_BUDGETS`)."""
    if steps is not None and budgets is not None:
        raise ConfigError(f"pass steps={steps!r} or budgets={budgets!r}, not both")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ConfigError(f"steps={steps!r} is not allowed; it must be an int >= 0")
        if steps > MAX_RECORDED_BUDGETS:
            raise ConfigError(f"steps={steps} would record {steps + 1} budgets per task "
                              f"(at most {MAX_RECORDED_BUDGETS} allowed); list the ones you "
                              "need with budgets=(0, 10, ..., N)")
        return tuple(range(steps + 1))
    return check_budgets(DEFAULT_BUDGETS if budgets is None else budgets)


#: most budgets ``steps=N`` may record (every step 0..N, per init, optimizer and task)
MAX_RECORDED_BUDGETS = 10_000


def check_memory(n_inits: int, n_opt: int, n_budgets: int, n_tasks: int) -> None:
    """Refuse, with the numbers, a result array larger than half the free memory."""
    from ..data._space import available_memory, human

    need = n_inits * n_opt * n_budgets * n_tasks * 9  # float64 MSE + bool flag
    free = available_memory()
    if free is not None and need > free // 2:
        raise ConfigError(f"the evaluation would hold {human(need)} of results "
                          f"({n_inits} inits x {n_opt} optimizers x {n_budgets} budgets x "
                          f"{n_tasks} tasks) but {human(free)} of memory is free; pass fewer "
                          "budgets or max_tasks")


def missing_inits(rd: RunDir, cfg: TrainConfig) -> list[str]:
    """Inits the run's config trains that have no file yet (an unfinished run)."""
    return [n for n in phases(cfg) if not rd.init_path(n).exists()]


def check_options(select_budget: object, grids: Mapping | None, max_diverged: object,
                   bootstrap: object, chunk: object) -> None:
    def is_int(v: object, low: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    if not is_int(select_budget, 0):
        raise ConfigError(f"select_budget={select_budget!r} is not allowed; it must be an "
                          "int >= 0 (inner steps)")
    unknown = sorted(set(grids or {}) - set(GRIDS))
    if unknown:
        raise ConfigError(f"grids has {unknown}; allowed keys: {', '.join(GRIDS)}")
    if not (isinstance(max_diverged, float | int) and 0 <= max_diverged < 1):
        raise ConfigError(f"max_diverged={max_diverged!r} is not allowed; it must be a "
                          "fraction in [0, 1)")
    if not is_int(bootstrap, 0):
        raise ConfigError(f"bootstrap={bootstrap!r} is not allowed; it must be an int >= 0 "
                          "(resamples; 0: no intervals)")
    if not is_int(chunk, 1):
        raise ConfigError(f"chunk={chunk!r} is not allowed; it must be an int >= 1")


def selection_note(tuned: bool, validation, budget: int, max_div: float, lr: float,
                   untuned_adam: float) -> str:
    if not tuned:
        return (f"rates NOT tuned (no validation store): sgd at meta.inner_lr = {lr:g}, "
                f"adam at {untuned_adam:g}, lbfgs at trial step 1, learned at the init's own "
                "rates")
    return (f"per init and optimizer, the grid rate with the least median query MSE after "
            f"{budget} steps on {validation} (diverged tasks count as failures; rates with "
            f"more than {max_div:.0%} diverged are not eligible); the test store is not read")


def check_regimes(family, vreader: TaskReader, reader: TaskReader, info: dict) -> None:
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
