"""Damped driven harmonic oscillator.

Data card
---------
Equation: x'' + 2 zeta omega0 x' + omega0^2 x = F cos(Omega t), state (x, v = x').
LaTeX: \\ddot x + 2\\zeta\\omega_0\\dot x + \\omega_0^2 x = F\\cos(\\Omega t).

Parameters: ``omega0`` natural angular frequency [rad/s]; ``zeta`` damping ratio [1];
``F`` forcing amplitude per unit mass [m/s^2]; ``Omega`` forcing angular frequency [rad/s].
State: ``x`` displacement [m], ``v`` velocity [m/s]; time in s.

Regimes (disjoint in omega0; the other parameters share their ranges):
``train`` omega0 in [0.5, 2.5] without (1.25, 1.75); ``test-interpolate`` omega0 in
[1.25, 1.75]; ``test-extrapolate`` omega0 in [2.5, 3.5]. The ``unforced-*`` regimes
are the same with F = 0 (the setting of the MAML oscillator reference runs).
Initial state (x0, v0) ~ U(-1, 1)^2; output grid t in [0, 10] s, 201 points.

Solver: scipy DOP853, rtol = atol = 1e-10. Verified against the closed form
(transient + steady state): max abs error <= 1e-8 on t in [0, 20]
(tests/test_ode_families.py).
"""

from __future__ import annotations

import math

import numpy as np

from scimeta.family import OdeFamily, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes

_INF = math.inf


def _regimes() -> dict[str, Regime]:
    split = ({"omega0": (0.5, 2.5)}, {"omega0": (1.25, 1.75)}, {"omega0": (2.5, 3.5)})
    common = {"zeta": (0.0, 0.3), "F": (0.0, 1.0), "Omega": (0.5, 2.5)}
    return {**split_regimes(*split, common=common),
            **split_regimes(*split, common={**common, "F": (0.0, 0.0)}, prefix="unforced-",
                            note="F = 0")}


class Oscillator(OdeFamily):
    name = "oscillator"
    summary = "damped driven harmonic oscillator"
    equation = "x'' + 2*zeta*omega0*x' + omega0**2*x = F*cos(Omega*t)"
    equation_latex = r"\ddot x + 2\zeta\omega_0\dot x + \omega_0^2 x = F\cos(\Omega t)"
    params = (
        ParamSpec("omega0", "rad/s", (0.0, _INF), "natural angular frequency"),
        ParamSpec("zeta", "1", (0.0, _INF), "damping ratio"),
        ParamSpec("F", "m/s^2", (-_INF, _INF), "forcing amplitude per unit mass"),
        ParamSpec("Omega", "rad/s", (0.0, _INF), "forcing angular frequency"),
    )
    state_names = ("x", "v")
    state_units = ("m", "m/s")
    time_unit = "s"
    time = TimeGrid(0.0, 10.0, 201)
    regimes = _regimes()
    solver = SolverInfo("scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-10)
    initial_box = ((-1.0, 1.0), (-1.0, 1.0))

    def rhs(self, t, y, p, xp):
        x, v = y
        omega0, zeta, force, omega = p
        return v, force * xp.cos(omega * t) - 2 * zeta * omega0 * v - omega0**2 * x

    @staticmethod
    def exact(params: np.ndarray, y0: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Closed-form solution for 0 <= zeta < 1, shape ``[T, 2]`` (x, v)."""
        omega0, zeta, force, omega = (float(v) for v in params)
        if not 0 <= zeta < 1:
            raise ValueError(f"closed form needs 0 <= zeta < 1, got zeta={zeta}")
        # steady state X cos(Omega t - delta) = a cos(Omega t) + b sin(Omega t)
        den = (omega0**2 - omega**2) ** 2 + (2 * zeta * omega0 * omega) ** 2
        a = force * (omega0**2 - omega**2) / den
        b = force * 2 * zeta * omega0 * omega / den
        xs = a * np.cos(omega * t) + b * np.sin(omega * t)
        vs = -a * omega * np.sin(omega * t) + b * omega * np.cos(omega * t)
        # transient fitted to the initial data that the steady state leaves
        x0 = y0[0] - a
        v0 = y0[1] - b * omega
        wd = omega0 * math.sqrt(1 - zeta**2)
        s = zeta * omega0
        c1, c2 = x0, (v0 + s * x0) / wd
        env = np.exp(-s * t)
        xt = env * (c1 * np.cos(wd * t) + c2 * np.sin(wd * t))
        vt = -s * xt + env * (-c1 * wd * np.sin(wd * t) + c2 * wd * np.cos(wd * t))
        return np.stack([xs + xt, vs + vt], axis=1)
