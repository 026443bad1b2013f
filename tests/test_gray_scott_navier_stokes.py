"""2D spectral families (Gray-Scott, Navier-Stokes) against exact and reference answers.

float64 throughout; the tolerance of each case is stated beside it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from scimeta import problems
from scimeta.family import STATUS_OK, STATUS_UNDER_RESOLVED
from scimeta.problems.gray_scott import (
    CODA_ADAPT,
    CODA_TRAIN,
    D_U,
    D_V,
    GrayScott,
    GrayScottLeads,
)
from scimeta.problems.navier_stokes import CODA_ADAPT_NU, CODA_NU, NavierStokes, forcing
from scimeta.refined import prolong_cells, prolong_fourier

LAM = 8 * math.pi**2  # -Laplacian eigenvalue of sin(2 pi x) sin(2 pi y) on the unit square


@pytest.mark.parametrize("name", ["gray_scott", "gray_scott_leads", "navier_stokes", "poisson"])
def test_2d_family_declarations(name):
    fam = problems.get(name)
    fam.check()
    assert {"train", "test-interpolate", "test-extrapolate"} <= set(fam.regimes)
    assert set(fam.space) == {"x", "y"} == set(fam.space_units())
    rng = np.random.default_rng(0)
    for regime in ("train", "test-interpolate", "test-extrapolate"):
        p = fam.regime(regime).sample(fam.params, rng)
        assert fam.regime(regime).contains(fam.params, p)
    y0 = fam.sample_initial_state(np.random.default_rng(4), fam.regime("train"))
    assert y0.shape == (fam.shape["x"], fam.shape["y"], len(fam.state_names))
    assert np.array_equal(y0, fam.sample_initial_state(np.random.default_rng(4),
                                                       fam.regime("train")))


def test_literature_regimes():
    gs, ns = problems.get("gray_scott"), problems.get("navier_stokes")
    assert set(gs.regime("coda-train").points) == {(0.030, 0.058), (0.030, 0.062),
                                                  (0.039, 0.058), (0.039, 0.062)}
    assert gs.regime("coda-adapt").points == CODA_ADAPT
    for point in CODA_ADAPT:  # adaptation environments lie in the interpolation box
        assert gs.regime("test-interpolate").contains(gs.params, np.array(point))
    assert gs.regime("well-maze").points == ((0.029, 0.057),)
    assert [p[0] for p in ns.regime("coda-train").points] == list(CODA_NU)
    assert [p[0] for p in ns.regime("coda-adapt").points] == list(CODA_ADAPT_NU)
    assert ns.regime("coda-train").initial == "coda-warmup"
    y0 = gs.sample_initial_state(np.random.default_rng(1))  # LEADS squares: 3 x 3 points
    seeded = y0[..., 1] == 1.0
    assert np.all(y0[seeded, 0] == 0.0) and np.all(y0[~seeded] == (0.95, 0.05))
    assert 9 <= seeded.sum() <= 27


def test_prolongations_reproduce_the_stored_points():
    rng = np.random.default_rng(0)
    coarse = NavierStokes().sample_initial_state(rng)[None]  # band-limited: exact
    np.testing.assert_allclose(prolong_fourier(coarse, 2, 4)[:, ::4, ::4], coarse, atol=1e-13)
    squares = GrayScott().sample_initial_state(rng)[None]
    fine = prolong_cells(squares, 2, 4)
    assert np.array_equal(fine[:, ::4, ::4], squares)  # stored points are cell centres
    assert np.isclose(fine.mean(), squares.mean(), rtol=1e-14)  # cell integrals kept


# ---- Gray-Scott ---------------------------------------------------------------------------
def _fd9_reference(y0: np.ndarray, f: float, k: float, t: np.ndarray) -> np.ndarray:
    """LEADS/CoDA's semi-discrete model (9-point Laplacian, dx = 1) by DOP853 at 1e-11."""
    n = y0.shape[0]

    def lap9(a):
        def r(s):
            return np.roll(a, s, (0, 1))
        edges = r((1, 0)) + r((-1, 0)) + r((0, 1)) + r((0, -1))
        corners = r((1, 1)) + r((1, -1)) + r((-1, 1)) + r((-1, -1))
        return -3 * a + 0.5 * edges + 0.25 * corners

    def rhs(_, z):
        u, v = z.reshape(2, n, n)
        return np.concatenate([(D_U * lap9(u) - u * v * v + f * (1 - u)).ravel(),
                               (D_V * lap9(v) + u * v * v - (f + k) * v).ravel()])

    sol = solve_ivp(rhs, (t[0], t[-1]), np.moveaxis(y0, -1, 0).ravel(), t_eval=t,
                    method="DOP853", rtol=1e-11, atol=1e-12)
    return np.moveaxis(sol.y.T.reshape(len(t), 2, n, n), 1, -1)


def test_gray_scott_leads_grid_model_matches_direct_integration():
    # ETDRK4 (step 0.25) on the 9-point system vs DOP853: max diff <= 1e-6 over t <= 120
    fam = GrayScottLeads()
    y0 = fam.sample_initial_state(np.random.default_rng(0))
    t = np.array([0.0, 40.0, 80.0, 120.0])
    out, status = fam.solve_batch(np.array([CODA_TRAIN[1]]), y0[None], t)
    assert status[0] == STATUS_OK
    ref = _fd9_reference(y0, *CODA_TRAIN[1], t)
    assert np.max(np.abs(out[0] - ref)) <= 1e-6


def test_gray_scott_spectral_resolution_and_convergence(caplog):
    # 32^2 itself is flagged under-resolved; refine 2 vs 4 at the stored points agree to
    # <= 1e-2 over t <= 80 (measured 4e-3: second order from the squares' cell edges)
    t = np.array([0.0, 40.0, 80.0])
    y0 = GrayScott().sample_initial_state(np.random.default_rng(2))[None]
    p = np.array([CODA_TRAIN[3]])
    _, s1 = GrayScott(refine=1).solve_batch(p, y0, t)
    assert s1[0] == STATUS_UNDER_RESOLVED and "under-resolved" in caplog.text
    out2, s2 = GrayScott(refine=2).solve_batch(p, y0, t)
    out4, s4 = GrayScott(refine=4).solve_batch(p, y0, t)
    assert s2[0] == s4[0] == STATUS_OK
    assert np.max(np.abs(out2 - out4)) <= 1e-2


@pytest.mark.slow
def test_gray_scott_coda_horizon_converges_and_keeps_patterns():
    # full CoDA horizon t <= 360: refine 4 vs 8 <= 2e-3 (measured 1.1e-3), step 0.25 vs
    # 0.125 <= 1e-5; spots persist for (0.030, 0.058) (std of v > 0.05 at t = 360)
    fam = GrayScott()
    t = fam.time.values()
    y0 = fam.sample_initial_state(np.random.default_rng(0))[None]
    p = np.array([CODA_TRAIN[0]])
    out4, _ = fam.solve_batch(p, y0, t)
    out8, s8 = GrayScott(refine=8).solve_batch(p, y0, t)
    half, _ = GrayScott(max_step=0.125).solve_batch(p, y0, t)
    assert s8[0] == STATUS_OK
    assert np.max(np.abs(out4 - out8)) <= 2e-3
    assert np.max(np.abs(out4 - half)) <= 1e-5
    assert out4[0, -1, ..., 1].std() > 0.05


# ---- Navier-Stokes ------------------------------------------------------------------------
def _tg(fam):
    x, y = np.meshgrid(*fam.space.values(), indexing="ij")
    w0 = np.sin(2 * np.pi * x) * np.sin(2 * np.pi * y)
    return x, y, w0, np.stack([w0, w0 / LAM], -1)[None]


class Unforced(NavierStokes):
    forcing_amplitude = 0.0


def test_taylor_green_decay():
    # omega = sin 2 pi x sin 2 pi y e^{-8 pi^2 nu t}, psi = omega / (8 pi^2): <= 1e-12
    fam = Unforced()
    _, _, _, y0 = _tg(fam)
    nus = np.array([[1e-3], [0.05]])
    t = np.linspace(0.0, 3.0, 4)
    out, status = fam.solve_batch(nus, np.repeat(y0, 2, 0), t)
    assert np.all(status == STATUS_OK)
    decay = np.exp(-LAM * nus[:, 0, None] * t[None])[:, :, None, None, None]
    assert np.max(np.abs(out - decay * y0[:, None])) <= 1e-12


def test_forced_single_mode_solution():
    # the forcing is in the same |k|^2 = 8 pi^2 eigenspace, so the Jacobian vanishes:
    # omega = e^{-lam nu t} omega_0 + (1 - e^{-lam nu t}) f / (lam nu); tolerance 1e-11
    fam = NavierStokes()
    x, y, w0, y0 = _tg(fam)
    nus = np.array([[1e-3], [0.05]])
    t = np.linspace(0.0, 3.0, 4)
    out, status = fam.solve_batch(nus, np.repeat(y0, 2, 0), t)
    assert np.all(status == STATUS_OK)
    e = np.exp(-LAM * nus[:, 0, None] * t[None])[:, :, None, None]
    exact = e * w0 + (1 - e) * forcing(x, y) / (LAM * nus[:, 0, None, None, None])
    assert np.max(np.abs(out[..., 0] - exact)) <= 1e-11
    assert np.max(np.abs(out[..., 1] - exact / LAM)) <= 1e-12


def test_navier_stokes_random_field_converges():
    # nu = 1e-3, FNO random field: 32^2 flagged under-resolved by t = 9; on t <= 3 refine 2 vs 4
    # <= 1e-7 relative, step 0.01 vs 0.005 <= 1e-9 (measured over t <= 9: 1.9e-9, 5e-12)
    fam = NavierStokes()
    y0 = fam.sample_initial_state(np.random.default_rng(0))[None]
    p = np.array([[1e-3]])
    _, s1 = NavierStokes(refine=1).solve_batch(p, y0, fam.time.values())
    t = np.array([0.0, 1.5, 3.0])
    assert s1[0] == STATUS_UNDER_RESOLVED
    out2, s2 = fam.solve_batch(p, y0, t)
    out4, _ = NavierStokes(refine=4).solve_batch(p, y0, t)
    half, _ = NavierStokes(max_step=0.005).solve_batch(p, y0, t)
    scale = np.max(np.abs(out4[..., 0]))
    assert s2[0] == STATUS_OK
    assert np.max(np.abs(out2[..., 0] - out4[..., 0])) <= 1e-7 * scale
    assert np.max(np.abs(out2[..., 0] - half[..., 0])) <= 1e-9 * scale
    # psi is consistent with omega: -Laplacian(psi) = omega spectrally on the stored grid,
    # up to the aliasing of the (tiny) content above the stored band: <= 1e-7 relative
    grid = fam.stored_grid()
    lap_psi = grid.ifft(-grid.expand(grid.k2()) * grid.fft(out2[0, :, ..., 1:]))
    assert np.max(np.abs(lap_psi + out2[0, :, ..., :1])) <= 1e-7 * scale


@pytest.mark.slow
def test_coda_warmup_initial_state():
    # GRF evolved 28.5 time units at nu = 8e-4: band-limited to the 32^2 grid, finite
    fam = NavierStokes()
    y0 = fam.initial_state("coda-warmup", np.random.default_rng(0))
    assert y0.shape == (32, 32, 2) and np.all(np.isfinite(y0))
    np.testing.assert_allclose(prolong_fourier(y0[None], 2, 2)[0, ::2, ::2], y0, atol=1e-12)


# ---- torch residuals on exact solutions -------------------------------------------------
def _fields_and_derivs(fn, n=60):
    """fn(t, x, y) -> [n, C]; returns t, space [n, 2], y, y_t and d_x, d_y, d_xx, d_yy."""
    import torch

    g = torch.Generator().manual_seed(1)
    t, x, y = (torch.rand(n, dtype=torch.float64, generator=g).requires_grad_(True)
               for _ in range(3))
    out = fn(t, x, y)
    cols = {k: [] for k in ("t", "x", "y", "xx", "yy")}
    for c in range(out.shape[-1]):
        gt, gx, gy = torch.autograd.grad(out[:, c].sum(), (t, x, y), create_graph=True,
                                         allow_unused=True, materialize_grads=True)
        gxx, gyy = (torch.autograd.grad(gd.sum(), z, retain_graph=True)[0]
                    if gd.requires_grad else torch.zeros_like(z)
                    for gd, z in ((gx, x), (gy, y)))
        for k, v in zip(cols, (gt, gx, gy, gxx, gyy), strict=True):
            cols[k].append(v.detach())
    d = {k: torch.stack(v, -1) for k, v in cols.items()}
    space = torch.stack([x.detach(), y.detach()], -1)
    return t.detach(), space, out.detach(), d


def _gs_decaying_mode(f):  # v = 0, u = 1 + a e^{-(F + D_u kap^2) t} sin(kap.x)
    import torch

    kx, ky = 2 * math.pi / 32, 4 * math.pi / 32
    rate = f + D_U * (kx**2 + ky**2)

    def fn(t, x, y):
        u = 1 + 0.3 * torch.exp(-rate * t) * torch.sin(kx * x + ky * y)
        return torch.stack([u, 0 * u], -1)
    return fn


def _gs_uniform_equilibrium(f, k):  # (F + k) v^2 - F v + F (F + k) = 0, u = (F + k) / v
    import torch

    v = (f + math.sqrt(f * f - 4 * f * (f + k) ** 2)) / (2 * (f + k))
    u = (f + k) / v

    def fn(t, x, y):
        one = torch.ones_like(t) + 0 * x + 0 * y
        return torch.stack([u * one, v * one], -1)
    return fn


def _ns_taylor_green_forced(nu):
    import torch

    def fn(t, x, y):
        e = torch.exp(-LAM * nu * t)
        w0 = torch.sin(2 * math.pi * x) * torch.sin(2 * math.pi * y)
        f = 0.1 * (torch.sin(2 * math.pi * (x + y)) + torch.cos(2 * math.pi * (x + y)))
        w = e * w0 + (1 - e) * f / (LAM * nu)
        return torch.stack([w, w / LAM], -1)
    return fn


def _ns_translating_wave(nu, speed=0.7):  # psi = U y + omega / (4 pi^2): advection by U
    import torch

    def fn(t, x, y):
        w = torch.sin(2 * math.pi * (x - speed * t)) * torch.exp(-4 * math.pi**2 * nu * t)
        return torch.stack([w, speed * y + w / (4 * math.pi**2)], -1)
    return fn


RESIDUAL_CASES = [
    (GrayScott, _gs_decaying_mode(0.04), (0.04, 0.06), 0),
    (GrayScott, _gs_uniform_equilibrium(0.05, 0.01), (0.05, 0.01), 1),
    (NavierStokes, _ns_taylor_green_forced(0.01), (0.01,), 0),
    (Unforced, _ns_translating_wave(0.01), (0.01,), 0),
]


@pytest.mark.parametrize(("cls", "fn", "p", "which"), RESIDUAL_CASES)
def test_residual_zero_on_exact_solution_and_sensitive(cls, fn, p, which):
    # <= 1e-10 x the largest term on the exact solution; >= 1e-4 with a parameter +10%
    import torch

    fam = cls()
    t, space, y, d = _fields_and_derivs(fn)
    params = torch.tensor(p, dtype=torch.float64).expand(len(t), len(p))
    derivs = {f"d_{k}": d[k] for k in fam.spatial_derivatives}
    res = fam.residual(t, y, d["t"], params, space=space, **derivs)
    assert res.shape == y.shape
    scale = max(float(v.abs().max()) for v in (y, *d.values()))
    assert float(res.abs().max()) <= 1e-10 * scale
    moved = params.clone()
    moved[:, which] *= 1.1
    assert float(fam.residual(t, y, d["t"], moved, space=space, **derivs).abs().max()) >= 1e-4


def test_navier_stokes_residual_sees_the_advection_sign():
    # the translating wave with U -> -U is no solution: residual ~ 2 U omega_x
    import torch

    fam = Unforced()
    t, space, y, d = _fields_and_derivs(_ns_translating_wave(0.01, speed=-0.7))
    d_t = _fields_and_derivs(_ns_translating_wave(0.01, speed=0.7))[3]["t"]
    params = torch.full((len(t), 1), 0.01, dtype=torch.float64)
    derivs = {f"d_{k}": d[k] for k in fam.spatial_derivatives}
    assert float(fam.residual(t, y, d_t, params, space=space, **derivs).abs().max()) > 0.5
