"""1D PDE families against exact answers (float64; tolerance stated beside each case)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scimeta import problems
from scimeta.family import STATUS_NON_FINITE, STATUS_OK, STATUS_UNDER_RESOLVED
from scimeta.pde import GaussianRandomField, SineSeries, field_status
from scimeta.problems.advection import PDEBENCH_BETA, Advection
from scimeta.problems.allen_cahn import AllenCahn
from scimeta.problems.burgers import Burgers
from scimeta.problems.fisher_kpp import FisherKPP
from scimeta.problems.heat import Heat
from scimeta.problems.kdv import KdV
from scimeta.solvers.fourier import FourierGrid

FAMILIES = ("heat", "advection", "burgers", "fisher_kpp", "allen_cahn", "kdv")


# ---- declarations and initial conditions --------------------------------------------
def _inside(fam, regime, p) -> bool:
    """Strictly inside the regime's box (sharing a boundary is allowed)."""
    b = regime.bounds(fam.params)
    return bool(np.all((b[:, 0] < p) & (p < b[:, 1])))


def _on_edge(fam, regime, p) -> bool:
    b = regime.bounds(fam.params)
    return bool(np.any(np.isclose(p[:, None], b)))


@pytest.mark.parametrize("name", FAMILIES)
def test_family_declarations(name):
    fam = problems.get(name)
    fam.check()
    assert {"train", "test-interpolate", "test-extrapolate"} <= set(fam.regimes)
    assert set(fam.space) == set(fam.space_units()) == set(fam.domain)
    assert fam.describe()["space"]["x"]["points"] == fam.shape["x"]
    rng = np.random.default_rng(0)
    train, interp, extra = (fam.regime(r) for r in ("train", "test-interpolate",
                                                    "test-extrapolate"))
    for i in range(200):  # disjoint: train draws never fall inside a test box
        p = train.sample(fam.params, rng, i)
        assert not _inside(fam, interp, p) and not _inside(fam, extra, p)
        for test in (interp, extra):
            q = test.sample(fam.params, rng, i)
            assert not train.contains(fam.params, q) or _on_edge(fam, test, q)
    for regime in fam.regimes.values():
        a = fam.sample_initial_state(np.random.default_rng(5), regime)
        b = fam.sample_initial_state(np.random.default_rng(5), regime)
        assert a.shape == (fam.shape["x"], 1) and np.array_equal(a, b)


def test_random_initial_conditions():
    x = [np.arange(64) / 64, np.arange(32) / 32 * 2]
    s = SineSeries(unit_interval=True).sample(np.random.default_rng(1), x, (1.0, 2.0), 2)
    assert s.shape == (64, 32, 2)
    assert s.min() == pytest.approx(0.0, abs=1e-15) and s.max() == pytest.approx(1.0)
    g = GaussianRandomField(0.2, amplitude=0.7).sample(np.random.default_rng(2), x[:1], (1.0,))
    assert np.sqrt(np.mean(g**2)) == pytest.approx(0.7, rel=1e-12)  # RMS exact by design
    g2 = GaussianRandomField(0.2, amplitude=0.7).sample(np.random.default_rng(2), x[:1], (1.0,))
    assert np.array_equal(g, g2)


# ---- solvers against exact solutions --------------------------------------------------
def test_heat_matches_fourier_series():
    # u0 = sum_m b_m sin(2 pi m x + phi_m): exact b_m e^{-D (2 pi m)^2 t}; tol 1e-13 abs
    fam = Heat()
    x = fam.space["x"]
    modes, amps, phases = (1, 3, 7), (1.0, 0.5, 0.25), (0.3, 1.1, 2.0)
    y0 = sum(a * np.sin(2 * np.pi * m * x + p) for m, a, p in zip(modes, amps, phases,
                                                                  strict=True))
    diffs = np.array([[0.001], [0.01], [0.05]])
    t = fam.time.values()
    out, status = fam.solve_batch(diffs, np.repeat(y0[None, :, None], 3, 0), t)
    assert np.all(status == STATUS_OK)
    for i, d in enumerate(diffs[:, 0]):
        exact = sum(a * np.exp(-d * (2 * np.pi * m) ** 2 * t[:, None])
                    * np.sin(2 * np.pi * m * x + p)
                    for m, a, p in zip(modes, amps, phases, strict=True))
        assert np.max(np.abs(out[i, :, :, 0] - exact)) <= 1e-13


def test_advection_matches_exact_shift():
    # u(x, t) = u0(x - beta t), PDEBench speeds, t in [0, 2]; tol 1e-12 abs
    fam = Advection()
    x = fam.space["x"]

    def u0(z):
        return np.sin(2 * np.pi * z + 0.4) + 0.3 * np.cos(8 * np.pi * z)

    betas = np.array(PDEBENCH_BETA)[:, None]
    t = fam.time.values()
    out, status = fam.solve_batch(betas, np.repeat(u0(x)[None, :, None], len(betas), 0), t)
    assert np.all(status == STATUS_OK)
    exact = u0(x[None, None, :] - betas[:, :, None] * t[None, :, None])
    assert np.max(np.abs(out[..., 0] - exact)) <= 1e-12


def cole_hopf_minus_sine(x: np.ndarray, t: float, nu: float, n: int = 6001) -> np.ndarray:
    """Burgers u_t + u u_x = nu u_xx, u0 = -sin(pi x): Cole-Hopf integral form.

    u(x, t) = int (x - y)/t w dy / int w dy, w = exp(-G / (2 nu)), G(y) = F(y) + (x - y)^2 / (2t),
    F(y) = int_0^y u0 = (cos(pi y) - 1) / pi; the exponent is shifted by its maximum per x.
    Trapezoid rule in z = x - y on [-W, W], where the Gaussian factor has fallen below
    e^-60 times the largest possible ratio of the F weights (spectrally accurate).
    """
    half_width = math.sqrt(4 * nu * t * (1 / (math.pi * nu) + 60))
    z = np.linspace(-half_width, half_width, n)
    y = x[:, None] - z[None, :]
    expo = -((np.cos(np.pi * y) - 1) / np.pi + z**2 / (2 * t)) / (2 * nu)
    w = np.exp(expo - expo.max(axis=1, keepdims=True))
    return (w * z).sum(axis=1) / t / w.sum(axis=1)


def test_burgers_matches_cole_hopf():
    # nu = 0.02, 256 points, u0 = -sin(pi x): relative L2 <= 1e-6 at t = 0.25, 0.5, 1
    fam = Burgers(shape={"x": 256})
    rng = np.random.default_rng(0)
    y0 = fam.sample_initial_state(rng, fam.regime("classic"))[None]
    t = np.array([0.0, 0.25, 0.5, 1.0])
    out, status = fam.solve_batch(np.array([[0.02]]), y0, t)
    assert status[0] == STATUS_OK
    x = fam.space["x"]
    for j in range(1, len(t)):
        exact = cole_hopf_minus_sine(x, t[j], 0.02)
        rel = np.linalg.norm(out[0, j, :, 0] - exact) / np.linalg.norm(exact)
        assert rel <= 1e-6, (t[j], rel)


@pytest.mark.slow
def test_burgers_matches_cole_hopf_small_viscosity():
    # nu = 0.005 on the default 1024 points: relative L2 <= 1e-6 (measured 6.5e-9)
    fam = Burgers()
    y0 = fam.initial_state("minus-sine", None)[None]
    t = np.array([0.0, 0.25, 0.5, 1.0])
    out, status = fam.solve_batch(np.array([[0.005]]), y0, t)
    assert status[0] == STATUS_OK
    for j in range(1, len(t)):
        exact = cole_hopf_minus_sine(fam.space["x"], t[j], 0.005, n=20001)
        assert np.linalg.norm(out[0, j, :, 0] - exact) <= 1e-6 * np.linalg.norm(exact)


def az_wave(x, t, nu, rho, shift):
    """Ablowitz-Zeppetella wave of u_t = nu u_xx + rho u (1 - u) (C = 1 at x = shift)."""
    return (1 + np.exp(math.sqrt(rho / (6 * nu)) * (x - shift) - 5 * rho * t / 6)) ** -2


@pytest.mark.parametrize(("nu", "rho"), [(1.0, 1.0), (0.5, 2.0)])
def test_fisher_kpp_matches_travelling_wave(nu, rho):
    # long periodic box, IC = product of two mirrored AZ fronts 120 apart (interaction
    # <= e^-24); the right half is compared with the exact wave for t <= 5; tol 3e-8 abs
    class LongFisher(FisherKPP):
        domain = {"x": (-120.0, 120.0)}
        shape = {"x": 1024}

    fam = LongFisher()
    x = fam.space["x"]
    a = 60.0
    y0 = az_wave(x, 0, nu, rho, a) * az_wave(-x, 0, nu, rho, a)
    t = np.linspace(0.0, 5.0, 6)
    out, status = fam.solve_batch(np.array([[nu, rho]]), y0[None, :, None], t)
    assert status[0] == STATUS_OK
    right = x >= 0
    exact = az_wave(x[None, right], t[:, None], nu, rho, a)
    assert np.max(np.abs(out[0][:, right, 0] - exact)) <= 3e-8  # measured 7.3e-9


def test_allen_cahn_tanh_fronts_stay_steady():
    # eps^2 u_xx + u - u^3 = 0 by u = tanh(x / (sqrt(2) eps)); two fronts 1 apart
    # (interaction ~e^-70) stay put over t in [0, 1], lam = 5: max change <= 1e-10
    fam = AllenCahn()
    eps = 0.02
    x = fam.space["x"]
    s = math.sqrt(2) * eps
    y0 = np.tanh((x + 0.5) / s) * np.tanh((0.5 - x) / s)
    out, status = fam.solve_batch(np.array([[eps, 5.0]]), y0[None, :, None],
                                  np.linspace(0, 1, 5))
    assert status[0] == STATUS_OK
    assert np.max(np.abs(out[0, :, :, 0] - y0)) <= 1e-10


def test_kdv_soliton():
    # u = 3c sech^2(sqrt(c)(x - x0 - ct)/(2 delta)), c = 1, delta = 0.05, 256 points,
    # t <= 0.5; tails at the wrap ~e^-20; tolerance 1e-7 abs
    fam = KdV(shape={"x": 256})
    x = fam.space["x"]
    c, delta = 1.0, 0.05

    def sol(t):
        xi = (x - 1.0 - c * t + 1.0) % 2.0 - 1.0  # periodic distance from the crest
        return 3 * c / np.cosh(math.sqrt(c) * xi / (2 * delta)) ** 2

    t = np.array([0.0, 0.25, 0.5])
    out, status = fam.solve_batch(np.array([[delta]]), sol(0.0)[None, :, None], t)
    assert status[0] == STATUS_OK
    for j, tj in enumerate(t):
        assert np.max(np.abs(out[0, j, :, 0] - sol(tj))) <= 1e-7


# ---- batching and status ------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_batched_equals_one_at_a_time(name):
    # same per-task steps whatever the batch: agreement to 1e-13 relative to max|u|
    fam = type(problems.get(name))(shape={"x": 128})
    rng = np.random.default_rng(3)
    regime = fam.regime("train")
    params = np.stack([regime.sample(fam.params, rng, i) for i in range(3)])
    y0 = np.stack([fam.sample_initial_state(rng, regime) for _ in range(3)])
    t = np.linspace(0, 0.2, 5)
    batched, s_batched = fam.solve_batch(params, y0, t)
    for i in range(3):
        single, s_single = fam.solve_batch(params[i:i + 1], y0[i:i + 1], t)
        assert s_single[0] == s_batched[i]
        scale = np.max(np.abs(single))
        assert np.max(np.abs(single[0] - batched[i])) <= 1e-13 * scale


def test_under_resolved_burgers_is_flagged(caplog):
    # nu = 1e-3 on 64 points: the shock cannot be resolved -> under-resolved, logged
    fam = Burgers(shape={"x": 64})
    y0 = fam.initial_state("minus-sine", None)[None]
    params = np.array([[1e-3], [0.5]])
    _, status = fam.solve_batch(params, np.repeat(y0, 2, 0), np.linspace(0, 1, 11))
    assert status.tolist() == [STATUS_UNDER_RESOLVED, STATUS_OK]
    assert "under-resolved" in caplog.text


def test_non_finite_is_flagged():
    grid = FourierGrid([16], [1.0])
    fields = np.zeros((3, 4, 16, 1))
    fields[1, 2, 3, 0] = np.inf
    fields[2, 1, 0, 0] = np.nan
    status = field_status(grid, fields, 1e-8, "test")
    assert status.tolist() == [STATUS_OK, STATUS_NON_FINITE, STATUS_NON_FINITE]
    assert np.all(np.isnan(fields[1:])) and np.all(fields[0] == 0)


def test_allen_cahn_pinn_regime_generates_from_the_cli(tmp_path):
    # the meta-learned PINN protocol's box (docs/meta-pinn.md) is a regime of the family:
    # `scimeta generate` reproduces its stores — lam fixed at 1, eps inside the band
    # asked for, u(0, x) = x^2 cos(pi x) on the grid exactly
    from scimeta.cli import main
    from scimeta.data import TaskReader

    out = tmp_path / "ac.h5"
    assert main(["generate", "allen_cahn", "--regime", "pinn-x2cos", "--tasks", "2",
                 "--seed", "1", "--param", "eps=0.07:0.1", "--out", str(out)]) == 0
    reader = TaskReader(out)
    assert reader.meta.regime == "pinn-x2cos"
    eps, lam = reader.params.T
    assert np.all(lam == 1.0) and np.all((0.07 <= eps) & (eps <= 0.1))
    x = AllenCahn().space["x"]
    for i in range(len(reader)):
        np.testing.assert_allclose(reader.fields(i)[0, :, 0], x**2 * np.cos(np.pi * x),
                                   rtol=0, atol=1e-6)  # float32 store
