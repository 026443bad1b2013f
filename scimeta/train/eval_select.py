"""One init's test-time choices on the validation store: rate, λ and adapted set.

For each optimizer of an evaluation, every candidate — each physics weight λ for the
``+physics`` optimizers and, for an init whose algorithm adapts only part of its
parameters (ANIL's head, CAVIA's context), that part alone or every parameter — gets
its rate from the optimizer's grid (:func:`~.selection.select_rate`, cached by
:mod:`.selection_cache`), and the candidate with the least validation median wins
(an ineligible one, with too many diverged tasks, only if every candidate is).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ..batch import TaskBatch
from .eval_inits import Contender, base_optimizer, is_physics
from .selection import Selection, select_rate
from .selection_cache import cached_selection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """The chosen rate, λ (NaN: data only) and adapted set of one (init, optimizer)."""

    rate: float
    weight: float
    inner_set: bool
    selection: Selection


def best_median(sel: Selection) -> float:
    """The median validation MSE at the chosen rate."""
    return float(sel.median[int(np.argmax(sel.grid == sel.rate))])


def choose(c: Contender, vb: list[TaskBatch], opt: str, *, weights: Sequence[float],
           grid: Sequence[float], budget: int, max_diverged: float, backtrack: bool,
           cache: Path | None, settings: Mapping) -> Choice:
    """The validation choice of init ``c`` for optimizer ``opt`` (not ``learned``)."""
    cands = [(w, sub) for w in (weights if is_physics(opt) else (math.nan,))
             for sub in dict.fromkeys((None, c.inner_set))]

    def run(w: float, sub: tuple[str, ...] | None) -> Selection:
        stage = c.staged(sub, opt)
        first = stage.get("first")
        key = {**settings, "init": c.name, "optimizer": opt, "weight": w, "grid": list(grid),
               "backtrack": backtrack, **({"adapted": list(sub)} if sub else {}),
               **({"first": [list(first[0]), first[1], "data"]} if first else {})}
        select: Callable[[], Selection] = partial(
            select_rate, c.learner(opt, w), c.state, vb, base_optimizer(opt), grid, budget,
            max_diverged=max_diverged, backtrack=backtrack, names=sub, **stage)
        return cached_selection(cache, key, c.state, vb, select)

    sels = [(w, sub, run(w, sub)) for w, sub in cands]
    w, sub, sel = min(sels, key=lambda ws: (not ws[2].eligible, best_median(ws[2])))
    log.info("%s/%s: rate %g%s%s (median validation MSE %.3g at %d steps)", c.name, opt,
             sel.rate, f", λ {w:g}" if is_physics(opt) else "",
             ", its inner-loop set only" if sub else "", best_median(sel), budget)
    return Choice(sel.rate, w, sub is not None, sel)
