"""Lorenz system (convection model, chaotic near the classical parameters).

Data card
---------
Equation: x' = sigma (y - x),  y' = x (rho - z) - y,  z' = x y - beta z.
LaTeX: \\dot x = \\sigma(y - x),\\quad \\dot y = x(\\rho - z) - y,\\quad
\\dot z = xy - \\beta z.
Phase-space volume contracts at the constant rate div f = -(sigma + 1 + beta).

Parameters (dimensionless, as is time): ``sigma`` Prandtl number; ``rho`` Rayleigh
number relative to its critical value; ``beta`` geometric factor (aspect ratio).

Regimes (disjoint in rho; sigma in [8, 12] and beta in [2, 3] throughout, so the
classical (10, 28, 8/3) lies inside ``train``): ``train`` rho in [24, 36] without
(30, 33); ``test-interpolate`` rho in [30, 33]; ``test-extrapolate`` rho in [36, 48].
Initial state x0, y0 ~ U(-10, 10), z0 ~ U(5, 35); output grid t in [0, 5], 501 points.
The horizon is kept short on purpose: on the attractor nearby trajectories separate
like exp(0.9 t), so a reference solution is only meaningful on a finite window (the
default solver's error, <= 1.5e-7 relative at t <= 5, reaches O(1) by t ~ 25).

Solver: scipy DOP853, rtol = atol = 1e-10. Verified by self-convergence on t in [0, 5]
(rtol = atol = 1e-8 vs 1e-12 agree to <= 1e-5 relative, measured 1.5e-6 at the
classical parameters; the 1e-10 solution is 80-170x closer to the 1e-12 one) and by
the divergence of the torch right-hand side, which equals -(sigma + 1 + beta) exactly
(tests/test_ode_families.py). Measured accuracy of the default against rtol = atol =
1e-13 over 8 draws per regime: <= 1.5e-7 relative (per-component max scaling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scimeta.family import OdeFamily, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes

_INF = math.inf


def _regimes() -> dict[str, Regime]:
    return split_regimes({"rho": (24.0, 36.0)}, {"rho": (30.0, 33.0)}, {"rho": (36.0, 48.0)},
                         common={"sigma": (8.0, 12.0), "beta": (2.0, 3.0)},
                         note="sigma in [8, 12], beta in [2, 3]")


class Lorenz(OdeFamily):
    name = "lorenz"
    summary = "Lorenz system"
    equation = "x' = sigma*(y - x); y' = x*(rho - z) - y; z' = x*y - beta*z"
    equation_latex = (r"\dot x = \sigma(y - x),\quad \dot y = x(\rho - z) - y,"
                      r"\quad \dot z = xy - \beta z")
    params = (
        ParamSpec("sigma", "1", (0.0, _INF), "Prandtl number"),
        ParamSpec("rho", "1", (0.0, _INF), "Rayleigh number over its critical value"),
        ParamSpec("beta", "1", (0.0, _INF), "geometric factor of the convection cell"),
    )
    state_names = ("x", "y", "z")
    state_units = ("1", "1", "1")
    time_unit = "1"
    time = TimeGrid(0.0, 5.0, 501)
    regimes = _regimes()
    solver = SolverInfo("scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-10,
                        note="chaotic: reference accurate on the finite horizon t <= 5 only")
    initial_box = ((-10.0, 10.0), (-10.0, 10.0), (5.0, 35.0))

    def rhs(self, t: Any, y: Sequence[Any], p: Sequence[Any], xp: Any) -> tuple[Any, ...]:
        x, yy, z = y
        sigma, rho, beta = p
        return sigma * (yy - x), x * (rho - z) - yy, x * yy - beta * z
