"""Viscous Burgers equation on a periodic interval.

Data card
---------
Equation (this family's form, plain viscosity, no 1/pi): u_t + u u_x = nu u_xx.
LaTeX: u_t + u\\,u_x = \\nu\\,u_{xx}.
PDEBench writes the same equation as u_t + u u_x = (nu_PB / pi) u_xx, so a PDEBench
file labelled ``Nu = nu_PB`` corresponds to ``nu = nu_PB / pi`` here.

Parameters: ``nu`` kinematic viscosity [m^2/s], log-uniform. State: ``u`` velocity [m/s];
x in m, t in s. Domain x in [-1, 1) periodic, 1024 points; output t in [0, 1] s, 101 points.

Initial conditions: default a :class:`~scimeta.pde.SineSeries` (2 waves, modes 1..3
of the period 2, amplitudes U(0, 1), phases U(0, 2 pi)); rule ``"minus-sine"``:
u0 = -sin(pi x), the classic problem on [-1, 1] with u(+-1, t) = 0, solved exactly as
its odd periodic extension (the periodic solution stays odd, so u(+-1) = 0).

Regimes: ``train`` nu in [0.02, 0.2] without (0.04, 0.08); ``test-interpolate`` nu in
[0.04, 0.08]; ``test-extrapolate`` nu in [0.01, 0.02] (sharper fronts);
``classic`` nu in [0.005, 1] with u0 = -sin(pi x); ``pdebench`` the PDEBench sweep
nu_PB in {0.001, 0.002, 0.004, 0.01, 0.02, 0.04, 0.1, 0.2, 0.4, 1, 2, 4} (nu = nu_PB/pi),
t in [0, 2], 201 points. PDEBench solves on x in [0, 1] with 1024 cells; this family
keeps its own domain, so only the viscosities are comparable, and the smallest
ones are flagged under-resolved on the default grid (raise ``shape``).

Symmetry: if u(t, x) solves from u0 at nu, then a u(a t, x) solves from a u0 at a nu
(checked on this solver to 1e-7 in tests/test_burgers_autodecoder.py), so nu and the
initial amplitude matter only through the Reynolds number max|u0| / nu (beside the
shape of u0), up to a time scale: ``train`` median ~11 (90th
percentile 42-49), ``test-interpolate`` <= 38, ``test-extrapolate`` on nu in [0.015,
0.02) median ~47 (bench/burgers_reynolds.py).

Solver: Fourier pseudo-spectral, 2/3 dealiasing, ETDRK4 (Kassam-Trefethen
coefficients), step <= 0.5 dx / max|u0| (max|u| never grows for Burgers).
Verified against the Cole-Hopf solution (integral form, max-shifted weights) with
u0 = -sin(pi x): relative L2 error 1.2e-8 at nu = 0.02 on 256 points and 6.5e-9 at
nu = 0.005 on 1024 points, t <= 1 (test bound 1e-6, tests/test_pde_families.py).
At nu = 0.005 on 512 points the error is 4e-5 and the task is flagged under-resolved
(top-third energy share 5e-7 > resolution_tol = 1e-8).
"""

from __future__ import annotations

import math

import numpy as np

from scimeta.family import SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes
from scimeta.pde import SineSeries, SpectralPdeFamily

PDEBENCH_NU = (0.001, 0.002, 0.004, 0.01, 0.02, 0.04, 0.1, 0.2, 0.4, 1.0, 2.0, 4.0)


def _regimes() -> dict[str, Regime]:
    return {
        **split_regimes({"nu": (0.02, 0.2)}, {"nu": (0.04, 0.08)}, {"nu": (0.01, 0.02)}),
        "classic": Regime("classic", box={"nu": (0.005, 1.0)}, initial="minus-sine",
                          description="u0 = -sin(pi x) on [-1, 1], nu in [0.005, 1]"),
        "pdebench": Regime("pdebench", points=tuple((v / math.pi,) for v in PDEBENCH_NU),
                           time=TimeGrid(0.0, 2.0, 201),
                           description="PDEBench viscosities nu_PB/pi, t in [0, 2]"),
    }


class Burgers(SpectralPdeFamily):
    name = "burgers"
    summary = "viscous Burgers equation, periodic 1D"
    equation = "u_t + u*u_x = nu*u_xx"
    equation_latex = r"u_t + u\,u_x = \nu\,u_{xx}"
    params = (ParamSpec("nu", "m^2/s", (0.0, math.inf), "kinematic viscosity",
                        distribution="log-uniform"),)
    state_names = ("u",)
    state_units = ("m/s",)
    time_unit = "s"
    time = TimeGrid(0.0, 1.0, 101)
    regimes = _regimes()
    domain = {"x": (-1.0, 1.0)}
    shape = {"x": 1024}
    initial = SineSeries(n_waves=2, max_mode=3, amplitude=1.0)
    initial_rules = ("minus-sine",)
    resolution_tol = 1e-8
    spatial_derivatives = ("x", "xx")
    solver = SolverInfo("scimeta.solvers.etdrk4", "Fourier pseudo-spectral + ETDRK4",
                        note="2/3 dealiasing; step <= 0.5 dx / max|u0|; 32-point contour")
    cfl = 0.5

    def initial_state(self, rule, rng):
        if rule == "minus-sine":
            return -np.sin(np.pi * self.space["x"])[:, None]
        return super().initial_state(rule, rng)

    def linear_symbol(self, grid, params):
        return -self.per_task(grid, params[:, 0]) * grid.expand(grid.k[0] ** 2)

    nonlinear_is_dealiased = True

    def nonlinear(self, grid, uh, params):
        # -(u^2/2)_x, with -i k / 2 and the 2/3 mask folded into one multiplier (the
        # hot path of the batched solver: one product per evaluation instead of three)
        cached = getattr(self, "_flux_multiplier", None)
        if cached is None or cached[0] is not grid:
            ones = np.ones((1, *grid.modes, 1))
            cached = (grid, grid.dealias(grid.derivative(-0.5 * ones, 0)))
            self._flux_multiplier = cached
        return grid.fft(grid.ifft(uh) ** 2) * cached[1]

    def max_step(self, params, y0):
        umax = np.max(np.abs(y0.reshape(len(y0), -1)), axis=1)
        return self.cfl * self.spacing[0] / np.maximum(umax, 1e-3)

    def residual(self, t, y, dydt, params, **derivs):
        (nu,) = self.param_columns(params)
        return dydt + y * derivs["d_x"] - nu * derivs["d_xx"]

