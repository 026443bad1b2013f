"""Heat (diffusion) equation on a periodic interval.

Data card
---------
Equation: u_t = D u_xx.  LaTeX: u_t = D\\,u_{xx}.

Parameters: ``D`` diffusivity [m^2/s], log-uniform. State: ``u`` temperature [K];
x in m, t in s. Domain x in [0, 1) periodic, 128 points; output t in [0, 1] s, 101 points.

Initial conditions: :class:`~scimeta.pde.SineSeries` with 3 waves, modes 1..6,
amplitudes U(0, 1) K, phases U(0, 2 pi).

Regimes: ``train`` D in [0.001, 0.02] without (0.004, 0.008); ``test-interpolate``
D in [0.004, 0.008]; ``test-extrapolate`` D in [0.02, 0.05].

Solver: Fourier spectral; the equation is linear, so each mode is advanced by its
exact factor exp(-D k^2 h) (ETDRK4 with N = 0). Verified against the Fourier-series
solution sum_m b_m exp(-D k_m^2 t) sin(k_m x + phi_m): max error <= 1e-13
(tests/test_pde_families.py).
"""

from __future__ import annotations

import math

from scimeta.family import SolverInfo
from scimeta.params import ParamSpec, TimeGrid, split_regimes
from scimeta.pde import SineSeries, SpectralPdeFamily


class Heat(SpectralPdeFamily):
    name = "heat"
    summary = "heat equation, periodic 1D"
    equation = "u_t = D*u_xx"
    equation_latex = r"u_t = D\,u_{xx}"
    params = (ParamSpec("D", "m^2/s", (0.0, math.inf), "diffusivity",
                        distribution="log-uniform"),)
    state_names = ("u",)
    state_units = ("K",)
    time_unit = "s"
    time = TimeGrid(0.0, 1.0, 101)
    regimes = split_regimes({"D": (0.001, 0.02)}, {"D": (0.004, 0.008)}, {"D": (0.02, 0.05)})
    domain = {"x": (0.0, 1.0)}
    shape = {"x": 128}
    initial = SineSeries(n_waves=3, max_mode=6, amplitude=1.0)
    spatial_derivatives = ("xx",)
    solver = SolverInfo("scimeta.solvers.etdrk4", "Fourier spectral, exact exponential",
                        note="linear: each mode multiplied by exp(-D k^2 h)")
    default_max_step = 1.0  # exact in time: the step only sets the output times

    def linear_symbol(self, grid, params):
        return -self.per_task(grid, params[:, 0]) * grid.expand(grid.k[0] ** 2)

    def nonlinear(self, grid, uh, params):
        return 0.0 * uh

    def residual(self, t, y, dydt, params, **derivs):
        (diff,) = self.param_columns(params)
        return dydt - diff * derivs["d_xx"]
