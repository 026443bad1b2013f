"""Forced Duffing oscillator, a task family for scimeta.

Data card
---------
Equation: x'' + delta x' + alpha x + beta x^3 = gamma cos(omega t), state (x, v = x').
LaTeX: \\ddot x + \\delta\\dot x + \\alpha x + \\beta x^3 = \\gamma\\cos(\\omega t).

Parameters (per unit mass): ``delta`` damping rate [1/s]; ``alpha`` linear stiffness
[1/s^2]; ``beta`` cubic stiffness [1/(m^2 s^2)] (> 0 hardening, < 0 softening);
``gamma`` forcing amplitude [m/s^2]; ``omega`` forcing angular frequency [rad/s].
State: ``x`` displacement [m], ``v`` velocity [m/s]; time in s.

Regimes, split by the nonlinearity ``beta`` (the other parameters share delta in
[0.1, 0.5), alpha in [0.5, 2), gamma in [0, 0.5), omega in [0.8, 1.6)): ``train``
beta in [0, 1) without [0.4, 0.6]; ``test-interpolate`` beta in [0.4, 0.6];
``test-extrapolate`` beta in [1, 2), a stiffer spring than any seen in training.
With alpha > 0, beta >= 0 and damping, every trajectory stays bounded.
Initial state (x0, v0) ~ U(-1, 1) m x U(-1, 1) m/s; output t in [0, 20] s, 401 points.

Solver: scipy DOP853, rtol = atol = 1e-10. Verified by the energy balance
E(t) - E(0) = int_0^t (gamma cos(omega s) v - delta v^2) ds with
E = v^2/2 + alpha x^2/2 + beta x^4/4 (tests/test_duffing.py) and by the scimeta
family contract (self-convergence against rtol = atol = 1e-12, residual, store).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scimeta.family import OdeFamily, SolverInfo
from scimeta.params import ParamSpec, TimeGrid, split_regimes

_INF = math.inf


class Duffing(OdeFamily):
    """x'' + delta x' + alpha x + beta x^3 = gamma cos(omega t) as ``dy/dt = f(t, y; p)``."""

    name = "duffing"
    summary = "forced Duffing oscillator (cubic spring)"
    equation = "x'' + delta*x' + alpha*x + beta*x**3 = gamma*cos(omega*t)"
    equation_latex = (r"\ddot x + \delta\dot x + \alpha x + \beta x^3 "
                      r"= \gamma\cos(\omega t)")
    params = (
        ParamSpec("delta", "1/s", (0.0, _INF), "damping rate"),
        ParamSpec("alpha", "1/s^2", (-_INF, _INF), "linear stiffness per unit mass"),
        ParamSpec("beta", "1/(m^2 s^2)", (-_INF, _INF), "cubic stiffness per unit mass"),
        ParamSpec("gamma", "m/s^2", (-_INF, _INF), "forcing amplitude per unit mass"),
        ParamSpec("omega", "rad/s", (0.0, _INF), "forcing angular frequency"),
    )
    state_names = ("x", "v")
    state_units = ("m", "m/s")
    time_unit = "s"
    time = TimeGrid(0.0, 20.0, 401)
    regimes = split_regimes(
        {"beta": (0.0, 1.0)}, {"beta": (0.4, 0.6)}, {"beta": (1.0, 2.0)},
        common={"delta": (0.1, 0.5), "alpha": (0.5, 2.0), "gamma": (0.0, 0.5),
                "omega": (0.8, 1.6)},
    )
    solver = SolverInfo("scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-10)
    initial_box = ((-1.0, 1.0), (-1.0, 1.0))

    def rhs(self, t: Any, y: Sequence[Any], p: Sequence[Any], xp: Any) -> tuple[Any, Any]:
        """(x', v') for scalars or tensors; ``xp`` is numpy or torch."""
        x, v = y
        delta, alpha, beta, gamma, omega = p
        return v, gamma * xp.cos(omega * t) - delta * v - alpha * x - beta * x**3

    @staticmethod
    def energy(params: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Mechanical energy per unit mass [m^2/s^2] of states ``y`` ``[..., 2]``."""
        _, alpha, beta, _, _ = (float(v) for v in params)
        x, v = y[..., 0], y[..., 1]
        return 0.5 * v**2 + 0.5 * alpha * x**2 + 0.25 * beta * x**4
