"""Korteweg-de Vries equation on a periodic interval.

Data card
---------
Equation (Zabusky-Kruskal form): u_t + u u_x + delta^2 u_xxx = 0.
LaTeX: u_t + u\\,u_x + \\delta^2 u_{xxx} = 0.
Solitons: u = 3c sech^2(sqrt(c) (x - x0 - c t) / (2 delta)) for speed c > 0.

Parameters: ``delta`` dispersion length [m^(3/2) s^(-1/2)] (delta^2 in m^3/s).
State: ``u`` wave amplitude [m/s]; x in m, t in s. Domain x in [0, 2) periodic,
512 points; output t in [0, 1] s, 101 points.

Initial conditions: default a :class:`~scimeta.pde.SineSeries` (2 waves, modes 1..2
of the period 2, amplitudes U(0, 1)); rule ``"cosine"``: u0 = cos(pi x), the
Zabusky-Kruskal experiment (regime ``zabusky-kruskal``, delta = 0.022).

Regimes: ``train`` delta in [0.04, 0.1] without (0.055, 0.07); ``test-interpolate``
delta in [0.055, 0.07]; ``test-extrapolate`` delta in [0.03, 0.04] (more, narrower
solitons); ``zabusky-kruskal`` delta = 0.022 with u0 = cos(pi x) (resolved on 512
points, top-third energy share ~1e-17; on 256 points it is flagged under-resolved).

Solver: Fourier pseudo-spectral, 2/3 dealiasing, ETDRK4 with L = i delta^2 k^3 (the
stiff dispersion handled exactly) and N(u) = -(u^2/2)_x; step <= 0.25 dx / (3 max|u0|).
Verified against the exact soliton (c = 1, delta = 0.05, 256 points): max error 2.6e-8
for t <= 0.5 (test bound 1e-7, tests/test_pde_families.py).
"""

from __future__ import annotations

import math

import numpy as np

from scimeta.family import SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes
from scimeta.pde import SineSeries, SpectralPdeFamily


class KdV(SpectralPdeFamily):
    name = "kdv"
    summary = "Korteweg-de Vries equation, periodic 1D"
    equation = "u_t + u*u_x + delta**2*u_xxx = 0"
    equation_latex = r"u_t + u\,u_x + \delta^2 u_{xxx} = 0"
    params = (ParamSpec("delta", "m^(3/2)/s^(1/2)", (0.0, math.inf), "dispersion length",
                        distribution="log-uniform"),)
    state_names = ("u",)
    state_units = ("m/s",)
    time_unit = "s"
    time = TimeGrid(0.0, 1.0, 101)
    regimes = {
        **split_regimes({"delta": (0.04, 0.1)}, {"delta": (0.055, 0.07)}, {"delta": (0.03, 0.04)}),
        "zabusky-kruskal": Regime("zabusky-kruskal", points=((0.022,),), initial="cosine",
                                  description="u0 = cos(pi x), delta = 0.022"),
    }
    domain = {"x": (0.0, 2.0)}
    shape = {"x": 512}
    initial = SineSeries(n_waves=2, max_mode=2, amplitude=1.0)
    initial_rules = ("cosine",)
    resolution_tol = 1e-8
    spatial_derivatives = ("x", "xxx")
    solver = SolverInfo("scimeta.solvers.etdrk4", "Fourier pseudo-spectral + ETDRK4",
                        note="2/3 dealiasing; step <= 0.25 dx / (3 max|u0|)")
    cfl = 0.25

    def initial_state(self, rule, rng):
        if rule == "cosine":
            return np.cos(np.pi * self.space["x"])[:, None]
        return super().initial_state(rule, rng)

    def linear_symbol(self, grid, params):
        delta = self.per_task(grid, params[:, 0])
        return 1j * delta**2 * grid.expand(grid.k[0] ** 3)

    def nonlinear(self, grid, uh, params):
        return -0.5 * grid.derivative(grid.fft(grid.ifft(uh) ** 2), 0)

    def max_step(self, params, y0):
        umax = np.maximum(1e-3, np.max(np.abs(y0.reshape(len(y0), -1)), axis=1))
        return self.cfl * self.spacing[0] / (3.0 * umax)

    def residual(self, t, y, dydt, params, **derivs):
        (delta,) = self.param_columns(params)
        return dydt + y * derivs["d_x"] + delta**2 * derivs["d_xxx"]
