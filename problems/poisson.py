"""Poisson equation on the unit square with a Gaussian source and zero Dirichlet data.

Data card
---------
Equation: -(u_xx + u_yy) = f(x, y) on (0, 1)^2, u = 0 on the boundary, with
f = A exp(-((x - x0)^2 + (y - y0)^2) / (2 sigma^2)).
LaTeX: -\\Delta u = A\\,e^{-|\\mathbf{x} - \\mathbf{x}_0|^2 / (2\\sigma^2)},
\\ u|_{\\partial\\Omega} = 0.

Parameters: ``A`` source strength [1/m^2 in units of u], ``x0``, ``y0`` source
centre [m], ``sigma`` source width [m]. The random source family is the
regime's distribution over these four numbers (uniform in each box), so a task's
source is known exactly from its ``params`` (the residual needs it). State: ``u``
[1] (e.g. a potential); x, y in m.

Grid: the 127 x 127 interior nodes (i/128, j/128), i, j = 1..127 (boundary values are
0 by definition and not stored). Steady problem on the time-dependent store: the
time axis is a degenerate two-point axis t in {0, 1} (``TimeGrid`` needs n >= 2),
unit "1", and both frames hold the same steady field (a steady state is a solution
for all t). ``sample_initial_state`` returns zeros (nothing to sample); the stored
t = 0 frame is the solution, not that zero state. Sampling rules: ``initial`` draws
the support at t = 0 and the query at t = 1 without repeating a (t, x, y) point;
with ``random`` a spatial point can appear in both sets at different t.

Regimes: ``train`` A in [10, 100], sigma in [0.05, 0.15], centre in [0.25, 0.75]^2
without (0.45, 0.55)^2; ``test-interpolate`` centre in [0.45, 0.55]^2;
``test-extrapolate`` narrower sources sigma in [0.03, 0.05], centre in [0.25, 0.75]^2.

Solver: 5-point finite differences, sparse LU (scipy ``splu``, one factorisation
reused for every task; :mod:`scimeta.solvers.elliptic`). Verified
(tests/test_poisson.py): on u = sin(pi x) sin(pi y) (f = 2 pi^2 u) the observed
order is 2.00 (max errors 3.2e-3, 8.0e-4, 2.0e-4, 5.0e-5 at h = 1/16 .. 1/128);
for a Gaussian source with sigma = 0.03 the h = 1/128 solution differs from the
Richardson-extrapolated one by 1.5e-3 relative (2.3e-4 at sigma = 0.1).
"""

from __future__ import annotations

import math

import numpy as np

from scimeta.family import STATUS_NON_FINITE, STATUS_OK, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid
from scimeta.pde import PdeFamily
from scimeta.solvers.elliptic import solve_poisson


def gaussian_source(x, y, amp, x0, y0, sigma, xp=np):
    """``amp exp(-((x - x0)^2 + (y - y0)^2) / (2 sigma^2))`` (broadcasting; numpy or torch)."""
    return amp * xp.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))


_CENTRE = {"x0": (0.25, 0.75), "y0": (0.25, 0.75)}
_HOLE = {"x0": (0.45, 0.55), "y0": (0.45, 0.55)}


class Poisson(PdeFamily):
    name = "poisson"
    summary = "Poisson equation with a Gaussian source, zero Dirichlet data, unit square"
    equation = ("-(u_xx + u_yy) = A*exp(-((x - x0)**2 + (y - y0)**2)/(2*sigma**2)); "
                "u = 0 on the boundary of (0, 1)^2")
    equation_latex = (r"-\Delta u = A\,e^{-|\mathbf{x}-\mathbf{x}_0|^2/(2\sigma^2)},"
                      r"\ u|_{\partial\Omega} = 0")
    params = (
        ParamSpec("A", "1/m^2", (-math.inf, math.inf), "source strength"),
        ParamSpec("x0", "m", (0.0, 1.0), "source centre, x"),
        ParamSpec("y0", "m", (0.0, 1.0), "source centre, y"),
        ParamSpec("sigma", "m", (0.0, math.inf), "source width"),
    )
    state_names = ("u",)
    state_units = ("1",)
    time_unit = "1"
    time = TimeGrid(0.0, 1.0, 2)
    regimes = {
        "train": Regime("train", box={"A": (10.0, 100.0), "sigma": (0.05, 0.15), **_CENTRE},
                        exclude=(_HOLE,),
                        description="A in [10, 100], sigma in [0.05, 0.15], centre in "
                                    "[0.25, 0.75]^2 minus (0.45, 0.55)^2"),
        "test-interpolate": Regime("test-interpolate",
                                   box={"A": (10.0, 100.0), "sigma": (0.05, 0.15), **_HOLE},
                                   description="centre in [0.45, 0.55]^2"),
        "test-extrapolate": Regime("test-extrapolate",
                                   box={"A": (10.0, 100.0), "sigma": (0.03, 0.05), **_CENTRE},
                                   description="narrower sources, sigma in [0.03, 0.05]"),
    }
    domain = {"x": (0.0, 1.0), "y": (0.0, 1.0)}
    shape = {"x": 127, "y": 127}  # interior nodes: 128 cells per axis
    initial = "none (steady problem)"
    spatial_derivatives = ("xx", "yy")
    solver = SolverInfo("scimeta.solvers.elliptic", "5-point finite differences + sparse LU",
                        note="interior nodes i/128; second order in h")

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(length / (self.shape[a] + 1) for a, length in zip(self.axes, self.lengths,
                                                                       strict=True))

    @property
    def space(self) -> dict[str, np.ndarray]:
        """Interior node coordinates ``lo + i h``, ``i = 1 .. n``, ``h = L / (n + 1)``."""
        return {a: lo + (hi - lo) * np.arange(1, self.shape[a] + 1) / (self.shape[a] + 1)
                for a, (lo, hi) in self.domain.items()}

    def initial_state(self, rule, rng):
        if rule is None:
            return np.zeros((self.shape["x"], self.shape["y"], 1))
        return super().initial_state(rule, rng)

    def source(self, params: np.ndarray) -> np.ndarray:
        """``f`` on the interior nodes for each task: params ``[N, 4]`` -> ``[N, nx, ny]``."""
        x, y = np.meshgrid(*self.space.values(), indexing="ij")
        p = np.asarray(params, dtype=np.float64)[:, :, None, None]
        return gaussian_source(x, y, p[:, 0], p[:, 1], p[:, 2], p[:, 3])

    def solve_batch(self, params, y0, t):
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        u = solve_poisson(self.source(params), *self.lengths)
        fields = np.repeat(u[:, None, ..., None], len(t), axis=1)
        finite = np.all(np.isfinite(fields.reshape(len(params), -1)), axis=1)
        fields[~finite] = np.nan
        status = np.where(finite, STATUS_OK, STATUS_NON_FINITE).astype(np.int8)
        return fields, status

    def residual(self, t, y, dydt, params, **derivs):
        import torch

        amp, x0, y0, sigma = self.param_columns(params)
        space = derivs["space"]
        f = gaussian_source(space[..., :1], space[..., 1:2], amp, x0, y0, sigma, xp=torch)
        return -(derivs["d_xx"] + derivs["d_yy"]) - f
