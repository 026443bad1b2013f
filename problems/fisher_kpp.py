"""Fisher-KPP reaction-diffusion equation on a periodic interval.

Data card
---------
Equation: u_t = nu u_xx + rho u (1 - u).  LaTeX: u_t = \\nu\\,u_{xx} + \\rho\\,u(1-u).
(PDEBench's 1D reaction-diffusion problem, same parameter names.)

Parameters: ``nu`` diffusivity [m^2/s] and ``rho`` growth rate [1/s], both
log-uniform. State: ``u`` population density relative to capacity [1]; x in m, t in s.
Domain x in [0, 1) periodic, 256 points; output t in [0, 1] s, 101 points.

Initial conditions: :class:`~scimeta.pde.SineSeries` (2 waves, modes 1..4) mapped
affinely onto [0, 1].

Regimes: ``train`` nu in [0.5, 5] x rho in [1, 10] without (1, 2) x (2, 5);
``test-interpolate`` nu in [1, 2] x rho in [2, 5]; ``test-extrapolate`` nu in
[0.5, 5] x rho in [10, 20]; ``pdebench`` PDEBench's grid nu in {0.5, 1, 2, 5} x
rho in {1, 2, 5, 10} (16 environments).

Solver: Fourier pseudo-spectral, 2/3 dealiasing, ETDRK4 with L = rho - nu k^2 and
N(u) = -rho u^2; step <= 0.05 / rho. Verified against the Ablowitz-Zeppetella
travelling wave u = [1 + C exp(sqrt(rho/(6 nu)) x - 5 rho t / 6)]^-2 on a long
domain: max error 7.3e-9 for t <= 5 (test bound 3e-8, tests/test_pde_families.py).
"""

from __future__ import annotations

import math

import numpy as np

from scimeta.family import SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes
from scimeta.pde import SineSeries, SpectralPdeFamily

PDEBENCH_NU = (0.5, 1.0, 2.0, 5.0)
PDEBENCH_RHO = (1.0, 2.0, 5.0, 10.0)


class FisherKPP(SpectralPdeFamily):
    name = "fisher_kpp"
    summary = "Fisher-KPP reaction-diffusion, periodic 1D"
    equation = "u_t = nu*u_xx + rho*u*(1 - u)"
    equation_latex = r"u_t = \nu\,u_{xx} + \rho\,u(1-u)"
    params = (
        ParamSpec("nu", "m^2/s", (0.0, math.inf), "diffusivity", distribution="log-uniform"),
        ParamSpec("rho", "1/s", (0.0, math.inf), "growth rate", distribution="log-uniform"),
    )
    state_names = ("u",)
    state_units = ("1",)
    time_unit = "s"
    time = TimeGrid(0.0, 1.0, 101)
    regimes = {
        **split_regimes({"nu": (0.5, 5.0), "rho": (1.0, 10.0)},
                        {"nu": (1.0, 2.0), "rho": (2.0, 5.0)},
                        {"nu": (0.5, 5.0), "rho": (10.0, 20.0)}),
        "pdebench": Regime("pdebench",
                           points=tuple((n, r) for n in PDEBENCH_NU for r in PDEBENCH_RHO),
                           description="PDEBench grid nu x rho (16 environments)"),
    }
    domain = {"x": (0.0, 1.0)}
    shape = {"x": 256}
    initial = SineSeries(n_waves=2, max_mode=4, amplitude=1.0, unit_interval=True)
    resolution_tol = 1e-8
    spatial_derivatives = ("xx",)
    solver = SolverInfo("scimeta.solvers.etdrk4", "Fourier pseudo-spectral + ETDRK4",
                        note="2/3 dealiasing; step <= 0.05 / rho")

    def linear_symbol(self, grid, params):
        nu = self.per_task(grid, params[:, 0])
        rho = self.per_task(grid, params[:, 1])
        return rho - nu * grid.expand(grid.k[0] ** 2)

    def nonlinear(self, grid, uh, params):
        return -self.per_task(grid, params[:, 1]) * grid.fft(grid.ifft(uh) ** 2)

    def max_step(self, params, y0):
        umax = np.maximum(1.0, np.max(np.abs(y0.reshape(len(y0), -1)), axis=1))
        return 0.05 / (params[:, 1] * umax)

    def residual(self, t, y, dydt, params, **derivs):
        nu, rho = self.param_columns(params)
        return dydt - nu * derivs["d_xx"] - rho * y * (1 - y)
