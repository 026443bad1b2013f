"""Damped driven pendulum (nonlinear; chaotic for strong forcing).

Data card
---------
Equation: theta'' + b theta' + omega0^2 sin(theta) = A cos(Omega t), state
(theta, omega = theta'); omega0^2 = g / l.
LaTeX: \\ddot\\theta + b\\dot\\theta + \\omega_0^2\\sin\\theta = A\\cos(\\Omega t).
Energy balance (per unit m l^2): d/dt [omega^2 / 2 - omega0^2 cos(theta)]
= -b omega^2 + A cos(Omega t) omega.

Parameters: ``b`` damping rate [1/s]; ``omega0`` small-angle natural angular
frequency sqrt(g / l) [rad/s]; ``A`` driving torque per unit m l^2 [rad/s^2];
``Omega`` driving angular frequency [rad/s].
State: ``theta`` angle from the downward vertical [rad] (not wrapped), ``omega``
angular velocity [rad/s]; time in s.

Regimes (disjoint in omega0; b in [0, 0.5], A in [0, 1.5], Omega in [0.5, 2.0]
throughout): ``train`` omega0 in [0.5, 2.0] without (1.0, 1.5); ``test-interpolate``
omega0 in [1.0, 1.5]; ``test-extrapolate`` omega0 in [2.0, 3.0]. The ``unforced-*``
regimes are the same with A = 0 (damped free pendulum).
Initial state theta(0) ~ U(-pi/2, pi/2) rad, omega(0) ~ U(-1, 1) rad/s; output grid
t in [0, 20] s, 401 points.

Solver: scipy DOP853, rtol = atol = 1e-10. Verified by the energy balance along the
solution: E(t) - E(0) matches the integrated power to <= 1e-7 on t in [0, 20]
(measured <= 2.7e-9, including the chaotic b = 0.5, omega0 = 1, A = 1.5,
Omega = 2/3) (tests/test_ode_families.py). Measured accuracy of the default against
rtol = atol = 1e-13 over 8 draws per regime: <= 2.2e-8 relative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scimeta.family import OdeFamily, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes

_INF = math.inf


def _regimes() -> dict[str, Regime]:
    split = ({"omega0": (0.5, 2.0)}, {"omega0": (1.0, 1.5)}, {"omega0": (2.0, 3.0)})
    common = {"b": (0.0, 0.5), "A": (0.0, 1.5), "Omega": (0.5, 2.0)}
    return {**split_regimes(*split, common=common),
            **split_regimes(*split, common={**common, "A": (0.0, 0.0)}, prefix="unforced-",
                            note="A = 0")}


class Pendulum(OdeFamily):
    name = "pendulum"
    summary = "damped driven pendulum"
    equation = "theta'' + b*theta' + omega0**2*sin(theta) = A*cos(Omega*t)"
    equation_latex = r"\ddot\theta + b\dot\theta + \omega_0^2\sin\theta = A\cos(\Omega t)"
    params = (
        ParamSpec("b", "1/s", (0.0, _INF), "damping rate"),
        ParamSpec("omega0", "rad/s", (0.0, _INF), "small-angle natural frequency sqrt(g/l)"),
        ParamSpec("A", "rad/s^2", (-_INF, _INF), "driving torque per unit m l^2"),
        ParamSpec("Omega", "rad/s", (0.0, _INF), "driving angular frequency"),
    )
    state_names = ("theta", "omega")
    state_units = ("rad", "rad/s")
    time_unit = "s"
    time = TimeGrid(0.0, 20.0, 401)
    regimes = _regimes()
    solver = SolverInfo("scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-10)
    initial_box = ((-math.pi / 2, math.pi / 2), (-1.0, 1.0))

    def rhs(self, t: Any, y: Sequence[Any], p: Sequence[Any], xp: Any) -> tuple[Any, ...]:
        theta, omega = y
        b, omega0, amp, drive = p
        return omega, amp * xp.cos(drive * t) - b * omega - omega0**2 * xp.sin(theta)

    @staticmethod
    def energy(params: Any, y: Any) -> np.ndarray:
        """E = omega^2 / 2 - omega0^2 cos(theta) per unit m l^2.

        ``params`` ``[..., 4]``, ``y`` ``[..., 2]`` (numpy); returns the batch shape.
        """
        omega0 = np.asarray(params, dtype=np.float64)[..., 1]
        y = np.asarray(y, dtype=np.float64)
        return 0.5 * y[..., 1] ** 2 - omega0**2 * np.cos(y[..., 0])
