"""System-identification reference: the family's own equation fitted to the support points.

The physicist's answer to a few-shot task: integrate the family's reference ODE
(:meth:`~scimeta.family.OdeFamily.solve`) from an unknown initial state ``y0`` at
the grid's first time ``t0``, with unknown (or known) physical parameters, and fit
both to the support points by bounded nonlinear least squares
(``scipy.optimize.least_squares``) from a few seeded starts, keeping the best. It
is reported beside the learned surrogates as a reference row — with its wall time
per task, so a user sees where a surrogate pays — not as a competitor to beat.
Periodic spectral PDE families fit the initial *field* in the finite basis their
regime draws it from (:mod:`.sysid_pde`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..errors import ConfigError, SolverFailed
from ..family import OdeFamily, ProblemFamily
from ..params import Regime

if TYPE_CHECKING:  # torch loads on first use
    from ..batch import TaskBatch

__all__ = ["REFERENCES", "SysIdFit", "check_reference", "fit_system", "predict_system",
           "sysid_query_mse", "sysid_variables"]

log = logging.getLogger(__name__)

#: the ``evaluate(reference=...)`` choices: parameters unknown, or known (the task's own)
REFERENCES = ("sysid", "sysid-known")
#: the residual where the solver fails (least_squares needs finite values)
FAILED_RESIDUAL = 1e6


@dataclass(frozen=True)
class SysIdFit:
    """The best least-squares fit of one task.

    ``params`` ``[P]`` (family order, physical units; known ones as given), ``y0``
    ``[C]`` the state at ``t0`` (state units), ``residual_rms`` the root mean square of
    the support misfit (state units), ``seconds`` the wall time of the whole fit (all
    starts), ``converged`` whether the kept start met a least_squares tolerance.
    """

    params: np.ndarray
    y0: np.ndarray
    residual_rms: float
    seconds: float
    converged: bool
    t0: float = 0.0
    rtol: float = 1e-8


def _ode(family: ProblemFamily) -> OdeFamily:
    if not isinstance(family, OdeFamily):
        raise ConfigError(f"family={family.name!r}: the system-identification reference is not "
                          "done by fit_system for PDE families; see scimeta.train.sysid_pde")
    return family


def _solve_at(family: OdeFamily, params: np.ndarray, y0: np.ndarray, t0: float,
              t: np.ndarray, rtol: float) -> np.ndarray:
    """The trajectory at times ``t`` ``[N]`` (any order, >= t0), shape ``[N, C]``."""
    grid, inverse = np.unique(t, return_inverse=True)
    if grid[0] > t0:
        out = family.solve(params, y0, np.concatenate([[t0], grid]), rtol=rtol,
                           atol=rtol * 1e-2)[1:]
    else:
        out = family.solve(params, y0, grid, rtol=rtol, atol=rtol * 1e-2)
    return out[inverse.reshape(-1)]


def check_starts(starts: object) -> int:
    """``starts`` (the number of seeded multi-starts) if it is an int >= 1."""
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise ConfigError(f"starts={starts!r} is not allowed; it must be an int >= 1")
    return starts


def param_box(family: ProblemFamily, regime: Regime | None,
              known_params: np.ndarray | None = None) -> np.ndarray:
    """Bounds ``[P, 2]`` of the fitted parameters: their physical domains within the
    regime's box (the domains alone without a regime), or ``[known, known]`` for
    ``known_params`` ``[P]`` (checked: P finite values)."""
    if known_params is not None:
        p = len(family.params)
        known = np.asarray(known_params, dtype=np.float64).reshape(-1)
        if known.shape != (p,) or not np.all(np.isfinite(known)):
            raise ConfigError(f"known_params={known.tolist()} is not allowed; it needs {p} "
                              f"finite values {list(family.param_names)}")
        return np.stack([known, known], 1)
    dom = np.array([s.domain for s in family.params], dtype=np.float64)
    if regime is None:
        return dom
    box = regime.bounds(family.params)
    return np.stack([np.maximum(dom[:, 0], box[:, 0]), np.minimum(dom[:, 1], box[:, 1])], 1)


def _initial_bounds(family: OdeFamily, regime: Regime | None) -> np.ndarray:
    """Initial-state bounds ``[C, 2]``: the family's ``initial_box`` within a regime."""
    if regime is None:
        return np.tile([-np.inf, np.inf], (len(family.state_names), 1))
    return np.asarray(family.initial_box, dtype=np.float64)


def _starts(family: OdeFamily, regime: Regime | None, pbox: np.ndarray, starts: int,
            seed: int) -> list[np.ndarray]:
    """``starts`` seeded parameter vectors ``[P]`` in the regime (all box regimes if None)."""
    rng = np.random.default_rng([seed, 7919])
    if regime is not None:
        return [regime.sample(family.params, rng, i) for i in range(starts)]
    boxes = [r.bounds(family.params) for r in family.regimes.values()]
    lo = np.min([b[:, 0] for b in boxes], axis=0)
    hi = np.max([b[:, 1] for b in boxes], axis=0)
    return [np.clip(rng.uniform(lo, hi), pbox[:, 0], pbox[:, 1]) for _ in range(starts)]


def fit_system(family: ProblemFamily, t_support: np.ndarray, y_support: np.ndarray, *,
               known_params: np.ndarray | None = None, regime: Regime | None = None,
               starts: int = 4, seed: int = 0, rtol: float = 1e-8,
               t0: float | None = None) -> SysIdFit:
    """Fit the family's ODE (unknown ``y0``; unknown or known parameters) to support points.

    Args:
        family: an ODE family (a PDE family raises ConfigError).
        t_support: support times ``[K]`` (family time unit), each >= ``t0``; need not
            include ``t0``.
        y_support: support states ``[K, C]`` (state units); NaN entries are ignored.
        known_params: ``[P]`` physical parameters to hold fixed, or None to fit them.
        regime: bounds the parameters by its box (the family's physical domains always)
            and ``y0`` by the family's ``initial_box``; starts are drawn from it. None:
            domains only, starts drawn from the union of the family's regimes.
            A parameter whose bounds collapse to one value (e.g. F = 0) is fixed.
        starts: seeded multi-starts (>= 1); the one with the least misfit is kept (the
            rest are skipped once a start fits to 100 rtol of the largest value).
        seed: seed of the starts.
        rtol: relative tolerance of the solver (atol = rtol / 100).
        t0: the time of ``y0``; default the first time of the regime's grid.

    Returns:
        A :class:`SysIdFit` (params ``[P]``, y0 ``[C]``, residual_rms, seconds, converged).
    """
    from scipy.optimize import least_squares

    fam = _ode(family)
    check_starts(starts)
    if not (isinstance(rtol, float | int) and 0 < rtol < 1):
        raise ConfigError(f"rtol={rtol!r} is not allowed; it must be a number in (0, 1)")
    t = np.asarray(t_support, dtype=np.float64).reshape(-1)
    y = np.asarray(y_support, dtype=np.float64)
    c = len(fam.state_names)
    if y.shape != (len(t), c):
        raise ConfigError(f"y_support has shape {y.shape}; t_support has {len(t)} times and "
                          f"family {fam.name!r} has {c} channels, so [{len(t)}, {c}] is needed")
    t0 = float(fam.time_grid(regime).t0 if t0 is None else t0)
    if len(t) == 0 or not np.all(np.isfinite(t)) or t.min() < t0:
        raise ConfigError(f"t_support={t.tolist()} is not allowed; it needs finite times "
                          f">= t0 = {t0:g}")
    mask = np.isfinite(y)
    pbox, ybox = param_box(fam, regime, known_params), _initial_bounds(fam, regime)
    free = pbox[:, 0] < pbox[:, 1]
    if not mask.any():
        raise ConfigError("y_support has no finite value; at least one is needed")
    if mask.sum() < c + free.sum():
        log.warning("%d finite support values for %d unknowns: the fit is underdetermined",
                    int(mask.sum()), int(c + free.sum()))
    lb, ub = (np.concatenate([pbox[free, k], ybox[:, k]]) for k in (0, 1))
    fixed = pbox[:, 0].copy()

    def unpack(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        params = fixed.copy()
        params[free] = z[:int(free.sum())]
        return params, z[int(free.sum()):]

    def residual(z: np.ndarray) -> np.ndarray:
        try:
            pred = _solve_at(fam, *unpack(z), t0, t, rtol)
        except SolverFailed:
            return np.full(int(mask.sum()), FAILED_RESIDUAL)
        r = (pred - y)[mask]
        return np.where(np.isfinite(r), r, FAILED_RESIDUAL)

    began = time.perf_counter()
    rng = np.random.default_rng([seed, 104729])
    ylo = np.where(np.isfinite(ybox[:, 0]), ybox[:, 0], -1.0)
    yhi = np.where(np.isfinite(ybox[:, 1]), ybox[:, 1], 1.0)
    best, exact = None, 100 * rtol * float(np.abs(y[mask]).max(initial=1e-300))
    for start in _starts(fam, regime, pbox, starts, seed):
        z0 = np.clip(np.concatenate([start[free], rng.uniform(ylo, yhi)]), lb, ub)
        sol = least_squares(residual, z0, bounds=(lb, ub), method="trf", x_scale="jac",
                            diff_step=max(rtol, 1e-10) ** 0.5, ftol=1e-12, xtol=1e-12,
                            gtol=1e-12, max_nfev=200 * (len(z0) + 1))
        if best is None or sol.cost < best.cost:
            best = sol
        if np.sqrt(2 * best.cost / mask.sum()) <= exact:  # fits to the solver's accuracy
            break
    assert best is not None
    params, y0 = unpack(best.x)
    rms = float(np.sqrt(2 * best.cost / int(mask.sum())))
    return SysIdFit(params, np.array(y0), rms, time.perf_counter() - began,
                    bool(best.status > 0), t0, float(rtol))


def predict_system(family: ProblemFamily, fit: SysIdFit, t: np.ndarray) -> np.ndarray:
    """The fitted system's state at times ``t`` ``[Q]`` (>= ``fit.t0``), shape ``[Q, C]``
    (state units); raises :class:`~scimeta.errors.SolverFailed` if the solver fails."""
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    return (np.zeros((0, len(family.state_names))) if len(t) == 0
            else _solve_at(_ode(family), fit.params, fit.y0, fit.t0, t, fit.rtol))


def batch_arrays(batch: TaskBatch, known: bool, y_scale: np.ndarray | None) -> tuple:
    """(sx, sy, qx, qy, params or None, scale ``[C]``) of ``batch`` as float64 arrays;
    ``known`` needs the tasks' params; ``y_scale`` None: ones (state units)."""
    sx, sy, qx, qy = (a.detach().cpu().double().numpy() for a in batch[:4])
    tp = batch.params.detach().cpu().double().numpy() if batch.params is not None else None
    if known and tp is None:
        raise ConfigError("known=True needs batch.params; got None (the tasks' parameters)")
    scale = np.ones(sy.shape[-1]) if y_scale is None else np.asarray(y_scale, float)
    return sx, sy, qx, qy, tp, scale


def sysid_query_mse(family: ProblemFamily, batch: TaskBatch, *, known: bool = False,
                    regime: Regime | None = None, t0: float | None = None,
                    y_scale: np.ndarray | None = None, starts: int = 4, seed: int = 0,
                    rtol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit every task of ``batch`` (:func:`fit_system`) and score it on its query points.

    Args:
        family: an ODE family.
        batch: tasks with support_x/query_x ``[B, K, 1]`` (time), support_y/query_y
            ``[B, K, C]`` (state units) and, for ``known``, params ``[B, P]``.
        known: hold the parameters at the task's true ``batch.params``.
        regime, t0, starts, seed, rtol: as in :func:`fit_system` (task b uses seed + b).
        y_scale: ``[C]`` per-channel scale dividing the errors (the learners' normalised
            MSE), or None for state units.

    Returns:
        ``mse`` ``[B]`` (mean over query points and channels of the squared, scaled
        error; NaN where the fitted system cannot be integrated), ``seconds`` ``[B]``
        (fit and prediction, s) and ``converged`` ``[B]`` bool.
    """
    fam = _ode(family)
    if batch.support_x.shape[-1] != 1:
        raise ConfigError(f"batch has {batch.support_x.shape[-1]} input coordinates; the "
                          "system-identification reference needs time only (an ODE store)")
    sx, sy, qx, qy, tp, scale = batch_arrays(batch, known, y_scale)
    b = len(sx)
    mse, seconds, ok = np.full(b, np.nan), np.zeros(b), np.zeros(b, dtype=bool)
    for i in range(b):
        began = time.perf_counter()
        fit = fit_system(fam, sx[i, :, 0], sy[i], known_params=tp[i] if known and
                         tp is not None else None, regime=regime, starts=starts,
                         seed=seed + i, rtol=rtol, t0=t0)
        try:
            pred = predict_system(fam, fit, qx[i, :, 0])
            mse[i] = float(np.nanmean(((pred - qy[i]) / scale) ** 2))
        except SolverFailed:
            log.warning("sysid: task %d: the fitted system cannot be integrated", i)
        seconds[i], ok[i] = time.perf_counter() - began, fit.converged
        log.info("sysid %d/%d: query MSE %.3g, %.2f s, converged %s", i + 1, b, mse[i],
                 seconds[i], ok[i])
    return mse, seconds, ok


def check_reference(family: ProblemFamily, reference: str | None) -> None:
    """Raise ConfigError unless ``reference`` is None or one of :data:`REFERENCES` and,
    when given, ``family`` is an ODE family or a periodic spectral PDE family."""
    if reference is None:
        return
    if reference not in REFERENCES:
        raise ConfigError(f"reference={reference!r} is not allowed; use None or one of "
                          f"{', '.join(REFERENCES)}")
    if not isinstance(family, OdeFamily):
        from .sysid_pde import spectral_family

        spectral_family(family)


def sysid_variables(family: ProblemFamily, store: str, n: int, reference: str,
                    y_scale: np.ndarray | None = None, seed: int = 0) -> xr.Dataset:
    """The reference's per-task variables for :func:`~.evaluate.evaluate` over the first
    ``n`` ok tasks of ``store`` (its support and query points, read in float64).
    Args:
        family: the store's ODE family.
        store: path of the test store.
        n: tasks to fit.
        reference: ``"sysid"`` (parameters fitted, bounded by the store's regime) or
            ``"sysid-known"`` (parameters held at each task's true values).
        y_scale: ``[C]`` scale of the learners' normalised MSE, or None (state units).
        seed: seed of the multi-starts.

    Returns:
        A Dataset over ``task`` with ``sysid_mse`` (units of the learners' query MSE),
        ``sysid_seconds`` (s per task) and ``sysid_converged`` (bool).
    """
    import torch

    from ..data import TaskReader

    check_reference(family, reference)
    reader = TaskReader(store, dtype=torch.float64)
    regime = family.regimes.get(reader.meta.regime)
    known = reference == "sysid-known"
    what = "known (each task's true values)" if known else (
        f"fitted within regime {reader.meta.regime!r}" if regime is not None
        else "fitted within the physical domains")
    log.info("sysid reference on %d tasks, parameters %s", n, what)
    batch, t0 = reader.batch(range(n)), float(reader.meta.time[0])
    query_mse: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]] = sysid_query_mse
    if isinstance(family, OdeFamily):
        note = (f"the family's reference ODE fitted to the support points by least squares "
                f"(scipy least_squares, 4 seeded starts, solver rtol 1e-8); initial state "
                f"fitted, parameters {what}")
    else:
        from .sysid_pde import pde_query_mse

        query_mse = pde_query_mse
        note = (f"the family's reference spectral solver fitted to the support points by "
                f"least squares (scipy least_squares, 2 seeded starts, forward-difference "
                f"Jacobian in one batched solve); initial field fitted in its regime's "
                f"basis, parameters {what}")
    mse, sec, ok = query_mse(family, batch, known=known, regime=regime, t0=t0,
                             y_scale=y_scale, seed=seed)
    return xr.Dataset({
        "sysid_mse": ("task", mse, {"long_name": "query MSE of the system-identification "
                                    "reference (NaN: not integrable)", "protocol": note}),
        "sysid_seconds": ("task", sec, {"long_name": "wall time of the fit and prediction",
                                        "units": "s"}),
        "sysid_converged": ("task", ok, {"long_name": "least_squares met a tolerance"}),
    })
