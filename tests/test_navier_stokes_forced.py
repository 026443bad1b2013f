"""``navier_stokes_forced``: Navier-Stokes with the forcing's wave vectors as parameters.

Exact answers: with a = b = (1, 1) the family is ``navier_stokes`` bit for bit; when the
forcing's two wave vectors have the same length (LEADS's fourth environment, |a|^2 =
|b|^2 = 5) and the initial vorticity lies in the same Laplacian eigenspace, the Jacobian
vanishes and omega = e^{-lam nu t} omega_0 + (1 - e^{-lam nu t}) f / (lam nu),
lam = 4 pi^2 |a|^2. float64 throughout; tolerances beside each case.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scimeta import problems
from scimeta.errors import ConfigError
from scimeta.family import STATUS_OK
from scimeta.problems.navier_stokes import (
    LEADS_FORCINGS,
    LEADS_NU,
    NavierStokes,
    NavierStokesForced,
)

LAM5 = 4 * math.pi**2 * 5  # -Laplacian eigenvalue of the |k|^2 = 5 modes


def _forcing(x, y, a_x, a_y, b_x, b_y):
    return 0.1 * (np.sin(2 * np.pi * (a_x * x + a_y * y)) + np.cos(2 * np.pi * (b_x * x + b_y * y)))


def test_declarations_and_leads_environments():
    fam = problems.get("navier_stokes_forced")
    fam.check()
    assert fam.param_names == ("nu", "a_x", "a_y", "b_x", "b_y")
    assert fam.regime("leads").points == tuple((LEADS_NU, *f) for f in LEADS_FORCINGS)
    assert fam.regime("leads").initial == "leads-warmup"
    for name in ("coda-train", "coda-adapt"):  # navier_stokes's, forcing (1, 1, 1, 1)
        mine, theirs = fam.regime(name), NavierStokes.regimes[name]
        assert mine.points == tuple((*p, 1, 1, 1, 1) for p in theirs.points or ())
        assert mine.initial == theirs.initial == "coda-warmup"
    assert fam.warmups["coda-warmup"] == (*NavierStokes.warmups["coda-warmup"], 1, 1, 1, 1)
    rng = np.random.default_rng(0)
    for name in ("train", "test-interpolate", "test-extrapolate"):
        p = fam.regime(name).sample(fam.params, rng)
        assert np.array_equal(p[1:], [1, 1, 1, 1])  # the fixed navier_stokes forcing
        assert fam.regime(name).bounds(fam.params)[0].tolist() == \
            NavierStokes.regimes[name].bounds(NavierStokes.params)[0].tolist()


def test_unit_wave_vectors_reproduce_navier_stokes_exactly():
    ns, forced = NavierStokes(), NavierStokesForced()
    y0 = ns.sample_initial_state(np.random.default_rng(3))[None]
    t = np.array([0.0, 0.5, 1.0])
    a, sa = ns.solve_batch(np.array([[1e-3]]), y0, t)
    b, sb = forced.solve_batch(np.array([[1e-3, 1, 1, 1, 1]]), y0, t)
    assert sa[0] == sb[0] == STATUS_OK
    assert np.array_equal(a, b)


def test_equal_length_wave_vectors_solution():
    # LEADS's fourth forcing, a = (1, 2), b = (2, 1): omega_0 = 0.5 sin 2 pi (2x - y) in
    # the same eigenspace; the exact solution to <= 1e-11 (omega) and 1e-12 (psi)
    fam = NavierStokesForced()
    x, y = np.meshgrid(*fam.space.values(), indexing="ij")
    w0 = 0.5 * np.sin(2 * np.pi * (2 * x - y))
    y0 = np.stack([w0, w0 / LAM5], -1)[None]
    nus = np.array([[1e-3, 1, 2, 2, 1], [0.05, 1, 2, 2, 1]])
    t = np.linspace(0.0, 3.0, 4)
    out, status = fam.solve_batch(nus, np.repeat(y0, 2, 0), t)
    assert np.all(status == STATUS_OK)
    e = np.exp(-LAM5 * nus[:, 0, None] * t[None])[:, :, None, None]
    f = _forcing(x, y, 1, 2, 2, 1)
    exact = e * w0 + (1 - e) * f / (LAM5 * nus[:, 0, None, None, None])
    assert np.max(np.abs(out[..., 0] - exact)) <= 1e-11
    assert np.max(np.abs(out[..., 1] - exact / LAM5)) <= 1e-12


def test_forcings_differ_per_task_in_one_batch():
    # each task of a batch gets its own forcing: solving the four LEADS environments
    # together equals solving them one by one (bitwise), and the fields differ
    fam = NavierStokesForced()
    y0 = fam.sample_initial_state(np.random.default_rng(1))[None]
    p = np.array([(LEADS_NU, *f) for f in LEADS_FORCINGS], dtype=float)
    t = np.array([0.0, 1.0])
    together, _ = fam.solve_batch(p, np.repeat(y0, 4, 0), t)
    for i in range(4):
        alone, _ = fam.solve_batch(p[i:i + 1], y0, t)
        np.testing.assert_allclose(together[i], alone[0], rtol=0, atol=1e-14)
    assert all(np.max(np.abs(together[i] - together[0])) > 1e-3 for i in range(1, 4))


def test_residual_zero_on_exact_solution_and_sensitive_to_the_forcing():
    import torch
    from test_gray_scott_navier_stokes import _fields_and_derivs

    nu = 0.01

    def fn(t, x, y):
        e = torch.exp(-LAM5 * nu * t)
        w0 = 0.5 * torch.sin(2 * math.pi * (2 * x - y))
        f = 0.1 * (torch.sin(2 * math.pi * (x + 2 * y)) + torch.cos(2 * math.pi * (2 * x + y)))
        w = e * w0 + (1 - e) * f / (LAM5 * nu)
        return torch.stack([w, w / LAM5], -1)

    fam = NavierStokesForced()
    t, space, y, d = _fields_and_derivs(fn)
    params = torch.tensor([nu, 1, 2, 2, 1], dtype=torch.float64).expand(len(t), 5)
    derivs = {f"d_{k}": d[k] for k in fam.spatial_derivatives}
    res = fam.residual(t, y, d["t"], params, space=space, **derivs)
    scale = max(float(v.abs().max()) for v in (y, *d.values()))
    assert float(res.abs().max()) <= 1e-10 * scale
    for col in range(1, 5):  # another forcing: the same field is no solution
        moved = params.clone()
        moved[:, col] = 3.0
        assert float(fam.residual(t, y, d["t"], moved, space=space, **derivs).abs().max()) > 0.01


def test_non_integer_wave_number_is_refused_by_name():
    fam = NavierStokesForced()
    y0 = fam.sample_initial_state(np.random.default_rng(0))[None]
    with pytest.raises(ConfigError, match=r"b_y=1\.5 is not allowed.*integers"):
        fam.solve_batch(np.array([[1e-3, 1, 1, 1, 1.5]]), y0, np.array([0.0, 1.0]))


@pytest.mark.slow
def test_leads_warmup_is_the_first_environment_evolved():
    # the rule evolves the FNO field 28.5 time units with nu = 1e-3 and forcing (1,1,1,1)
    fam, ns = NavierStokesForced(), NavierStokes()
    y0 = fam.initial_state("leads-warmup", np.random.default_rng(5))
    field = ns.initial_state(None, np.random.default_rng(5))
    ref, _ = ns.solve_batch(np.array([[LEADS_NU]]), field[None], np.array([0.0, 28.5]))
    np.testing.assert_allclose(y0, ns._with_psi(ref[0, -1, ..., 0]), rtol=0, atol=1e-12)


def test_wave_number_overrides_are_checked_before_solving():
    fam = NavierStokesForced()
    train = fam.regime("train")
    moved = fam.override(train, {"b_y": (2.0, 2.0), "nu": (1e-3, 1.1e-3)})
    assert moved.box_bounds["b_y"] == (2.0, 2.0)
    for bounds in ({"a_x": (1.5, 1.5)}, {"a_y": (1.0, 3.0)}):
        with pytest.raises(ConfigError, match=r"--param a_[xy]=.* is not allowed.*one integer"):
            fam.override(train, bounds)
