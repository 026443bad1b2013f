"""Exponential time differencing Runge-Kutta 4 (Cox & Matthews 2002), batched over tasks.

Solves ``du/dt = L u + N(u)`` for spectra ``u`` ``[N, *modes, C]`` where the linear
operator is diagonal, ``L`` broadcastable to ``u`` (it may differ per task and per
channel, e.g. one diffusivity per task gives ``L`` of shape ``[N, *modes, 1]``).
The phi-function coefficients are evaluated by the contour-integral average of
Kassam & Trefethen (2005): a mean over ``n_contour`` points on a circle of radius
1 around each ``h L``, which avoids the cancellation of the closed forms near
``h L = 0``. Steps are fixed: each output interval is split into equal steps no
longer than the requested maximum, so outputs land exactly on the requested times.

:class:`ETDRK4` wraps :func:`etdrk4_solve` as a :class:`~scimeta.solvers.stepper.Stepper`
that declares ``order = 4``. Bad arguments raise
:class:`~scimeta.errors.SolverInputError` naming the argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import SolverInputError
from .stepper import Nonlinear, Observe

_CHUNK = 1 << 16  # contour evaluations per block (bounds the temporary memory)


def etdrk4_coefficients(lin: np.ndarray, h: float, n_contour: int = 32) -> dict[str, np.ndarray]:
    """ETDRK4 coefficients for the diagonal operator ``lin`` (any shape) and step ``h``.

    Returns ``E = e^{hL}``, ``E2 = e^{hL/2}`` and the weights ``Q``, ``f1``, ``f2``,
    ``f3`` (same shape as ``lin``; real if ``lin`` is real). Units: ``lin`` in
    1/time, ``h`` in time; the weights carry one factor of time.
    """
    if int(n_contour) != n_contour or n_contour < 1:
        raise SolverInputError(f"n_contour must be a positive integer, got n_contour={n_contour}")
    lin = np.asarray(lin)
    flat = (h * lin).reshape(-1).astype(np.complex128)
    if np.iscomplexobj(lin):
        roots = np.exp(2j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    else:
        # real operator: the integrands satisfy f(conj z) = conj f(z), so the mean over
        # the full circle equals the real part of the mean over its upper half
        half = max(1, n_contour // 2)
        roots = np.exp(1j * np.pi * (np.arange(1, half + 1) - 0.5) / half)
    out = {key: np.empty(flat.shape, np.complex128) for key in ("Q", "f1", "f2", "f3")}
    for start in range(0, flat.size, max(1, _CHUNK // n_contour)):
        sl = slice(start, start + max(1, _CHUNK // n_contour))
        z = flat[sl, None] + roots[None, :]
        ez = np.exp(z)
        z3 = z**3
        out["Q"][sl] = h * np.mean((np.exp(z / 2) - 1) / z, axis=1)
        out["f1"][sl] = h * np.mean((-4 - z + ez * (4 - 3 * z + z**2)) / z3, axis=1)
        out["f2"][sl] = h * np.mean((2 + z + ez * (z - 2)) / z3, axis=1)
        out["f3"][sl] = h * np.mean((-4 - 3 * z - z**2 + ez * (4 - z)) / z3, axis=1)
    coef: dict[str, np.ndarray] = {key: v.reshape(lin.shape) for key, v in out.items()}
    coef["E"] = np.exp(h * lin.astype(np.complex128))
    coef["E2"] = np.exp(h * lin.astype(np.complex128) / 2)
    if not np.iscomplexobj(lin):
        coef = {key: v.real.copy() for key, v in coef.items()}
    return coef


def etdrk4_step(u: np.ndarray, nonlinear: Nonlinear, c: dict[str, np.ndarray]) -> np.ndarray:
    """One Cox-Matthews ETDRK4 step of an autonomous system; shapes as ``u``."""
    nu = nonlinear(u)
    a = c["E2"] * u + c["Q"] * nu
    na = nonlinear(a)
    b = c["E2"] * u + c["Q"] * na
    nb = nonlinear(b)
    cc = c["E2"] * a + c["Q"] * (2 * nb - nu)
    nc = nonlinear(cc)
    return c["E"] * u + c["f1"] * nu + 2 * c["f2"] * (na + nb) + c["f3"] * nc


def substeps(t: np.ndarray, max_step: float) -> np.ndarray:
    """Equal steps per output interval: ``ceil(dt_j / max_step)`` for each ``j``, ``[T-1]``."""
    dts = np.diff(_times(t))
    if not (max_step > 0 and math.isfinite(max_step)):
        raise SolverInputError(f"max_step must be positive and finite, got max_step={max_step}")
    return np.maximum(1, np.ceil(dts / max_step * (1 - 1e-12))).astype(int)


def etdrk4_solve(
    u0: np.ndarray,
    lin: np.ndarray,
    nonlinear: Nonlinear,
    t: np.ndarray,
    max_step: float,
    observe: Observe | None = None,
    n_contour: int = 32,
) -> np.ndarray:
    """Integrate from ``t[0]`` and return ``observe(u)`` at every time of ``t``.

    u0 ``[N, *modes, C]`` spectra; lin broadcastable to u0; t ``[T]`` strictly
    increasing; ``max_step`` the largest internal step (time units). Returns
    ``[N, T, ...]`` where ``...`` is the shape of ``observe(u)[i]`` (default: the
    spectrum itself). Overflow yields inf/NaN in the affected tasks only (tasks
    never mix), which the caller must check.
    """
    observe = observe if observe is not None else (lambda x: x)
    t = np.asarray(t, dtype=np.float64)
    steps = substeps(t, max_step)
    first = observe(u0)
    out = np.empty((first.shape[0], len(t), *first.shape[1:]), dtype=first.dtype)
    out[:, 0] = first
    cache: dict[float, dict[str, np.ndarray]] = {}
    u = u0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for j, n_sub in enumerate(steps):
            h = float((t[j + 1] - t[j]) / n_sub)
            key = round(h, 14)
            if key not in cache:
                cache[key] = etdrk4_coefficients(lin, h, n_contour)
            for _ in range(n_sub):
                u = etdrk4_step(u, nonlinear, cache[key])
            out[:, j + 1] = observe(u)
    return out


def group_by_step(max_step: np.ndarray, t: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Group tasks whose step limits round to the same power-of-two fraction.

    max_step ``[N]`` per-task step limits. The base step ``dt_min / 2^m`` (``dt_min``
    the shortest output interval) is the largest that does not exceed a task's
    limit; tasks sharing ``m`` are solved together. A task's result therefore
    depends only on that task, whatever the batch. Returns ``[(indices, step)]``.
    """
    max_step = np.asarray(max_step, dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(max_step) & (max_step > 0)))
    if bad.size:
        raise SolverInputError(f"max_step must hold positive finite per-task step limits, got "
                               f"max_step[{bad[0]}]={max_step.flat[bad[0]]}")
    dt_min = float(np.min(np.diff(_times(t, need=2))))
    level = np.maximum(0, np.ceil(np.log2(dt_min / max_step) - 1e-12)).astype(int)
    return [(np.flatnonzero(level == m), dt_min / 2.0**m) for m in np.unique(level)]


def _times(t: np.ndarray, need: int = 1) -> np.ndarray:
    """``t`` as a float64 ``[T]`` array; raises unless 1D, finite, strictly increasing."""
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < need:
        raise SolverInputError(f"t must be a 1D array of at least {need} times, "
                               f"got t.shape={t.shape}")
    if not np.all(np.isfinite(t)):
        j = int(np.argmin(np.isfinite(t)))
        raise SolverInputError(f"t must hold finite times, got t[{j}]={t[j]}")
    dts = np.diff(t)
    if np.any(dts <= 0):
        j = int(np.argmax(dts <= 0))
        raise SolverInputError(f"t must be strictly increasing, got t[{j}]={t[j]:g} >= "
                               f"t[{j + 1}]={t[j + 1]:g}")
    return t


@dataclass(frozen=True)
class ETDRK4:
    """The ETDRK4 :class:`~scimeta.solvers.stepper.Stepper`: :func:`etdrk4_solve`, order 4.

    ``n_contour`` contour points per coefficient (see :func:`etdrk4_coefficients`).
    """

    n_contour: int = 32
    name: ClassVar[str] = "etdrk4"
    order: ClassVar[int] = 4

    def __post_init__(self) -> None:
        if int(self.n_contour) != self.n_contour or self.n_contour < 1:
            raise SolverInputError(f"n_contour must be a positive integer, "
                                   f"got n_contour={self.n_contour}")

    def solve(self, u0: np.ndarray, lin: np.ndarray, nonlinear: Nonlinear, t: np.ndarray,
              max_step: float, observe: Observe | None = None) -> np.ndarray:
        """:func:`etdrk4_solve` with this stepper's ``n_contour``; shapes as there."""
        return etdrk4_solve(u0, lin, nonlinear, t, max_step, observe, self.n_contour)
