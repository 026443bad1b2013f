"""Our number beside a published one: find the matching cell, compute the same
statistic, and say where we stand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._collect import Evaluation
from .published import Published

#: z of a normal 95% interval, as in docs/protocols.md
Z95 = 1.96


@dataclass(frozen=True)
class Comparison:
    """One published row against one of our evaluations (``ours`` NaN: no match)."""

    published: Published
    evaluation: str
    run: str
    ours: float
    half_width: float
    n_tasks: int
    n_diverged: int

    @property
    def ratio(self) -> float:
        """Our figure over the published one."""
        return self.ours / self.published.value

    @property
    def verdict(self) -> str:
        """``at or below`` (ratio <= 1) or ``above (×R)``."""
        if not math.isfinite(self.ratio):
            return "no result"
        return "at or below" if self.ratio <= 1.0 else f"above (×{self.ratio:.3g})"

    @property
    def within_spread(self) -> str:
        """Whether ours lies inside the published ``±`` (``yes``/``no``/``–``)."""
        s = self.published.spread
        if s is None or not math.isfinite(self.ours):
            return "–"
        return "yes" if abs(self.ours - self.published.value) <= s else "no"


def _matches(pub: Published, e: Evaluation, init: str, optimizer: str, budget: int) -> bool:
    want = pub.match
    have = {"family": e.attrs.get("family"), "regime": e.attrs.get("regime"),
            "rates_tuned": int(e.attrs.get("rates_tuned", 0)), "support": e.support,
            "init": init, "optimizer": optimizer}
    if any(k not in have or have[k] != v for k, v in want.items() if k != "budget"):
        return False
    return int(want.get("budget", -1)) == budget


def mean_mse(e: Evaluation, init: str, optimizer: str, budget: int) -> tuple[float, float, int]:
    """Mean query MSE over the tasks that did not diverge, the half width of its
    normal 95% interval (1.96 standard errors) and the number of diverged tasks."""
    import xarray as xr

    with xr.open_dataset(e.path, engine="h5netcdf") as ds:
        mse = np.asarray(ds["query_mse"].sel(init=init, optimizer=optimizer,
                                             budget=budget).values, dtype=np.float64)
    ok = mse[np.isfinite(mse)]
    if ok.size == 0:
        return math.nan, math.nan, int(mse.size)
    half = Z95 * float(ok.std(ddof=1)) / math.sqrt(ok.size) if ok.size > 1 else math.nan
    return float(ok.mean()), half, int(mse.size - ok.size)


def compare(published: list[Published], evals: list[Evaluation]) -> list[Comparison]:
    """Every (published row, matching evaluation) pair, in the order of ``published``;
    a row with no matching evaluation gives one comparison with ``ours`` NaN."""
    import xarray as xr

    out: list[Comparison] = []
    for pub in published:
        found = []
        for e in evals:
            budget = int(pub.match.get("budget", -1))
            if budget not in e.budgets:
                continue
            with xr.open_dataset(e.path, engine="h5netcdf") as ds:
                pairs = [(str(i), str(o)) for i in ds["init"].values
                         for o in ds["optimizer"].values]
            for init, opt in pairs:
                if _matches(pub, e, init, opt, budget):
                    mean, half, n_div = mean_mse(e, init, opt, budget)
                    found.append(Comparison(pub, e.name, e.run, mean, half, e.n_tasks,
                                            n_div))
        out += found or [Comparison(pub, "–", "–", math.nan, math.nan, 0, 0)]
    return out
