"""Van der Pol oscillator, from nearly harmonic to stiff relaxation oscillations.

Data card
---------
Equation: x'' - mu (1 - x^2) x' + x = 0, state (x, v = x').
LaTeX: \\ddot x - \\mu(1 - x^2)\\dot x + x = 0.

Parameter: ``mu`` nonlinear damping strength [1]. State and time are dimensionless.
Every solution approaches one limit cycle of amplitude ~2; for large mu it is a
relaxation oscillation of period T ~ (3 - 2 ln 2) mu + 3 a mu^(-1/3) (a = 2.338..., the
magnitude of the first zero of Ai), and the problem is stiff.

Regimes (disjoint in mu): ``train`` mu in [0.5, 3.0] without (1.5, 2.0);
``test-interpolate`` mu in [1.5, 2.0]; ``test-extrapolate`` mu in [3.0, 5.0];
``stiff`` mu in [100, 1000] on the longer grid t in [0, 3000], 3001 points (about two
periods at mu = 1000; the grid does not resolve the fast jumps, whose width is O(1/mu)).
Initial state (x0, v0) ~ U(-2, 2)^2; default output grid t in [0, 20], 401 points.

Solver: scipy DOP853 for mu <= 200 and Radau (implicit; finite-difference Jacobian,
an analytic one saves only ~15 % for two states) for mu > 200, both at rtol = atol =
1e-10 (:meth:`VanDerPol.method_for`). The switch point is measured, not guessed: at
this tolerance, over three periods, DOP853 is ~10x faster than Radau at mu = 30,
~2.5x at mu = 100, equal near mu = 200, 4x slower at mu = 400 and ~25x slower at
mu = 1000 (the explicit step is then limited by stability, not accuracy).
Verified by self-convergence (rtol = atol = 1e-8 vs 1e-12 agree to 5.7e-8 relative at
mu = 2.5 with DOP853 and 4.3e-8 at mu = 300 with Radau; the 1e-10 solution is
>= 60x closer to the 1e-12 one) and by the relaxation period at mu = 100: 162.837,
within 0.045 (0.03 %) of the two-term formula 162.882 (tests/test_ode_families.py).
Measured accuracy of the defaults against rtol = atol = 1e-13: <= 1.2e-9 relative on
the non-stiff regimes (24 draws), <= 3e-8 on ``stiff`` (mu = 120, 180, 450, 900, first
600 time units; the error concentrates at the fast jumps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scimeta.family import OdeFamily, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes

_INF = math.inf

#: Above this mu the reference solver switches from DOP853 to Radau (the measured
#: break-even point of their run times at rtol = atol = 1e-10).
STIFF_MU = 200.0

#: |first zero of the Airy function Ai|, in the period's mu^(-1/3) correction.
AIRY_A1 = 2.338107410459767


def relaxation_period(mu: float) -> float:
    """Asymptotic limit-cycle period (3 - 2 ln 2) mu + 3 a mu^(-1/3) for large mu."""
    return (3.0 - 2.0 * math.log(2.0)) * mu + 3.0 * AIRY_A1 * mu ** (-1.0 / 3.0)


def _regimes() -> dict[str, Regime]:
    return {
        **split_regimes({"mu": (0.5, 3.0)}, {"mu": (1.5, 2.0)}, {"mu": (3.0, 5.0)}),
        "stiff": Regime("stiff", box={"mu": (100.0, 1000.0)},
                        description="mu in [100, 1000], relaxation oscillations",
                        time=TimeGrid(0.0, 3000.0, 3001)),
    }


class VanDerPol(OdeFamily):
    name = "van_der_pol"
    summary = "Van der Pol oscillator (stiff for large mu)"
    equation = "x'' - mu*(1 - x**2)*x' + x = 0"
    equation_latex = r"\ddot x - \mu(1 - x^2)\dot x + x = 0"
    params = (ParamSpec("mu", "1", (0.0, _INF), "nonlinear damping strength"),)
    state_names = ("x", "v")
    state_units = ("1", "1")
    time_unit = "1"
    time = TimeGrid(0.0, 20.0, 401)
    regimes = _regimes()
    solver = SolverInfo(
        "scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-10,
        note=f"Radau (same tolerances) when mu > {STIFF_MU:g}",
    )
    initial_box = ((-2.0, 2.0), (-2.0, 2.0))

    def rhs(self, t: Any, y: Sequence[Any], p: Sequence[Any], xp: Any) -> tuple[Any, ...]:
        x, v = y
        (mu,) = p
        return v, mu * (1 - x**2) * v - x

    def method_for(self, params: np.ndarray) -> str:
        return "Radau" if float(params[0]) > STIFF_MU else self.solver.method
