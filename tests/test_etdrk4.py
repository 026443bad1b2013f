"""ETDRK4 and Fourier-grid tests: coefficients, exactness on linear problems, 4th order,
the stepper's declared order against the observed one, and solver input errors.

All in float64; the tolerance of each case is stated beside it.
"""

from __future__ import annotations

import numpy as np
import pytest

from scimeta.errors import SolverInputError
from scimeta.pde import SpectralPdeFamily
from scimeta.problems.fisher_kpp import FisherKPP
from scimeta.solvers.elliptic import dirichlet_laplacian, solve_poisson
from scimeta.solvers.etdrk4 import (
    ETDRK4,
    etdrk4_coefficients,
    etdrk4_solve,
    group_by_step,
    substeps,
)
from scimeta.solvers.fourier import FourierGrid
from scimeta.solvers.stepper import Stepper


def _closed_forms(z: np.ndarray) -> dict[str, np.ndarray]:
    ez = np.exp(z)
    return {
        "Q": (np.exp(z / 2) - 1) / z,
        "f1": (-4 - z + ez * (4 - 3 * z + z**2)) / z**3,
        "f2": (2 + z + ez * (z - 2)) / z**3,
        "f3": (-4 - 3 * z - z**2 + ez * (4 - z)) / z**3,
    }


@pytest.mark.parametrize("z", [2.0, -3.0, -50.0, -1e4, 5j, 300j, -4 + 40j])
def test_coefficients_match_closed_forms_away_from_zero(z):
    # |z| >= 2: the closed forms have no cancellation; tolerance 1e-12 relative
    c = etdrk4_coefficients(np.array([z]), 1.0)
    for key, val in _closed_forms(np.array([z], dtype=complex)).items():
        assert abs(c[key][0] - val[0]) <= 1e-12 * abs(val[0]), key


def test_coefficients_limits_at_zero():
    # z -> 0: Q -> h/2, f1 = f2 = f3 -> h/6 (Taylor limits); tolerance 1e-13 relative
    h = 0.1
    c = etdrk4_coefficients(np.array([0.0, 1e-9]), h)
    assert np.allclose(c["Q"][0], h / 2, rtol=1e-13, atol=0)
    assert np.allclose(c["Q"][1], h / 2, rtol=1e-9, atol=0)  # z = 1e-10 moves it by ~z/4
    for key in ("f1", "f2", "f3"):
        assert np.allclose(c[key][0], h / 6, rtol=1e-13, atol=0)
        assert np.allclose(c[key][1], h / 6, rtol=1e-9, atol=0)
    assert np.isrealobj(c["E"])  # real operator -> real coefficients


def test_linear_problem_is_exact():
    # N = 0: u(t) = exp(L t) u0 exactly, whatever the step; tolerance 1e-13 relative
    lin = np.array([[-1.0, -100.0, 0.0, 2.0]]) + 1j * np.array([[0.0, 3.0, 50.0, 0.0]])
    u0 = np.ones((1, 4), dtype=complex)
    t = np.array([0.0, 0.3, 1.0])
    out = etdrk4_solve(u0, lin, lambda u: 0 * u, t, max_step=0.7)
    np.testing.assert_allclose(out[0, 2], np.exp(lin[0]), rtol=1e-13)


def test_scalar_nonlinear_ode():
    # u' = -u + u^2 (L = -1, N = u^2), exact u = 1 / (1 + (1/u0 - 1) e^t); h = 1e-3 -> 1e-13
    u0 = np.array([[0.5]])
    t = np.linspace(0, 2, 5)
    out = etdrk4_solve(u0, np.array([[-1.0]]), lambda u: u**2, t, max_step=1e-3)
    exact = 1 / (1 + (1 / 0.5 - 1) * np.exp(t))
    np.testing.assert_allclose(out[0, :, 0], exact, rtol=1e-12)


def _burgers(n_steps: int, grid: FourierGrid, nu: float, t_end: float) -> np.ndarray:
    x = grid.coords()[0]
    u0 = (np.sin(np.pi * x) + 0.5 * np.cos(2 * np.pi * x))[None, :, None]
    lin = -nu * grid.expand(grid.k[0] ** 2)

    def rhs(uh):
        uh = grid.dealias(uh)
        return grid.dealias(-0.5 * grid.derivative(grid.fft(grid.ifft(uh) ** 2), 0))

    t = np.array([0.0, t_end])
    return etdrk4_solve(grid.fft(u0), lin, rhs, t, t_end / n_steps, observe=grid.ifft)[0, -1]


def test_fourth_order_in_time():
    # smooth Burgers, nu = 0.1, 64 modes on [-1, 1): errors vs a 1/16-step reference;
    # observed orders log2(e(h)/e(h/2)) must lie in 4 +- 0.3
    grid = FourierGrid([64], [2.0], [-1.0])
    ref = _burgers(1280, grid, 0.1, 1.0)
    errs = [np.max(np.abs(_burgers(n, grid, 0.1, 1.0) - ref)) for n in (20, 40, 80)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - 4.0) <= 0.3), (errs, orders)


def test_two_dimensional_heat_per_task_per_channel():
    # 2D linear diffusion, diffusivity per task and per channel: exact factor; tol 1e-13
    grid = FourierGrid([16, 8], [1.0, 2.0], [0.0, -1.0])
    x, y = np.meshgrid(*grid.coords(), indexing="ij")
    base = np.sin(2 * np.pi * x) * np.cos(np.pi * y) + np.cos(6 * np.pi * x + np.pi * 2 * y)
    u0 = np.stack([base, 2 * base], axis=-1)[None].repeat(3, axis=0)  # [3, 16, 8, 2]
    diff = np.array([0.01, 0.02, 0.05])[:, None, None, None] * np.array([1.0, 0.5])
    lin = -diff * grid.k2()[None, :, :, None]
    t = np.array([0.0, 0.5])
    out = etdrk4_solve(grid.fft(u0), lin, lambda u: 0 * u, t, 0.5, observe=grid.ifft)
    k1 = (2 * np.pi) ** 2 + (np.pi) ** 2
    k2 = (6 * np.pi) ** 2 + (2 * np.pi) ** 2
    for i in range(3):
        for c, scale in enumerate((1.0, 2.0)):
            d = diff[i, 0, 0, c]
            exact = scale * (np.sin(2 * np.pi * x) * np.cos(np.pi * y) * np.exp(-d * k1 * 0.5)
                             + np.cos(6 * np.pi * x + 2 * np.pi * y) * np.exp(-d * k2 * 0.5))
            np.testing.assert_allclose(out[i, 1, :, :, c], exact, atol=1e-13)


def test_fourier_grid_derivative_and_tail():
    grid = FourierGrid([32], [2 * np.pi])
    x = grid.coords()[0]
    u = np.sin(3 * x)[None, :, None]
    du = grid.ifft(grid.derivative(grid.fft(u), 0))
    np.testing.assert_allclose(du[0, :, 0], 3 * np.cos(3 * x), atol=1e-13)  # spectral
    assert grid.tail_fraction(u)[0] < 1e-28  # mode 3 is far below the top third
    # mode 9 lies in the top third of the 2/3 band (|m| in (64/9, 32/3]): all the energy
    assert grid.tail_fraction(np.sin(9 * x)[None, :, None])[0] == pytest.approx(1.0)
    assert np.isnan(grid.tail_fraction(np.full((1, 32, 1), np.nan))[0])


def test_substeps_and_groups():
    t = np.array([0.0, 0.1, 0.3])
    assert substeps(t, 0.05).tolist() == [2, 4]
    assert substeps(t, 0.1).tolist() == [1, 2]  # exact division stays exact
    limits = [0.1, 0.04, 0.09, 0.01, 0.06]
    groups = group_by_step(np.array(limits), t)
    assert sorted(g.tolist() for g, _ in groups) == [[0], [1], [2, 4], [3]]
    steps = {int(i): h for g, h in groups for i in g}
    for i, limit in enumerate(limits):
        assert limit / 2 < steps[i] <= limit


# ---- the declared order of the stepper -----------------------------------------------
def _observed_orders(errs: list[float]) -> np.ndarray:
    """``log2(e(h) / e(h/2))`` for errors at steps ``h, h/2, h/4, ...``."""
    return np.log2(np.array(errs[:-1]) / np.array(errs[1:]))


def test_spectral_families_declare_etdrk4_of_order_4():
    # ETDRK4 (Cox & Matthews 2002) is 4th order in time
    stepper = SpectralPdeFamily.stepper
    assert isinstance(stepper, ETDRK4) and isinstance(stepper, Stepper)
    assert stepper.order == 4 and stepper.name == "etdrk4"


def test_declared_order_matches_closed_form_convergence():
    # u' = -u + u^2, u(0) = 1/2: exact u(2) = 1 / (1 + e^2); steps 0.2 .. 0.025 give
    # errors 8e-7 .. 2e-10; observed orders must lie within 0.3 of the declared order
    stepper = SpectralPdeFamily.stepper
    t = np.array([0.0, 2.0])
    exact = 1 / (1 + np.exp(2.0))
    errs = [abs(stepper.solve(np.array([[0.5]]), np.array([[-1.0]]), lambda u: u**2, t,
                              2.0 / n)[0, -1, 0] - exact) for n in (10, 20, 40, 80)]
    orders = _observed_orders(errs)
    assert np.all(np.abs(orders - stepper.order) <= 0.3), (errs, orders)


def test_declared_order_matches_family_time_loop():
    # Fisher-KPP (nu = 0.01, rho = 5, 128 points, smooth u0) through the family's own
    # time loop with the step set by max_step alone; errors vs a 1/1024-step reference
    # (5e-6 .. 2e-8); observed orders must lie within 0.3 of the declared order
    class Free(FisherKPP):
        shape = {"x": 128}

        def max_step(self, params, y0):
            return np.full(len(params), np.inf)

    x = Free().space["x"]
    y0 = (0.5 + 0.4 * np.sin(2 * np.pi * x))[None, :, None]
    t, p = np.array([0.0, 0.5]), np.array([[0.01, 5.0]])
    ref, status = Free(max_step=0.5 / 1024).solve_batch(p, y0, t)
    assert status.tolist() == [0]
    errs = [np.max(np.abs(Free(max_step=0.5 / n).solve_batch(p, y0, t)[0] - ref))
            for n in (16, 32, 64)]
    orders = _observed_orders(errs)
    assert np.all(np.abs(orders - Free.stepper.order) <= 0.3), (errs, orders)


# ---- bad input -----------------------------------------------------------------------
T2 = np.array([0.0, 1.0])


@pytest.mark.parametrize("call, argument", [
    (lambda: substeps(np.array([0.0, 0.2, 0.2]), 0.1), "t"),
    (lambda: substeps(np.array([0.0, np.nan]), 0.1), "t"),
    (lambda: substeps(T2, 0.0), "max_step"),
    (lambda: etdrk4_solve(np.ones((1, 2)), np.zeros((1, 2)), lambda u: u, T2, np.inf),
     "max_step"),
    (lambda: etdrk4_coefficients(np.zeros(3), 0.1, n_contour=0), "n_contour"),
    (lambda: ETDRK4(n_contour=-2), "n_contour"),
    (lambda: group_by_step(np.array([0.1, -1.0]), T2), "max_step"),
    (lambda: group_by_step(np.array([0.1]), np.array([0.0])), "t"),
    (lambda: FourierGrid([6, 8, 8], [1.0, 1.0, 1.0]), "shape"),
    (lambda: FourierGrid([7], [1.0]), "shape"),
    (lambda: FourierGrid([8, 8], [1.0]), "lengths"),
    (lambda: FourierGrid([8, 8], [1.0, 1.0], [0.0]), "lows"),
    (lambda: FourierGrid([8], [-1.0]), "lengths"),
    (lambda: dirichlet_laplacian(1, 4), "nx"),
    (lambda: solve_poisson(np.zeros((3, 3))), "rhs"),
])
def test_solver_input_errors_name_the_argument(call, argument):
    # the message starts with the argument's name and shows its value ("got name=...")
    pattern = rf"^{argument}\b.* must .*got .*\b{argument}\b"
    with pytest.raises(SolverInputError, match=pattern) as err:
        call()
    assert isinstance(err.value, ValueError)  # callers catching ValueError keep working
