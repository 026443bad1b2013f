"""System-identification reference for periodic PDE families (``scimeta.train.sysid_pde``).

Exact answers: the initial basis spans every draw of the family's initial condition
(projection residual at round-off); on noise-free synthetic Burgers data the fit
recovers the viscosity and the initial field to 1e-8 and predicts the query points to
1e-8; a regime with a named initial rule fits the parameters alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from scimeta import problems, registry
from scimeta.data import GenerationConfig, generate
from scimeta.errors import ConfigError
from scimeta.train.sysid import check_reference, sysid_variables
from scimeta.train.sysid_pde import fit_pde, initial_basis, predict_pde


@pytest.fixture(scope="module")
def burgers():
    """Burgers on 128 points (ν = 0.15 is resolved there), one true task."""
    fam = type(problems.get("burgers"))(shape={"x": 128})
    rng = np.random.default_rng(3)
    y0 = fam.initial_state(None, rng)
    t = fam.time.values()
    out, status = fam.solve_batch(np.array([[0.15]]), y0[None], t)
    assert status[0] == 0
    return fam, y0, t, out[0], rng


def points(fam, t, field, rng, n):
    ti, xi = rng.integers(0, len(t), n), rng.integers(0, fam.shape["x"], n)
    return np.stack([t[ti], fam.space["x"][xi]], 1), field[ti, xi]


def test_the_basis_spans_every_draw_of_the_initial_condition(burgers):
    fam = burgers[0]
    basis = initial_basis(fam, fam.regimes["train"])
    assert basis.basis.shape == (2 * 3, 128, 1) and basis.bound == 2.0  # modes 1..3, sin/cos
    a = basis.basis.reshape(len(basis.basis), -1).T
    for seed in range(5):
        u0 = fam.initial_state(None, np.random.default_rng(seed)).reshape(-1)
        coef, *_ = np.linalg.lstsq(a, u0, rcond=None)
        assert np.abs(a @ coef - u0).max() < 1e-12
        assert np.abs(coef).max() <= basis.bound


def test_classic_regime_has_a_known_initial_field(burgers):
    fam = burgers[0]
    basis = initial_basis(fam, fam.regimes["classic"])
    assert len(basis.basis) == 0
    np.testing.assert_allclose(basis.offset[:, 0], -np.sin(np.pi * fam.space["x"]),
                               atol=1e-15)


@pytest.mark.parametrize("known", [False, True])
def test_noise_free_fit_recovers_viscosity_and_field(burgers, known):
    fam, y0, t, field, _ = burgers
    rng = np.random.default_rng(7)
    xs, ys = points(fam, t, field, rng, 12)
    xq, yq = points(fam, t, field, rng, 40)
    fit, basis = fit_pde(fam, xs, ys, regime=fam.regimes["train"],
                         known_params=[0.15] if known else None)
    assert fit.converged and fit.residual_rms < 1e-9
    assert abs(fit.params[0] - 0.15) < 1e-8
    assert np.abs(basis.field(fit.coef) - y0).max() < 1e-8
    assert np.abs(predict_pde(fam, fit, basis, xq) - yq).max() < 1e-8


def test_classic_regime_fits_the_viscosity_alone():
    fam = type(problems.get("burgers"))(shape={"x": 128})
    regime = fam.regimes["classic"]
    u0 = initial_basis(fam, regime).offset
    t = fam.time.values()
    field = fam.solve_batch(np.array([[0.3]]), u0[None], t)[0][0]
    xs, ys = points(fam, t, field, np.random.default_rng(1), 6)
    fit, _ = fit_pde(fam, xs, ys, regime=regime)
    assert len(fit.coef) == 0 and abs(fit.params[0] - 0.3) < 1e-8


def test_bad_inputs_are_refused_by_name(burgers):
    fam, _, t, field, rng = burgers
    xs, ys = points(fam, t, field, rng, 5)
    with pytest.raises(ConfigError, match="off the x grid"):
        fit_pde(fam, xs + np.array([0.0, 1e-3]), ys, regime=fam.regimes["train"])
    with pytest.raises(ConfigError, match=r"known_params=\[1.0, 2.0\]"):
        fit_pde(fam, xs, ys, known_params=[1.0, 2.0])
    with pytest.raises(ConfigError, match="needs a regime"):
        fit_pde(fam, xs, ys)
    with pytest.raises(ConfigError, match="starts=0"):
        fit_pde(fam, xs, ys, regime=fam.regimes["train"], starts=0)
    gs = registry.get("gray_scott")  # 2-D seeds: no finite basis
    with pytest.raises(ConfigError, match="no finite basis"):
        initial_basis(gs, next(r for r in gs.regimes.values() if r.initial is None))
    with pytest.raises(ConfigError, match="periodic spectral PDE"):
        check_reference(registry.get("poisson"), "sysid")
    check_reference(fam, "sysid-known")  # accepted


def test_reference_row_on_a_burgers_store(tmp_path):
    """``sysid_variables`` (the evaluate reference row) on a stored Burgers task, known
    parameters: the query MSE is at the level of the store's float32 rounding."""
    path = tmp_path / "b.h5"
    generate(GenerationConfig("burgers", "train", tasks=1, seed=0, support=10, query=30,
                              dtype="float64"), path)
    ds = sysid_variables(registry.get("burgers"), str(path), 1, "sysid-known")
    assert ds["sysid_mse"].shape == (1,) and float(ds["sysid_mse"][0]) < 1e-16
    assert bool(ds["sysid_converged"][0]) and float(ds["sysid_seconds"][0]) > 0
    assert "spectral solver" in ds["sysid_mse"].attrs["protocol"]
