"""Method of lines (scimeta.solvers.mol) against exact heat-equation solutions.

float64 throughout. Time tolerances rtol=1e-11, atol=1e-13 in the convergence tests
keep the time error (~1e-9) far below the spatial error (>= 7e-5), so the observed
order is the spatial one: expected 2, accepted 2 +- 0.2.
"""

from __future__ import annotations

import numpy as np
import pytest

from scimeta.errors import SolverFailed, SolverInputError
from scimeta.solvers.mol import Dirichlet, MolGrid, Neumann, Periodic, solve_mol

D = 0.1
MODES = {1: 1.0, 2: 0.5, 3: -0.3}  # b_n of u0 = sum b_n sin(n pi x)
T_OUT = np.linspace(0.0, 0.1, 5)
TIGHT = {"rtol": 1e-11, "atol": 1e-13}


def heat(_t, _u, _ux, uxx):
    return D * uxx


def sine_series(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Exact Dirichlet solution sum b_n exp(-D n^2 pi^2 t) sin(n pi x), ``[T, n]``."""
    return sum(b * np.exp(-D * (k * np.pi) ** 2 * t[:, None]) * np.sin(k * np.pi * x)
               for k, b in MODES.items())


def observed_orders(errors: list[float]) -> np.ndarray:
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


def test_heat_dirichlet_second_order_in_space():
    errors = []
    for cells in (16, 32, 64, 128):
        x = np.linspace(0.0, 1.0, cells + 1)
        grid = MolGrid(x, Dirichlet(0.0), Dirichlet(0.0))  # u0(1) = sin(n pi) is ~1e-16
        u = solve_mol(heat, sine_series(x, T_OUT[:1])[0], T_OUT, grid, jac=D * grid.d2, **TIGHT)
        assert u.shape == (T_OUT.size, x.size)
        assert np.all(u[:, [0, -1]] == 0.0)
        errors.append(np.max(np.abs(u - sine_series(x, T_OUT))))
    # measured: 4.5e-3, 1.1e-3, 2.8e-4, 7.1e-5 -> orders 2.000, 2.000, 1.997
    assert errors[-1] < 1e-4
    np.testing.assert_allclose(observed_orders(errors), 2.0, atol=0.2)


def test_sparsity_path_matches_explicit_jacobian():
    x = np.linspace(0.0, 1.0, 33)
    u0 = sine_series(x, T_OUT[:1])[0]
    grid = MolGrid(x)
    with_jac = solve_mol(heat, u0, T_OUT, grid, jac=D * grid.d2, **TIGHT)
    with_pattern = solve_mol(heat, u0, T_OUT, x, **TIGHT)  # finite-difference Jacobian
    np.testing.assert_allclose(with_pattern, with_jac, rtol=0, atol=1e-9)


@pytest.mark.parametrize("held", [True, False])
def test_nonzero_dirichlet_linear_profile_is_steady(held):
    a, b = 1.5, -0.5
    x = np.linspace(0.0, 1.0, 41)
    line = a + (b - a) * x
    ends = (Dirichlet(), Dirichlet()) if held else (Dirichlet(a), Dirichlet(b))
    u0 = line if held else np.zeros_like(line) + line * (x > 0) * (x < 1)
    u = solve_mol(heat, u0, np.linspace(0.0, 1.0, 11), x, *ends, rtol=1e-8, atol=1e-12)
    assert np.max(np.abs(u - line)) < 1e-10


def test_nonzero_dirichlet_transient_second_order():
    a, b = 1.5, -0.5
    errors = []
    for cells in (16, 32, 64):
        x = np.linspace(0.0, 1.0, cells + 1)
        line = a + (b - a) * x
        grid = MolGrid(x, Dirichlet(a), Dirichlet(b))
        u = solve_mol(heat, line + sine_series(x, T_OUT[:1])[0], T_OUT, grid,
                      jac=D * grid.d2, **TIGHT)
        errors.append(np.max(np.abs(u - line - sine_series(x, T_OUT))))
    # identical to the homogeneous case: the boundary data enter exactly
    np.testing.assert_allclose(observed_orders(errors), 2.0, atol=0.2)


def test_neumann_cosine_second_order_and_steady_slope():
    errors = []
    for cells in (16, 32, 64):
        x = np.linspace(0.0, 1.0, cells + 1)
        grid = MolGrid(x, Neumann(0.0), Neumann(0.0))
        u = solve_mol(heat, np.cos(np.pi * x), T_OUT, grid, jac=D * grid.d2, **TIGHT)
        exact = np.exp(-D * np.pi**2 * T_OUT[:, None]) * np.cos(np.pi * x)
        errors.append(np.max(np.abs(u - exact)))
    np.testing.assert_allclose(observed_orders(errors), 2.0, atol=0.2)
    # u = 1 + 0.7 x with u_x = 0.7 imposed at both ends is steady (ghost nodes exact)
    x = np.linspace(0.0, 1.0, 21)
    u = solve_mol(heat, 1 + 0.7 * x, np.linspace(0, 1, 6), x, Neumann(0.7), Neumann(0.7),
                  rtol=1e-8, atol=1e-12)
    assert np.max(np.abs(u - (1 + 0.7 * x))) < 1e-10


def test_periodic_heat_mode():
    x = np.linspace(0.0, 1.0, 64, endpoint=False)
    grid = MolGrid(x, Periodic(), Periodic())
    u = solve_mol(heat, np.sin(2 * np.pi * x), T_OUT, grid, jac=D * grid.d2, **TIGHT)
    # semi-discrete rate 4 D sin^2(k dx / 2) / dx^2 is exact for a single mode
    rate = 4 * D * np.sin(np.pi * grid.dx) ** 2 / grid.dx**2
    np.testing.assert_allclose(u, np.exp(-rate * T_OUT[:, None]) * np.sin(2 * np.pi * x),
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize(("ends", "m", "nnz"), [
    ((Dirichlet(), Dirichlet()), 31, 3 * 31 - 2),
    ((Dirichlet(), Neumann()), 32, 3 * 32 - 2),
    ((Neumann(), Neumann()), 33, 3 * 33 - 2),
    ((Periodic(), Periodic()), 33, 3 * 33),
])
def test_jacobian_pattern_is_tridiagonal(ends, m, nnz):
    grid = MolGrid(np.linspace(0.0, 1.0, 33), *ends)
    pattern = grid.jac_sparsity()
    assert pattern.shape == (m, m)
    assert pattern.nnz == nnz
    rows, cols = pattern.nonzero()
    off = np.abs(rows - cols)
    assert np.all((off <= 1) | (off == m - 1))
    assert grid.d2.nnz <= 3 * grid.n and grid.d1.nnz <= 2 * grid.n


def test_bad_input_raises_config_error():
    x = np.linspace(0.0, 1.0, 11)
    t = np.array([0.0, 0.1])
    with pytest.raises(SolverInputError, match="x must be uniform"):
        solve_mol(heat, np.zeros(11), t, np.r_[x[:-1], 1.05])
    with pytest.raises(SolverInputError, match="x must be a 1D grid of at least 3"):
        solve_mol(heat, np.zeros(2), t, np.array([0.0, 1.0]))
    with pytest.raises(SolverInputError, match=r"u0 must have shape \(11,\)"):
        solve_mol(heat, np.zeros(10), t, x)
    with pytest.raises(SolverInputError, match="t must be"):
        solve_mol(heat, np.zeros(11), np.array([0.1, 0.0]), x)
    with pytest.raises(SolverInputError, match="left and right must both be Periodic"):
        MolGrid(x, Periodic(), Dirichlet())
    with pytest.raises(SolverInputError, match="left must be"):
        MolGrid(x, "dirichlet")  # type: ignore[arg-type]
    with pytest.raises(SolverInputError, match="rhs must return"):
        solve_mol(lambda t, u, ux, uxx: uxx[1:], np.zeros(11), t, x)
    with pytest.raises(SolverInputError, match="jac is used only"):
        solve_mol(heat, np.zeros(11), t, x, method="RK45", jac=np.eye(11))


def test_blow_up_raises_solver_failed():
    x = np.linspace(0.0, 1.0, 11)
    with pytest.raises(SolverFailed, match="BDF"):
        solve_mol(lambda t, u, ux, uxx: u**3, np.full(11, 10.0), np.array([0.0, 1.0]), x,
                  Neumann(), Neumann())
