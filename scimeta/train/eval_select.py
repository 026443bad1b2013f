"""One init's test-time choices on the validation store: rate, λ, adapted set and the
length of a first stage.

For each optimizer of an evaluation, every candidate — each physics weight λ for the
``+physics`` optimizers, for an init whose algorithm adapts only part of its
parameters (ANIL's head, CAVIA's context), that part alone or every parameter, and for
an init with a first stage (the decoder's code fitted alone first) each of its lengths
when every parameter adapts — gets
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
    """The chosen rate, λ (NaN: data only), adapted set and first-stage length (-1:
    none) of one (init, optimizer)."""

    rate: float
    weight: float
    inner_set: bool
    selection: Selection
    first_steps: int = -1


def best_median(sel: Selection) -> float:
    """The median validation MSE at the chosen rate."""
    return float(sel.median[int(np.argmax(sel.grid == sel.rate))])


def choose(c: Contender, vb: list[TaskBatch], opt: str, *, weights: Sequence[float],
           grid: Sequence[float], budget: int, max_diverged: float, backtrack: bool,
           cache: Path | None, settings: Mapping, code_steps: Sequence[int] = (-1,)
           ) -> Choice:
    """The validation choice of init ``c`` for optimizer ``opt`` (not ``learned``);
    ``code_steps``: the first-stage lengths tried when ``c`` has one (-1: its own)."""
    cands = [(w, sub, n) for w in (weights if is_physics(opt) else (math.nan,))
             for sub in dict.fromkeys((None, c.inner_set))
             for n in (code_steps if c.has_stage(sub, opt) else (-1,))]

    def run(w: float, sub: tuple[str, ...] | None, n: int) -> Selection:
        stage = c.staged(sub, opt, n)
        first = stage.get("first")
        key = {**settings, "init": c.name, "optimizer": opt, "weight": w, "grid": list(grid),
               "backtrack": backtrack, **({"adapted": list(sub)} if sub else {}),
               **({"first": [list(first[0]), first[1], "data"]} if first else {})}
        select: Callable[[], Selection] = partial(
            select_rate, c.learner(opt, w), c.state, vb, base_optimizer(opt), grid, budget,
            max_diverged=max_diverged, backtrack=backtrack, names=sub, **stage)
        return cached_selection(cache, key, c.state, vb, select)

    sels = [(w, sub, n, run(w, sub, n)) for w, sub, n in cands]
    w, sub, n, sel = min(sels, key=lambda ws: (not ws[3].eligible, best_median(ws[3])))
    first = c.staged(sub, opt, n).get("first", ((), -1))[1]
    log.info("%s/%s: rate %g%s%s%s (median validation MSE %.3g at %d steps)", c.name, opt,
             sel.rate, f", λ {w:g}" if is_physics(opt) else "",
             ", its inner-loop set only" if sub else "",
             f", {first} first-stage steps" if first >= 0 else "", best_median(sel), budget)
    return Choice(sel.rate, w, sub is not None, sel, first)


def untuned(cons: Sequence[Contender], optimizers: Sequence[str], inner_lr: float,
            adam_lr: float, weight: float, code_steps: Sequence[int]
            ) -> tuple[np.ndarray, ...]:
    """The choices without a validation store, each ``[n_inits, n_optimizers]``: rate
    (``sgd`` at ``inner_lr``, ``adam`` at ``adam_lr``, ``lbfgs`` at 1; NaN for learned
    per-parameter rates), λ (``weight`` for the ``+physics`` optimizers, else NaN),
    the inner-loop set (for ``learned`` only) and the first-stage length
    (``code_steps[0]`` where there is one, else -1)."""
    shape = (len(cons), len(optimizers))
    rate, lam = np.full(shape, np.nan), np.full(shape, np.nan)
    inner = np.zeros(shape, dtype=bool)
    first = np.full(shape, -1, dtype=np.int64)
    for i, c in enumerate(cons):
        for j, opt in enumerate(optimizers):
            if opt == "learned":
                rate[i, j] = math.nan if c.own.rule.learned else inner_lr
                inner[i, j] = c.inner_set is not None
            else:
                rate[i, j] = {"sgd": inner_lr, "adam": adam_lr, "lbfgs": 1.0}[
                    base_optimizer(opt)]
            if is_physics(opt):
                lam[i, j] = weight
            if c.has_stage(None, opt):
                first[i, j] = code_steps[0]
    return rate, lam, inner, first
