"""What makes the comparison fair: rates chosen on validation, disjoint regimes, intervals.

- :func:`select_rate`: each init's test-time rate for an optimizer, from a log grid,
  minimising the median validation query MSE at one budget; a diverged task counts
  as a failure (+inf), and a rate with more than :data:`MAX_DIVERGED` of its tasks
  diverged is not eligible. It only ever sees the validation batches it is given.
- :func:`split_validation`: a regime box cut in two along one parameter, a
  validation part and a test part, both inside the original regime (so disjoint
  from whatever it was disjoint from) and disjoint from each other.
- :func:`check_disjoint`: the validation tasks lie in neither the training nor the
  test store's regime.
- :func:`bootstrap_ratio`: the ratio of two medians over paired tasks with a
  seeded percentile-bootstrap interval.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..batch import TaskBatch
from ..errors import ConfigError
from ..meta import MAML
from ..params import ParamSpec, Regime
from .adaptation import adapt_curve, repeat_tasks

log = logging.getLogger(__name__)

#: half-decade log grids of candidate test-time rates
GRIDS = {"sgd": tuple(float(10 ** (e / 2)) for e in range(-6, 1)),   # 1e-3 .. 1
         "adam": tuple(float(10 ** (e / 2)) for e in range(-8, -1)),  # 1e-4 .. 1e-1
         "lbfgs": tuple(float(10 ** (e / 2)) for e in range(-6, 1))}  # trial step 1e-3 .. 1
#: a rate with more than this fraction of validation tasks diverged is not eligible
MAX_DIVERGED = 0.10


def failures_as_inf(mse: np.ndarray) -> np.ndarray:
    """``mse`` with NaN (a diverged task) replaced by +inf: a failure ranks last."""
    return np.where(np.isnan(mse), np.inf, mse)


@dataclass(frozen=True)
class Selection:
    """The validation table of one (init, optimizer) and the rate it chose.

    ``grid`` ``[R]`` candidate rates; ``mse`` ``[R, N]`` validation query MSE at the
    selection budget (NaN where diverged); ``median`` ``[R]`` (diverged as +inf);
    ``diverged`` ``[R]`` fraction of tasks diverged; ``rate`` the chosen rate;
    ``eligible``: False when every rate had too many divergences (then the
    smallest rate is used).
    """

    grid: np.ndarray
    mse: np.ndarray
    median: np.ndarray
    diverged: np.ndarray
    rate: float
    eligible: bool


def pick(grid: Sequence[float], mse: np.ndarray,
         max_diverged: float = MAX_DIVERGED) -> Selection:
    """The rate of ``grid`` ``[R]`` with the least median of ``mse`` ``[R, N]`` (NaN =
    diverged) among those with at most ``max_diverged`` of their tasks diverged;
    ties go to the smaller rate."""
    order = np.argsort(np.asarray(grid, dtype=np.float64), kind="stable")
    g = np.asarray(grid, dtype=np.float64)[order]
    mse = np.asarray(mse, dtype=np.float64)[order]
    frac = np.isnan(mse).mean(axis=1)
    median = np.median(failures_as_inf(mse), axis=1)
    ok = frac <= max_diverged
    if ok.any():
        best = int(np.argmin(np.where(ok, median, np.inf)))
        if not np.isfinite(median[best]):
            best = int(np.flatnonzero(ok)[0])
    else:
        best = 0
    return Selection(g, mse, median, frac, float(g[best]), bool(ok.any()))


def select_rate(learner: MAML, params: Mapping[str, torch.Tensor],
                batches: Sequence[TaskBatch], optimizer: str, grid: Sequence[float],
                budget: int, *, max_diverged: float = MAX_DIVERGED,
                backtrack: bool = False, names: Sequence[str] | None = None,
                first: tuple[Sequence[str], int] | None = None,
                first_learner: MAML | None = None) -> Selection:
    """Adapt the validation ``batches`` at every rate of ``grid`` for ``budget`` steps
    (all rates in one batch of tasks × rates; ``backtrack``, ``names``, ``first`` and
    ``first_learner`` as in :func:`~.adaptation.adapt_curve`) and :func:`pick` the best."""
    if not grid or any(not (r > 0 and np.isfinite(r)) for r in grid):
        raise ConfigError(f"grid={tuple(grid)!r} for {optimizer!r} must hold rates > 0")
    g = torch.as_tensor(list(grid), dtype=torch.float64)
    parts = []
    for batch in batches:
        b = batch.num_tasks
        rates = g.repeat_interleave(b).to(device=batch.support_x.device,
                                          dtype=batch.support_x.dtype)
        curve = adapt_curve(learner, params, repeat_tasks(batch, len(grid)), optimizer,
                            rates, (budget,), backtrack=backtrack, names=names, first=first,
                            first_learner=first_learner)
        parts.append(curve.query_mse[-1].reshape(len(grid), b).numpy())
    sel = pick(grid, np.concatenate(parts, axis=1), max_diverged)
    if not sel.eligible:
        log.warning("%s: every rate of %s diverged on more than %.0f%% of the validation "
                    "tasks; using the smallest, %g", optimizer, tuple(grid),
                    100 * max_diverged, sel.rate)
    return sel


def bootstrap_ratio(a: np.ndarray, ref: np.ndarray, n: int = 1000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float, float]:
    """(median(a) / median(ref), low, high) over paired tasks ``a``, ``ref`` ``[N]``.

    NaN (diverged) counts as +inf in the medians. The interval is the percentile
    bootstrap over ``n`` resamples of the tasks drawn with ``numpy.random.
    default_rng(seed)``; NaN when the point estimate is not finite.
    """
    a, ref = failures_as_inf(np.asarray(a, float)), failures_as_inf(np.asarray(ref, float))
    if a.shape != ref.shape or a.ndim != 1 or not len(a):
        raise ConfigError(f"bootstrap_ratio needs two [N] arrays of equal N >= 1, got "
                          f"{a.shape} and {ref.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(np.median(a) / np.median(ref))
        if not np.isfinite(point) or n < 1:
            return point, float("nan"), float("nan")
        idx = np.random.default_rng(seed).integers(0, len(a), size=(n, len(a)))
        ratios = np.median(a[idx], axis=1) / np.median(ref[idx], axis=1)
    ratios = np.where(np.isnan(ratios), np.inf, ratios)  # both failed: no evidence for a
    tail = (1 - level) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail], method="inverted_cdf")
    return point, float(low), float(high)


def split_validation(regime: Regime, param: str, at: float | None = None, *,
                     fraction: float = 0.5, names: tuple[str, str] | None = None
                     ) -> tuple[Regime, Regime]:
    """(validation, test): ``regime``'s box cut along ``param`` at ``at`` (default
    ``low + fraction * (high - low)``).

    validation = ``low <= param < at`` (half-open), test = ``at <= param`` up to the
    original upper bound with the original closure; other bounds and holes are kept,
    so both parts lie in ``regime`` and share no value. Names default to
    ``<name>-validation`` and ``<name>-test``. Generate their stores with the
    bounds override ``param=low:at`` / ``param=at:high`` (:func:`bounds_of`).
    """
    if regime.box is None:
        raise ConfigError(f"regime {regime.name!r} is a set of environments; split its "
                          "points by hand into validation and test regimes")
    if param not in regime.box:
        raise ConfigError(f"param={param!r} is not a parameter of regime {regime.name!r}; "
                          f"allowed: {', '.join(regime.box)}")
    lo, hi = regime.box[param]
    if at is None:
        if not 0 < fraction < 1:
            raise ConfigError(f"fraction={fraction!r} is not allowed; it must be in (0, 1)")
        at = lo + fraction * (hi - lo)
    if not lo < at < hi:
        raise ConfigError(f"at={at!r} is not allowed; it must lie strictly inside "
                          f"{param} in [{lo:g}, {hi:g}]")
    vname, tname = names or (f"{regime.name}-validation", f"{regime.name}-test")
    note = f"{param} in [{lo:g}, {at:g})"
    val = replace(regime, name=vname, box={**regime.box, param: (lo, at)}, closed=False,
                  description=f"validation part of {regime.name}: {note}")
    test = replace(regime, name=tname, box={**regime.box, param: (at, hi)},
                   closed=regime.is_closed,
                   description=f"test part of {regime.name}: {param} from {at:g}")
    return val, test


def bounds_of(regime: Regime) -> tuple[tuple[str, float, float], ...]:
    """A box regime's bounds as ``GenerationConfig.bounds`` (``scimeta generate --bounds``)."""
    if regime.box is None:
        raise ConfigError(f"regime {regime.name!r} has no box")
    return tuple((k, float(lo), float(hi)) for k, (lo, hi) in regime.box.items())


def store_regime(attrs: Mapping) -> Regime | None:
    """The regime a store was drawn from (its ``regime_json`` attribute), or None."""
    raw = attrs.get("regime_json")
    if raw is None:
        return None
    d = json.loads(raw)
    box = None if d.get("box") is None else {k: tuple(v) for k, v in d["box"].items()}
    exclude = tuple({k: tuple(v) for k, v in h.items()} for h in d.get("exclude") or ())
    points = None if d.get("points") is None else tuple(map(tuple, d["points"]))
    return Regime(d["name"], box=box, exclude=exclude, points=points,
                  closed=d.get("closed"))


def check_disjoint(specs: Sequence[ParamSpec], validation: tuple[str, Mapping, np.ndarray],
                   others: Mapping[str, tuple[Mapping, np.ndarray]]) -> None:
    """ConfigError unless no validation task lies in another store's regime and no
    other store's task lies in the validation regime.

    ``validation`` is (path, store attrs, task params ``[N, P]``); ``others`` maps a
    label (``"train"``, ``"test"``) to (store attrs, task params). A store without a
    recorded regime is checked on its tasks only.
    """
    path, vattrs, vparams = validation
    vreg = store_regime(vattrs)
    for label, (attrs, params) in others.items():
        reg = store_regime(attrs)
        none = np.zeros(0, dtype=np.int64)
        hits = none if reg is None else np.flatnonzero(reg.members(specs, vparams))
        back = none if vreg is None else np.flatnonzero(vreg.members(specs, params))
        if len(hits) or len(back):
            row = vparams[hits[0]] if len(hits) else params[back[0]]
            raise ConfigError(
                f"validation={path!r} is not disjoint from the {label} store: parameters "
                f"{dict(zip([s.name for s in specs], row.tolist(), strict=True))} lie in "
                f"both; draw validation tasks from a regime disjoint from the training and "
                "test regimes (see scimeta.train.selection.split_validation)")
