"""System-identification reference for periodic PDE families (the physicist's answer).

As for ODE families (:mod:`.sysid`), the family's own reference solver is fitted to
a task's support points by bounded nonlinear least squares; here the solver is the
batched spectral one (:meth:`~scimeta.pde.SpectralPdeFamily.solve_batch`) and the
unknown initial state is a *field*. It is fitted in the finite basis the family
draws it from (:func:`initial_basis`):

- a regime with a named initial rule (``Regime.initial``, e.g. Burgers' classic
  ``u0 = -sin(pi x)``) has a known, deterministic initial field: nothing to fit but
  the parameters;
- a 1-D :class:`~scimeta.initial_fields.SineSeries` draws ``offset + sum_i A_i sin(2
  pi m_i (x - lo) / L + phi_i)`` with modes ``m_i`` in 1..M: every such field is
  ``offset + sum_m a_m sin(2 pi m (x - lo) / L) + b_m cos(...)``, so the 2 M
  coefficients per channel (``|a_m|, |b_m| <= n_waves · amplitude``) span it exactly.

Other initial-condition families (2-D series, seeds, random fields) have no finite
basis here and raise :class:`~scimeta.errors.ConfigError`. The Jacobian is taken by
forward differences with all perturbed fields in one batched solve. Support points
must lie on the store's grid (they do: stores sample grid points).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ..batch import TaskBatch
from ..errors import ConfigError
from ..family import ProblemFamily
from ..initial_fields import SineSeries
from ..params import Regime
from ..pde import SpectralPdeFamily
from .sysid import FAILED_RESIDUAL, batch_arrays, check_starts, param_box

log = logging.getLogger(__name__)

#: forward-difference step, relative to each unknown's scale (the solver is accurate to
#: about 1e-8 relative, so the step's truncation and round-off balance near 1e-4)
_FD_STEP = 1e-4


@dataclass(frozen=True)
class InitialBasis:
    """Initial fields ``offset + sum_i c_i basis[i]``, ``|c_i| <= bound``.

    ``offset`` ``[*space, C]``, ``basis`` ``[n, *space, C]`` (n = 0: a known field).
    """

    offset: np.ndarray
    basis: np.ndarray
    bound: float

    def field(self, coef: np.ndarray) -> np.ndarray:
        """``[*space, C]`` for coefficients ``[n]``."""
        return self.offset + np.tensordot(coef, self.basis, axes=(0, 0))


@dataclass(frozen=True)
class PdeFit:
    """The kept least-squares fit of one task: ``params`` ``[P]`` (physical units),
    ``coef`` ``[n]`` (initial-basis coefficients), ``residual_rms`` (state units),
    ``seconds`` (wall time of the fit), ``converged`` (a least_squares tolerance met)."""

    params: np.ndarray
    coef: np.ndarray
    residual_rms: float
    seconds: float
    converged: bool


def spectral_family(family: ProblemFamily) -> SpectralPdeFamily:
    if not isinstance(family, SpectralPdeFamily):
        raise ConfigError(f"family={family.name!r}: the system-identification reference "
                          "needs an ODE family or a periodic spectral PDE family")
    return family


def initial_basis(family: SpectralPdeFamily, regime: Regime | None) -> InitialBasis:
    """The finite family of initial fields the regime draws from (see the module)."""
    shape = (*(family.shape[a] for a in family.axes), len(family.state_names))
    rule = regime.initial if regime is not None else None
    if rule is not None:
        first = family.initial_state(rule, np.random.default_rng(0))
        if not np.array_equal(first, family.initial_state(rule, np.random.default_rng(1))):
            raise ConfigError(f"initial rule {rule!r} of family {family.name!r} is random; "
                              "the system-identification reference has no basis for it")
        return InitialBasis(np.asarray(first, float), np.zeros((0, *shape)), 0.0)
    init = family.initial
    if not (isinstance(init, SineSeries) and len(family.axes) == 1 and not init.unit_interval):
        raise ConfigError(f"family {family.name!r}: initial condition {init!r} has no finite "
                          "basis for the system-identification reference (supported: a 1-D "
                          "SineSeries without unit_interval, or a regime's named rule)")
    (lo, _), length = next(iter(family.domain.values())), family.lengths[0]
    x = family.space[family.axes[0]]
    channels = len(family.state_names)
    basis = []
    for c in range(channels):
        for m in range(1, init.max_mode + 1):
            for wave in (np.sin, np.cos):
                b = np.zeros(shape)
                b[:, c] = wave(2 * np.pi * m * (x - lo) / length)
                basis.append(b)
    return InitialBasis(np.full(shape, float(init.offset)), np.stack(basis),
                        float(init.n_waves * init.amplitude))


class _Points:
    """Grid indices of points ``[N, 1 + d]`` (t, x...) on the family's stored grid."""

    def __init__(self, family: SpectralPdeFamily, x: np.ndarray, t0: float) -> None:
        times = np.unique(x[:, 0])
        if times.min() < t0:
            raise ConfigError(f"points at t = {times.min():g} precede t0 = {t0:g}")
        self.times = times if times[0] == t0 else np.concatenate([[t0], times])
        self.t_index = np.searchsorted(self.times, x[:, 0])
        self.x_index = []
        for k, axis in enumerate(family.axes):
            lo = family.domain[axis][0]
            n, dx = family.shape[axis], family.spacing[k]
            pos = (x[:, 1 + k] - lo) / dx
            idx = np.rint(pos)
            if np.abs(pos - idx).max(initial=0.0) > 1e-6:
                raise ConfigError(f"points off the {axis} grid of family {family.name!r} "
                                  f"({n} points): the reference solver's values are on it")
            self.x_index.append(idx.astype(int) % n)

    def take(self, fields: np.ndarray) -> np.ndarray:
        """Values ``[R, N, C]`` at the points from solver fields ``[R, T, *space, C]``."""
        index: tuple = (slice(None), self.t_index, *self.x_index)
        return fields[index]


def fit_pde(family: ProblemFamily, x_support: np.ndarray, y_support: np.ndarray, *,
            known_params: np.ndarray | None = None, regime: Regime | None = None,
            starts: int = 2, seed: int = 0, t0: float = 0.0) -> tuple[PdeFit, InitialBasis]:
    """Fit parameters (unless known) and the initial field's coefficients to support
    points ``x_support`` ``[K, 1 + d]`` (t, x...), ``y_support`` ``[K, C]``.

    Start 0 has zero coefficients and the regime's centre; later starts are seeded
    draws in the bounds. Parameters are bounded by the regime's box.
    """
    from scipy.optimize import least_squares

    fam = spectral_family(family)
    check_starts(starts)
    basis = initial_basis(fam, regime)
    pts = _Points(fam, np.asarray(x_support, float), t0)
    y = np.asarray(y_support, float)
    if known_params is None and regime is None:
        raise ConfigError("fitting the parameters needs a regime to bound them")
    pbox = param_box(fam, regime, known_params)
    free = pbox[:, 0] < pbox[:, 1]
    n_free, n_coef = int(free.sum()), len(basis.basis)
    lb = np.concatenate([pbox[free, 0], np.full(n_coef, -basis.bound)])
    ub = np.concatenate([pbox[free, 1], np.full(n_coef, basis.bound)])
    scale = np.maximum(ub - lb, 1e-12)

    def unpack(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        params = pbox[:, 0].copy()
        params[free] = z[:n_free]
        return params, z[n_free:]

    def solve(zs: np.ndarray) -> np.ndarray:
        """Residuals ``[R, K·C]`` of rows ``zs`` ``[R, n]``, one batched solve."""
        params, fields = zip(*(unpack(z) for z in zs), strict=True)
        y0 = np.stack([basis.field(c) for c in fields])
        out, status = fam.solve_batch(np.stack(params), y0, pts.times)
        r = (pts.take(out) - y).reshape(len(zs), -1)
        r[(status != 0) | ~np.isfinite(r).all(axis=1)] = FAILED_RESIDUAL
        return r

    cache: dict[bytes, np.ndarray] = {}

    def residual(z: np.ndarray) -> np.ndarray:
        cache.clear()
        cache[z.tobytes()] = solve(z[None])[0]
        return cache[z.tobytes()]

    def jacobian(z: np.ndarray) -> np.ndarray:
        h = _FD_STEP * scale
        step = np.where(z + h <= ub, h, -h)  # stay inside the bounds
        rows = z[None] + np.diag(step)
        base = cache.get(z.tobytes())
        r = solve(rows if base is not None else np.vstack([z[None], rows]))
        if base is None:
            base, r = r[0], r[1:]
        return ((r - base) / step[:, None]).T

    began = time.perf_counter()
    rng = np.random.default_rng([seed, 15485863])
    best = None
    for k in range(starts):
        z0 = (np.concatenate([pbox[free].mean(1), np.zeros(n_coef)]) if k == 0
              else rng.uniform(lb, ub))
        sol = least_squares(residual, z0, jac=jacobian, bounds=(lb, ub), method="trf",
                            x_scale=scale, ftol=1e-10, xtol=1e-10, gtol=1e-10,
                            max_nfev=50 * (len(z0) + 1))
        if best is None or sol.cost < best.cost:
            best = sol
        if np.sqrt(2 * best.cost / y.size) <= 1e-6 * max(float(np.abs(y).max()), 1e-300):
            break
    assert best is not None
    params, coef = unpack(best.x)
    rms = float(np.sqrt(2 * best.cost / y.size))
    return PdeFit(params, coef, rms, time.perf_counter() - began, bool(best.status > 0)), basis


def predict_pde(family: ProblemFamily, fit: PdeFit, basis: InitialBasis, x: np.ndarray,
                t0: float = 0.0) -> np.ndarray:
    """The fitted system at points ``x`` ``[Q, 1 + d]``, shape ``[Q, C]`` (NaN if the
    solver flags the fitted task)."""
    fam = spectral_family(family)
    pts = _Points(fam, np.asarray(x, float), t0)
    out, status = fam.solve_batch(fit.params[None], basis.field(fit.coef)[None], pts.times)
    pred = pts.take(out)[0]
    return np.full_like(pred, np.nan) if status[0] != 0 else pred


def pde_query_mse(family: ProblemFamily, batch: TaskBatch, *, known: bool = False,
                  regime: Regime | None = None, t0: float = 0.0,
                  y_scale: np.ndarray | None = None, seed: int = 0,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~.sysid.sysid_query_mse` for a periodic PDE family: per task (query MSE,
    scaled by ``y_scale`` as there; seconds; converged) of :func:`fit_pde` on its
    support points (x ``[B, K, 1 + d]``), scored on its query points."""
    sx, sy, qx, qy, tp, scale = batch_arrays(batch, known, y_scale)
    b = len(sx)
    mse, seconds, ok = np.full(b, np.nan), np.zeros(b), np.zeros(b, dtype=bool)
    for i in range(b):
        began = time.perf_counter()
        fit, basis = fit_pde(family, sx[i], sy[i], known_params=tp[i] if known and tp is not None
                             else None, regime=regime, seed=seed + i, t0=t0)
        pred = predict_pde(family, fit, basis, qx[i], t0)
        mse[i] = float(np.mean(((pred - qy[i]) / scale) ** 2))
        seconds[i], ok[i] = time.perf_counter() - began, fit.converged
        log.info("sysid %d/%d: query MSE %.3g, %.1f s, converged %s", i + 1, b, mse[i],
                 seconds[i], ok[i])
    return mse, seconds, ok
