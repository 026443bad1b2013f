"""Linear advection on a periodic interval.

Data card
---------
Equation: u_t + beta u_x = 0.  LaTeX: u_t + \\beta\\,u_x = 0.
Exact solution u(x, t) = u0(x - beta t) (periodic shift).

Parameters: ``beta`` advection speed [m/s]. State: ``u`` transported scalar [1];
x in m, t in s. Domain x in [0, 1) periodic, 256 points (PDEBench uses 1024 cells on
the same interval); output t in [0, 2] s, 201 points (PDEBench's grid).

Initial conditions: :class:`~scimeta.pde.SineSeries` with 2 waves, modes 1..4,
amplitudes U(0, 1), phases U(0, 2 pi) (the form of PDEBench's random sine sums).

Regimes: ``train`` beta in [0.1, 2] without (0.4, 1); ``test-interpolate`` beta in
[0.4, 1]; ``test-extrapolate`` beta in [2, 7]; ``pdebench`` the PDEBench sweep
beta in {0.1, 0.2, 0.4, 0.7, 1.0, 2.0, 4.0, 7.0}.

Solver: Fourier spectral; linear, so each mode is advanced by its exact factor
exp(-i beta k h). Verified against the exact shift of the analytic initial sum:
max error <= 1e-12 for every PDEBench beta, t <= 2 (tests/test_pde_families.py).
"""

from __future__ import annotations

import math

from scimeta.family import SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes
from scimeta.pde import SineSeries, SpectralPdeFamily

PDEBENCH_BETA = (0.1, 0.2, 0.4, 0.7, 1.0, 2.0, 4.0, 7.0)


class Advection(SpectralPdeFamily):
    name = "advection"
    summary = "linear advection, periodic 1D"
    equation = "u_t + beta*u_x = 0"
    equation_latex = r"u_t + \beta\,u_x = 0"
    params = (ParamSpec("beta", "m/s", (-math.inf, math.inf), "advection speed"),)
    state_names = ("u",)
    state_units = ("1",)
    time_unit = "s"
    time = TimeGrid(0.0, 2.0, 201)
    regimes = {
        **split_regimes({"beta": (0.1, 2.0)}, {"beta": (0.4, 1.0)}, {"beta": (2.0, 7.0)}),
        "pdebench": Regime("pdebench", points=tuple((b,) for b in PDEBENCH_BETA),
                           description="PDEBench advection speeds"),
    }
    domain = {"x": (0.0, 1.0)}
    shape = {"x": 256}
    initial = SineSeries(n_waves=2, max_mode=4, amplitude=1.0)
    spatial_derivatives = ("x",)
    solver = SolverInfo("scimeta.solvers.etdrk4", "Fourier spectral, exact exponential",
                        note="linear: each mode multiplied by exp(-i beta k h)")
    default_max_step = 1.0

    def linear_symbol(self, grid, params):
        ik = 1j * grid.k[0] * (grid.k[0] < grid.k[0].max())  # no Nyquist velocity
        return -self.per_task(grid, params[:, 0]) * grid.expand(ik)

    def nonlinear(self, grid, uh, params):
        return 0.0 * uh

    def residual(self, t, y, dydt, params, **derivs):
        (beta,) = self.param_columns(params)
        return dydt + beta * derivs["d_x"]
