"""The ``published`` preset on a grid family: gray_scott_leads's semi-discrete system
(LEADS/CoDA's 9-point Laplacian at dx = 1) through scipy's RK45 at its defaults."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from scimeta import registry
from scimeta.data import GenerationConfig, generate
from scimeta.data.solver_preset import ode_families
from scimeta.data.validate import validate

FAMILY = "gray_scott_leads"


def fd9_laplacian_by_fft(field: np.ndarray, dx: float) -> np.ndarray:
    """The 9-point stencil (-3, 1/2 edges, 1/4 corners) / dx² applied in Fourier space,
    channel by channel: symbol (cos a + cos b + cos a cos b - 3) / dx²."""
    n0, n1 = field.shape[:2]
    a = 2 * np.pi * np.fft.fftfreq(n0)[:, None]
    b = 2 * np.pi * np.fft.fftfreq(n1)[None, :]
    sym = (np.cos(a) + np.cos(b) + np.cos(a) * np.cos(b) - 3.0) / dx**2
    return np.fft.ifft2(np.fft.fft2(field, axes=(0, 1)) * sym[..., None], axes=(0, 1)).real


def test_published_rhs_is_the_nine_point_system():
    fam = registry.get(FAMILY)
    rng = np.random.default_rng(0)
    uv = rng.uniform(0, 1, (32, 32, 2))
    f, k = 0.037, 0.060
    got = fam.published_rhs(np.array([f, k]), uv.shape)(0.0, uv.reshape(-1)).reshape(uv.shape)
    lap = fd9_laplacian_by_fft(uv, 1.0)
    u, v = uv[..., 0], uv[..., 1]
    want = np.stack([0.2097 * lap[..., 0] - u * v * v + f * (1 - u),
                     0.105 * lap[..., 1] + u * v * v - (f + k) * v], axis=-1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    # a uniform state has no diffusion: only the reaction terms remain
    flat = np.full((32, 32, 2), 0.5)
    r = fam.published_rhs(np.array([f, k]), flat.shape)(0.0, flat.reshape(-1)).reshape(32, 32, 2)
    np.testing.assert_allclose(r[..., 0], -0.125 + f * 0.5, atol=1e-15)


def test_grid_families_are_listed_as_supported():
    assert FAMILY in ode_families() and "oscillator" in ode_families()
    assert "burgers" not in ode_families()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("gs")
    cfg = GenerationConfig(FAMILY, "leads", tasks=2, seed=3, support=20, query=20,
                           dtype="float64")
    acc = generate(cfg, root / "accurate.h5")
    from dataclasses import replace
    pub = generate(replace(cfg, solver_preset="published"), root / "published.h5")
    return acc, pub


def _read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in ("u", "params", "y0", "time")} | {"attrs": dict(f.attrs)}


def test_published_gray_scott_is_rk45_on_the_grid_and_close_to_accurate(pair):
    acc, pub = (_read(p) for p in pair)
    np.testing.assert_array_equal(acc["y0"], pub["y0"])
    diff = np.abs(pub["u"] - acc["u"]).max()
    assert 1e-7 < diff < 5e-2, diff  # RK45 defaults: a 1e-3-relative solver
    # task 1 equals a direct solve_ivp call on the published right-hand side
    fam, t = registry.get(FAMILY), pub["time"]
    rhs = fam.published_rhs(pub["params"][1], pub["y0"][1].shape)
    sol = solve_ivp(rhs, (t[0], t[-1]), pub["y0"][1].reshape(-1), t_eval=t, method="RK45")
    np.testing.assert_allclose(pub["u"][1], sol.y.T.reshape(pub["u"][1].shape), atol=1e-12)
    sv = json.loads(pub["attrs"]["solver"])
    assert (sv["method"], sv["rtol"], sv["preset"]) == ("RK45", 1e-3, "published")
    assert "ETDRK4" in sv["note"] and "dt=0.25" in sv["note"]
    assert validate(pair[1]) == []
