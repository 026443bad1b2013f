"""Exponential time differencing Runge-Kutta 4 (Cox & Matthews 2002), batched over tasks.

Solves ``du/dt = L u + N(u)`` for spectra ``u`` ``[N, *modes, C]`` where the linear
operator is diagonal, ``L`` broadcastable to ``u`` (it may differ per task and per
channel, e.g. one diffusivity per task gives ``L`` of shape ``[N, *modes, 1]``).
The phi-function coefficients are evaluated by the contour-integral average of
Kassam & Trefethen (2005): a mean over ``n_contour`` points on a circle of radius
1 around each ``h L``, which avoids the cancellation of the closed forms near
``h L = 0``. Steps are fixed: each output interval is split into equal steps no
longer than the requested maximum, so outputs land exactly on the requested times.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Nonlinear = Callable[[np.ndarray], np.ndarray]

_CHUNK = 1 << 16  # contour evaluations per block (bounds the temporary memory)


def etdrk4_coefficients(lin: np.ndarray, h: float, n_contour: int = 32) -> dict[str, np.ndarray]:
    """ETDRK4 coefficients for the diagonal operator ``lin`` (any shape) and step ``h``.

    Returns ``E = e^{hL}``, ``E2 = e^{hL/2}`` and the weights ``Q``, ``f1``, ``f2``,
    ``f3`` (same shape as ``lin``; real if ``lin`` is real). Units: ``lin`` in
    1/time, ``h`` in time; the weights carry one factor of time.
    """
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
    coef = {key: v.reshape(lin.shape) for key, v in out.items()}
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
    dts = np.diff(np.asarray(t, dtype=np.float64))
    if np.any(dts <= 0):
        raise ValueError("output times must be strictly increasing")
    if not (max_step > 0 and math.isfinite(max_step)):
        raise ValueError(f"max_step must be positive and finite, got {max_step}")
    return np.maximum(1, np.ceil(dts / max_step * (1 - 1e-12))).astype(int)


def etdrk4_solve(
    u0: np.ndarray,
    lin: np.ndarray,
    nonlinear: Nonlinear,
    t: np.ndarray,
    max_step: float,
    observe: Callable[[np.ndarray], np.ndarray] | None = None,
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
    if not np.all(np.isfinite(max_step) & (max_step > 0)):
        raise ValueError("per-task step limits must be positive and finite")
    dt_min = float(np.min(np.diff(np.asarray(t, dtype=np.float64))))
    level = np.maximum(0, np.ceil(np.log2(dt_min / max_step) - 1e-12)).astype(int)
    return [(np.flatnonzero(level == m), dt_min / 2.0**m) for m in np.unique(level)]
