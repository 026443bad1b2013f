"""Allen-Cahn equation on a periodic interval.

Data card
---------
Equation: u_t = lam (eps^2 u_xx + u - u^3).
LaTeX: u_t = \\lambda\\,(\\varepsilon^2 u_{xx} + u - u^3).
``eps`` sets the interface width (a steady front is tanh(x / (sqrt(2) eps))) and ``lam``
the relaxation rate. The PINN benchmark u_t = 1e-4 u_xx + 5 u - 5 u^3 is lam = 5,
eps = sqrt(2e-5) (regime ``classic``).

Parameters: ``eps`` interface width [m], ``lam`` rate [1/s], both log-uniform.
State: ``u`` phase field [1] (pure phases +-1); x in m, t in s. Domain x in [-1, 1)
periodic, 1024 points; output t in [0, 1] s, 101 points.

Initial conditions: default a :class:`~scimeta.pde.SineSeries` (3 waves, modes 1..4
of the period 2, amplitudes U(0, 0.5)); rule ``"x2cos"``: u0 = x^2 cos(pi x).

Regimes: ``train`` eps in [0.01, 0.05] without (0.02, 0.03), lam in [1, 5];
``test-interpolate`` eps in [0.02, 0.03]; ``test-extrapolate`` eps in [0.005, 0.01]
(thinner interfaces), lam in [1, 5] for both; ``classic`` the single benchmark
environment with u0 = x^2 cos(pi x); ``pinn-x2cos`` eps in [0.1, 0.5] with lam = 1 and
u0 = x^2 cos(pi x), the box of the meta-learned PINN protocol (docs/meta-pinn.md; its
bands narrow ``eps`` with ``bounds``).

Solver: Fourier pseudo-spectral, 2/3 dealiasing (exact for the quadratic part only;
the cubic term leaves an aliasing error below the resolution check), ETDRK4 with
L = lam (1 - eps^2 k^2), N(u) = -lam u^3; step <= 0.1 / (3 lam max(1, u0^2)).
Verified: two tanh fronts of width eps = 0.02 (lam = 5) stay steady over t in [0, 1],
max change 9e-16 (test bound 1e-10, tests/test_pde_families.py).
"""

from __future__ import annotations

import math

import numpy as np

from scimeta.family import SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid, split_regimes
from scimeta.pde import SineSeries, SpectralPdeFamily

CLASSIC_EPS = math.sqrt(1e-4 / 5.0)


class AllenCahn(SpectralPdeFamily):
    name = "allen_cahn"
    summary = "Allen-Cahn phase-field equation, periodic 1D"
    equation = "u_t = lam*(eps**2*u_xx + u - u**3)"
    equation_latex = r"u_t = \lambda\,(\varepsilon^2 u_{xx} + u - u^3)"
    params = (
        ParamSpec("eps", "m", (0.0, math.inf), "interface width", distribution="log-uniform"),
        ParamSpec("lam", "1/s", (0.0, math.inf), "relaxation rate", distribution="log-uniform"),
    )
    state_names = ("u",)
    state_units = ("1",)
    time_unit = "s"
    time = TimeGrid(0.0, 1.0, 101)
    regimes = {
        **split_regimes({"eps": (0.01, 0.05)}, {"eps": (0.02, 0.03)}, {"eps": (0.005, 0.01)},
                        common={"lam": (1.0, 5.0)}, note="lam in [1, 5]"),
        "classic": Regime("classic", points=((CLASSIC_EPS, 5.0),), initial="x2cos",
                          description="u_t = 1e-4 u_xx + 5u - 5u^3, u0 = x^2 cos(pi x)"),
        "pinn-x2cos": Regime("pinn-x2cos", box={"eps": (0.1, 0.5), "lam": (1.0, 1.0)},
                             initial="x2cos",
                             description="x2cos initial condition, eps varied, lam = 1"),
    }
    domain = {"x": (-1.0, 1.0)}
    shape = {"x": 1024}
    initial = SineSeries(n_waves=3, max_mode=4, amplitude=0.5)
    initial_rules = ("x2cos",)
    resolution_tol = 1e-8
    spatial_derivatives = ("xx",)
    solver = SolverInfo("scimeta.solvers.etdrk4", "Fourier pseudo-spectral + ETDRK4",
                        note="2/3 dealiasing; step <= 0.1 / (3 lam max(1, u0^2))")

    def initial_state(self, rule, rng):
        if rule == "x2cos":
            x = self.space["x"]
            return (x**2 * np.cos(np.pi * x))[:, None]
        return super().initial_state(rule, rng)

    def linear_symbol(self, grid, params):
        eps = self.per_task(grid, params[:, 0])
        lam = self.per_task(grid, params[:, 1])
        return lam * (1.0 - eps**2 * grid.expand(grid.k[0] ** 2))

    def nonlinear(self, grid, uh, params):
        return -self.per_task(grid, params[:, 1]) * grid.fft(grid.ifft(uh) ** 3)

    def max_step(self, params, y0):
        umax = np.maximum(1.0, np.max(np.abs(y0.reshape(len(y0), -1)), axis=1))
        return 0.1 / (3.0 * params[:, 1] * umax**2)

    def residual(self, t, y, dydt, params, **derivs):
        eps, lam = self.param_columns(params)
        return dydt - lam * (eps**2 * derivs["d_xx"] + y - y**3)
