"""Reference solvers of the built-in ODE families against exact answers (float64).

Each test is built on an oracle from shared/ORACLES.md: a closed form, a conserved
quantity or balance law, a known rate, or self-convergence of the solver. The
tolerance of every check is stated beside it, with the value measured when it was
written.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import cumulative_simpson, solve_ivp

from scimeta import problems
from scimeta.family import OdeFamily

FAMILIES = ("oscillator", "lotka_volterra", "van_der_pol", "lorenz", "pendulum", "glycolytic")
TRIO = ("train", "test-interpolate", "test-extrapolate")

#: One parameter vector per family, inside its ``train`` regime, every entry non-zero
#: (so that perturbing any one of them changes the right-hand side).
REPRESENTATIVE = {
    "oscillator": (1.0, 0.1, 0.8, 1.3),
    "lotka_volterra": (0.5, 0.75, 1.0, 0.5),
    "van_der_pol": (2.5,),
    "lorenz": (10.0, 28.0, 8.0 / 3.0),
    "pendulum": (0.3, 1.7, 0.8, 1.3),
    "glycolytic": (90.0, 0.75),
}


def _family(name: str) -> OdeFamily:
    fam = problems.get(name)
    assert isinstance(fam, OdeFamily)
    return fam


def _rhs_numpy(fam: OdeFamily, t: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """dy/dt on a trajectory ``y [T, C]`` from the numpy branch of ``rhs``."""
    comps = fam.rhs(t, tuple(y.T), tuple(float(v) for v in p), np)
    return np.stack(np.broadcast_arrays(*comps), axis=-1)


def _rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max over time and components of |a - ref|, each component scaled by max |ref|."""
    return float((np.abs(a - ref).max(0) / np.abs(ref).max(0)).max())


# ---- declarations -----------------------------------------------------------

@pytest.mark.parametrize("name", FAMILIES)
def test_family_declarations_are_valid(name: str) -> None:
    fam = _family(name)
    fam.check()  # regime bounds inside every parameter's physical domain
    assert set(TRIO) <= set(fam.regimes)
    assert len(fam.initial_box) == len(fam.state_names) == len(fam.state_units)
    assert fam.regime("train").contains(fam.params, np.array(REPRESENTATIVE[name]))


@pytest.mark.parametrize("name", FAMILIES)
def test_regime_trio_is_disjoint(name: str) -> None:
    """200 draws from each of train/test-interpolate/test-extrapolate: each lies in its
    own regime and in neither of the others (exact set membership, no tolerance)."""
    fam = _family(name)
    rng = np.random.default_rng(1234)
    for own in TRIO:
        regime = fam.regime(own)
        for i in range(200):
            values = regime.sample(fam.params, rng, index=i)
            assert regime.contains(fam.params, values), (own, values)
            for other in TRIO:
                if other != own:
                    assert not fam.regime(other).contains(fam.params, values), (own, other, values)


# ---- residual ---------------------------------------------------------------

@pytest.mark.parametrize("name", FAMILIES)
def test_residual_vanishes_on_reference_solution(name: str) -> None:
    """torch residual with dy/dt from the numpy rhs: <= 1e-10 relative to max |dy/dt|
    (measured: <= 2e-16); with any one parameter scaled by 1.1: >= 1e-3 (measured
    >= 0.02)."""
    fam = _family(name)
    p = np.array(REPRESENTATIVE[name])
    y0 = fam.sample_initial_state(np.random.default_rng(0))
    t = np.linspace(0.0, min(fam.time.t1, 5.0), 51)
    y = fam.solve(p, y0, t)
    dydt = _rhs_numpy(fam, t, y, p)
    scale = max(1.0, float(np.abs(dydt).max()))

    def residual(params: np.ndarray) -> torch.Tensor:
        pt = torch.tensor(params).expand(len(t), len(params))
        return fam.residual(torch.tensor(t), torch.tensor(y), torch.tensor(dydt), pt)

    assert residual(p).abs().max().item() <= 1e-10 * scale
    for i, spec in enumerate(fam.params):
        bumped = p.copy()
        bumped[i] *= 1.1
        assert residual(bumped).abs().max().item() >= 1e-3, spec.name


@pytest.mark.parametrize("name", FAMILIES)
def test_residual_is_differentiable(name: str) -> None:
    """torch.autograd.gradcheck (float64 finite differences, default tolerances) in all
    four inputs on a 3-point batch."""
    fam = _family(name)
    rng = np.random.default_rng(5)
    n = 3
    p = np.array(REPRESENTATIVE[name]) * rng.uniform(0.9, 1.1, (n, len(fam.params)))
    y = np.stack([fam.sample_initial_state(rng) for _ in range(n)])
    inputs = tuple(
        torch.tensor(a, dtype=torch.float64, requires_grad=True)
        for a in (rng.uniform(0.0, 2.0, n), y, rng.normal(size=y.shape), p)
    )
    assert torch.autograd.gradcheck(lambda t, yy, d, pp: fam.residual(t, yy, d, pp), inputs)


# ---- oscillator: closed form ------------------------------------------------

@pytest.mark.parametrize("params", [
    (1.0, 0.1, 0.0, 1.0),    # unforced, light damping
    (2.0, 0.05, 0.7, 1.3),   # forced
    (0.7, 0.5, 1.0, 2.2),    # forced, heavier damping
    (3.0, 0.9, 0.5, 0.6),    # forced, close to critical damping
    (1.5, 0.02, 1.0, 1.45),  # near resonance, amplitude ~ 10
])
def test_oscillator_matches_closed_form(params: tuple[float, ...]) -> None:
    """DOP853 at 1e-10 vs transient + steady state: max abs error <= 1e-8 on [0, 20]
    (measured <= 1.9e-9)."""
    fam = _family("oscillator")
    p, y0 = np.array(params), np.array([0.6, -0.3])
    t = np.linspace(0.0, 20.0, 2001)
    exact = fam.exact(p, y0, t)
    assert np.abs(fam.solve(p, y0, t) - exact).max() <= 1e-8


# ---- Lotka-Volterra: first integral -----------------------------------------

def _lv_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    fam = _family("lotka_volterra")
    rng = np.random.default_rng(7)
    cases = []
    for regime in ("leads", "coda-train", "coda-adapt"):
        for env in fam.regime(regime).points:
            cases.append((np.array(env), fam.sample_initial_state(rng)))
    for regime in TRIO:
        for _ in range(4):
            cases.append((fam.regime(regime).sample(fam.params, rng),
                          fam.sample_initial_state(rng)))
    return cases


def test_lotka_volterra_invariant_drift() -> None:
    """Family solver: max |V(t) - V(0)| <= 1e-8 on t in [0, 100] for every LEADS/CoDA
    environment and 4 draws from each box regime (measured <= 1.2e-9)."""
    fam = _family("lotka_volterra")
    t = np.linspace(0.0, 100.0, 1001)
    for p, y0 in _lv_cases():
        v = fam.invariant(p, fam.solve(p, y0, t))
        assert np.abs(v - v[0]).max() <= 1e-8, (p, y0)


def test_lotka_volterra_loose_solver_fails_the_gate() -> None:
    """RK45 at default tolerances (rtol 1e-3, atol 1e-6) drifts by > 1e-4 on the same
    check (measured ~5e-3), so the drift test above does detect loose tolerances."""
    fam = _family("lotka_volterra")
    p, y0 = np.array([0.7, 0.9, 0.6, 0.8]), np.array([1.5, 1.2])
    t = np.linspace(0.0, 100.0, 1001)
    v = fam.invariant(p, fam.solve(p, y0, t, rtol=1e-3, atol=1e-6, method="RK45"))
    assert np.abs(v - v[0]).max() > 1e-4


def test_lotka_volterra_invariant_numpy_and_torch_agree() -> None:
    """Same V from numpy and torch inputs to 1e-14 (both float64)."""
    fam = _family("lotka_volterra")
    p, y = np.array([0.5, 0.75, 1.0, 0.5]), np.array([[1.2, 1.7], [0.3, 2.5]])
    v_np = fam.invariant(p, y)
    v_t = fam.invariant(torch.tensor(p), torch.tensor(y)).numpy()
    np.testing.assert_allclose(v_t, v_np, rtol=0, atol=1e-14)


# ---- self-convergence -------------------------------------------------------

SELF_CONVERGENCE = [
    # family, params, y0, t1, n, tolerance on the 1e-8 vs 1e-12 relative error
    # chaotic: local errors grow like exp(0.9 t), so the horizon is t <= 5
    ("lorenz", (10.0, 28.0, 8.0 / 3.0), (-8.0, 7.0, 27.0), 5.0, 501, 1e-5),  # measured 1.5e-6
    ("lorenz", (11.0, 42.0, 2.2), (3.0, -4.0, 20.0), 5.0, 501, 1e-5),  # measured 1.4e-7
    ("van_der_pol", (2.5,), (1.0, 0.5), 20.0, 401, 1e-6),         # DOP853 (measured 5.7e-8)
    ("van_der_pol", (300.0,), (1.0, 0.5), 600.0, 601, 1e-5),      # Radau (measured 4.3e-8)
    ("glycolytic", (100.0, 0.52), None, 5.0, 101, 1e-4),          # nominal (measured 3.7e-7)
    ("glycolytic", (82.0, 0.7), None, 5.0, 101, 1e-4),            # train (measured 1.9e-5)
]


@pytest.mark.parametrize(("name", "params", "y0", "t1", "n", "tol"), SELF_CONVERGENCE)
def test_self_convergence(name: str, params: tuple[float, ...], y0: tuple[float, ...] | None,
                          t1: float, n: int, tol: float) -> None:
    """Solutions at rtol = atol = 1e-8 and 1e-12 agree to ``tol`` (relative to each
    component's max), and the family's default 1e-10 lies >= 5x closer to 1e-12
    (measured 24x to 171x closer)."""
    fam = _family(name)
    p = np.array(params)
    y_init = np.array(y0) if y0 is not None else fam.sample_initial_state(np.random.default_rng(3))
    t = np.linspace(0.0, t1, n)
    ref = fam.solve(p, y_init, t, rtol=1e-12, atol=1e-12)
    err8 = _rel_err(fam.solve(p, y_init, t, rtol=1e-8, atol=1e-8), ref)
    err10 = _rel_err(fam.solve(p, y_init, t), ref)
    assert err8 <= tol
    assert err10 < err8 / 5


# ---- Lorenz: phase-volume contraction ---------------------------------------

@pytest.mark.parametrize("params", [(10.0, 28.0, 8.0 / 3.0), (8.3, 45.1, 2.05), (12.0, 24.0, 3.0)])
def test_lorenz_divergence_is_constant(params: tuple[float, ...]) -> None:
    """trace of d f/d y (torch.func.jacrev of the torch rhs) = -(sigma + 1 + beta) at
    random states, to 4 ulp of the sum (measured: exact)."""
    fam = _family("lorenz")
    p = torch.tensor(params, dtype=torch.float64)
    expected = -(params[0] + 1.0 + params[2])
    t = torch.tensor(0.0, dtype=torch.float64)
    for state in torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)):
        jac = torch.func.jacrev(lambda y: fam.rhs_torch(t, y, p))(20.0 * state)
        assert abs(torch.trace(jac).item() - expected) <= 4 * math.ulp(abs(expected))


# ---- Van der Pol: stiff switch and relaxation period -------------------------

def test_van_der_pol_uses_radau_when_stiff() -> None:
    fam = _family("van_der_pol")
    assert fam.method_for(np.array([5.0])) == "DOP853"
    assert fam.method_for(np.array([150.0])) == "DOP853"
    assert fam.method_for(np.array([300.0])) == "Radau"
    assert "Radau" in fam.solver.note


def test_van_der_pol_relaxation_period() -> None:
    """At mu = 100 the limit-cycle period is (3 - 2 ln 2) mu + 3 a mu^(-1/3) + O(ln mu / mu)
    (a = 2.3381, first Airy zero). The mu^(-1/3) term is 0.94 % of the leading one, so
    the leading order must hold to 1.5 %; the two-term formula must hold to 10 % of
    that correction, 0.15 (the O(ln mu / mu) rest is ~0.05; measured |diff| = 0.045)."""
    from scimeta.problems.van_der_pol import AIRY_A1, relaxation_period

    fam = _family("van_der_pol")
    mu = 100.0

    def down_crossing(t: float, y: np.ndarray) -> float:
        return y[0]

    down_crossing.direction = -1  # type: ignore[attr-defined]
    sol = solve_ivp(lambda t, y: fam.rhs(t, tuple(y), (mu,), np), (0.0, 260.0), [2.0, 0.0],
                    method=fam.method_for(np.array([mu])), rtol=fam.solver.rtol,
                    atol=fam.solver.atol, events=down_crossing)
    crossings = sol.t_events[0]
    assert len(crossings) == 2
    period = crossings[1] - crossings[0]
    leading = (3.0 - 2.0 * math.log(2.0)) * mu
    correction = 3.0 * AIRY_A1 * mu ** (-1.0 / 3.0)
    assert abs(period / leading - 1.0) <= 0.015
    assert abs(period - relaxation_period(mu)) <= 0.1 * correction


# ---- pendulum: energy balance -----------------------------------------------

@pytest.mark.parametrize("params", [
    (0.5, 1.0, 1.5, 2.0 / 3.0),  # the classic chaotic driven pendulum
    (0.2, 1.7, 0.8, 1.3),
    (0.0, 2.5, 0.0, 1.0),        # undamped, unforced: E conserved
    (0.3, 0.7, 0.0, 1.0),        # damped, unforced
])
def test_pendulum_energy_balance(params: tuple[float, ...]) -> None:
    """E(t) - E(0) = int_0^t (-b omega^2 + A cos(Omega s) omega) ds on t in [0, 20]; the
    power is integrated by cumulative Simpson on 20001 points of the solution (quadrature
    error ~1e-12). Tolerance 1e-7 (measured <= 3e-9)."""
    fam = _family("pendulum")
    p, y0 = np.array(params), np.array([1.2, -0.4])
    b, _, amp, drive = params
    t = np.linspace(0.0, 20.0, 20001)
    y = fam.solve(p, y0, t)
    energy = fam.energy(p, y)
    power = -b * y[:, 1] ** 2 + amp * np.cos(drive * t) * y[:, 1]
    work = cumulative_simpson(power, x=t, initial=0.0)
    assert np.abs(energy - energy[0] - work).max() <= 1e-7
