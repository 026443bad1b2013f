"""The numerical part of the contract: solver self-convergence, and the equation residual
on reference solutions (it vanishes, and it moves when a parameter moves).

Relative errors are per channel: ``max |a - b|`` over time and space divided by the
channel's ``max |b|`` (at least the solver's atol), then the largest over channels.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from ..family import STATUS_NAMES, STATUS_OK, OdeFamily, ProblemFamily
from ..params import Regime

#: Accuracy every reference solution must reach, relative (see the module docstring).
REFERENCE_ACCURACY = 1e-4
#: An ODE solution at the recorded tolerance must lie within RTOL_FACTOR x rtol of one at
#: rtol / TIGHTEN: global errors of adaptive solvers run 1-1000 x rtol (1.5e3 measured on
#: the chaotic Lorenz horizon), so a larger error means the recorded tolerance is not honest.
RTOL_FACTOR = 1e4
TIGHTEN = 100.0
#: PDE time steppers are compared with themselves at half the step.
STEP_REFINE = 2.0
#: Residual on a reference solution, relative to the equation's largest term: ODEs take
#: dy/dt from the family's own right-hand side (round-off: measured <= 3e-16); other
#: families take it from the solution by an 8th-order central difference in time and
#: their spatial derivatives spectrally (periodic grids) or by 2nd-order differences
#: (measured <= 3e-8 on the resolved built-ins; 3.5e-6 on Navier-Stokes, whose stored
#: 32^2 grid drops the tail of its 64^2 solve).
ODE_RESIDUAL_TOL = 1e-10
PDE_RESIDUAL_TOL = 1e-5
#: Moving one parameter by PERTURBATION x max(|value|, its range over the regimes) must
#: change the residual by at least MIN_SENSITIVITY of the equation's largest term.
PERTURBATION = 0.1
MIN_SENSITIVITY = 1e-3

_FD8 = np.array([1 / 280, -4 / 105, 1 / 5, -4 / 5, 0.0, 4 / 5, -1 / 5, 4 / 105, -1 / 280])


def draw(family: ProblemFamily, regime: Regime, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One task of ``regime``: parameters ``[P]`` and initial state ``[*space, C]``."""
    rng = np.random.default_rng(seed)
    params = regime.sample(family.params, rng, index=0)
    return params, family.sample_initial_state(rng, regime)


def rel_error(a: np.ndarray, ref: np.ndarray, floor: float = 1e-300) -> float:
    """Largest per-channel ``max |a - ref| / max(max |ref|, floor)``; arrays ``[..., C]``."""
    axes = tuple(range(a.ndim - 1))
    scale = np.maximum(np.abs(ref).max(axis=axes), floor)
    return float((np.abs(a - ref).max(axis=axes) / scale).max())


def solve_one(family: ProblemFamily, params: np.ndarray, y0: np.ndarray,
              t: np.ndarray) -> np.ndarray:
    """The family's reference solution of one task, ``[T, *space, C]``; raises
    ``RuntimeError`` naming the status if the solver did not return an ok task."""
    fields, status = family.solve_batch(params[None], y0[None], t)
    if status[0] != STATUS_OK:
        raise RuntimeError(f"reference solve of params {params.tolist()} returned status "
                           f"{STATUS_NAMES.get(int(status[0]), int(status[0]))}")
    return fields[0]


def solver_step(family: ProblemFamily, params: np.ndarray, y0: np.ndarray) -> float | None:
    """The largest internal step of a time-stepping PDE family for this task, or None."""
    from ..pde import SpectralPdeFamily

    if not isinstance(family, SpectralPdeFamily):
        return None
    step = float(family.max_step(params[None], y0[None])[0])
    if family.max_step_override is not None:
        step = min(step, family.max_step_override)
    return step


def convergence(family: ProblemFamily, params: np.ndarray, y0: np.ndarray,
                t: np.ndarray) -> tuple[float, float, str] | None:
    """(error, bound, how) of the reference against a tighter solve; None if the family
    has nothing to tighten (no rtol, no time step)."""
    solver = family.solver
    if isinstance(family, OdeFamily):
        if solver.rtol is None or solver.atol is None:
            raise ValueError(f"solver rtol={solver.rtol}, atol={solver.atol}: not recorded")
        a = family.solve(params, y0, t)
        b = family.solve(params, y0, t, rtol=solver.rtol / TIGHTEN, atol=solver.atol / TIGHTEN)
        bound = min(RTOL_FACTOR * solver.rtol, REFERENCE_ACCURACY)
        return (rel_error(a, b, solver.atol), bound,
                f"rtol={solver.rtol:g} vs rtol/{TIGHTEN:g}, t in [{t[0]:g}, {t[-1]:g}]")
    step = solver_step(family, params, y0)
    if step is None:
        return None
    fine = copy.copy(family)
    fine.max_step_override = step / STEP_REFINE  # type: ignore[attr-defined]  # spectral
    a = solve_one(family, params, y0, t)
    b = solve_one(fine, params, y0, t)
    return (rel_error(a, b), REFERENCE_ACCURACY,
            f"step <= {step:.3g} vs step/{STEP_REFINE:g}, t in [{t[0]:g}, {t[-1]:g}]")


def _axes_of(name: str, axes: Sequence[str]) -> list[int]:
    """``"xxy"`` -> ``[0, 0, 1]`` for axes ``("x", "y")`` (derivative names are axis names)."""
    out, rest = [], name
    while rest:
        axis = next((a for a in sorted(axes, key=len, reverse=True) if rest.startswith(a)), None)
        if axis is None:
            raise ValueError(f"spatial derivative {name!r} is not made of the axes {axes}")
        out.append(list(axes).index(axis))
        rest = rest[len(axis):]
    return out


def spatial_derivatives(family: ProblemFamily, u: np.ndarray) -> dict[str, np.ndarray]:
    """``d_<name>`` of a field ``u`` ``[*space, C]`` for each declared spatial derivative:
    spectral on periodic (spectral) families, else 2nd-order central differences (wrong
    at the two outermost points per side, which :func:`residual_inputs` drops)."""
    from ..pde import SpectralPdeFamily

    axes = list(family.space)
    coords = list(family.space.values())
    out = {}
    for name in family.spatial_derivatives:
        order = np.bincount(_axes_of(name, axes), minlength=len(axes))
        v = u
        for i, k in enumerate(order):
            if k == 0:
                continue
            if isinstance(family, SpectralPdeFamily):
                n, length = len(coords[i]), family.lengths[i]
                m = np.fft.fftfreq(n, 1.0 / n)
                ik = 1j * 2 * np.pi / length * m * (np.abs(m) != n // 2 if k % 2 else 1.0)
                shape = [1] * v.ndim
                shape[i] = n
                v = np.real(np.fft.ifft(np.fft.fft(v, axis=i) * (ik**k).reshape(shape), axis=i))
            else:
                h = float(coords[i][1] - coords[i][0])
                for _ in range(k // 2):
                    v = (np.roll(v, -1, i) - 2 * v + np.roll(v, 1, i)) / h**2
                if k % 2:
                    v = (np.roll(v, -1, i) - np.roll(v, 1, i)) / (2 * h)
        out["d_" + name] = v
    return out


def residual_inputs(family: ProblemFamily, params: np.ndarray, y0: np.ndarray,
                    t: np.ndarray) -> dict[str, np.ndarray]:
    """Reference solution and its derivatives, flattened to points: ``t`` ``[M]``, ``y``,
    ``dydt`` and each ``d_<name>`` ``[M, C]``, ``space`` ``[M, S]`` (PDEs)."""
    if isinstance(family, OdeFamily):
        y = family.solve(params, y0, t)
        comps = family.rhs(t, tuple(y.T), tuple(float(v) for v in params), np)
        return {"t": t, "y": y, "dydt": np.stack(np.broadcast_arrays(*comps), axis=-1)}
    dt = float(t[1] - t[0])
    step = solver_step(family, params, y0)
    h = dt / 8 if step is None else min(dt / 8, step)
    t_mid = float(t[1])
    stencil = t_mid + h * np.arange(-4, 5)
    u = solve_one(family, params, y0, np.concatenate([t[:1], stencil]))[1:]
    dudt = np.tensordot(_FD8, u, axes=(0, 0)) / h
    fields = {"y": u[4], "dydt": dudt, **spatial_derivatives(family, u[4])}
    space = list(family.space.values())
    if space:
        fields["space"] = np.stack(np.meshgrid(*space, indexing="ij"), axis=-1)
    from ..pde import SpectralPdeFamily

    if space and not isinstance(family, SpectralPdeFamily):  # drop points FD got wrong
        inner = (slice(2, -2),) * len(space)
        fields = {k: v[inner] for k, v in fields.items()}
    out = {k: v.reshape(-1, v.shape[-1]) for k, v in fields.items()}
    out["t"] = np.full(len(out["y"]), t_mid)
    return out


def residual_tolerance(family: ProblemFamily) -> tuple[float, str]:
    """The residual bound (default or declared) and where it comes from."""
    default = ODE_RESIDUAL_TOL if isinstance(family, OdeFamily) else PDE_RESIDUAL_TOL
    declared = getattr(family, "contract_residual_tol", None)
    if declared is None:
        return default, "default"
    reason = getattr(family, "contract_residual_reason", "")
    if not reason:
        raise ValueError(f"contract_residual_tol={declared:g} needs a "
                         "contract_residual_reason saying why")
    if not 0 < declared < 1:
        raise ValueError(f"contract_residual_tol={declared:g} must lie in (0, 1)")
    return float(declared), f"declared: {reason}"


def residual_checks(family: ProblemFamily, params: np.ndarray, y0: np.ndarray,
                    t: np.ndarray) -> tuple[float, np.ndarray]:
    """The residual on the reference solution, and its change when each parameter
    moves (``[P]``), both relative to the equation's largest term: the largest change
    of the residual when ``y``, ``dydt`` or one spatial derivative is set to zero."""
    import torch

    data = {k: torch.as_tensor(v, dtype=torch.float64)
            for k, v in residual_inputs(family, params, y0, t).items()}
    n = len(data["t"])
    extra = {"space": data["space"]} if "space" in data else {}
    derivs = {k: v for k, v in data.items() if k.startswith("d_")}

    def res(p: np.ndarray, **swap: torch.Tensor) -> torch.Tensor:
        inputs = {"y": data["y"], "dydt": data["dydt"], **derivs, **swap}
        pt = torch.as_tensor(p, dtype=torch.float64).expand(n, len(p))
        d = {k: v for k, v in inputs.items() if k.startswith("d_")}
        with torch.no_grad():
            return family.residual(data["t"], inputs["y"], inputs["dydt"], pt, **extra, **d)

    base = res(params)
    terms = [float((base - res(params, **{k: torch.zeros_like(v)})).abs().max())
             for k, v in {"y": data["y"], "dydt": data["dydt"], **derivs}.items()]
    scale = max(terms)
    if not scale > 0:
        raise ValueError("the residual does not depend on the state or its derivatives")
    value = float(base.abs().max()) / scale
    spans = np.array([[r.bounds(family.params)[:, 0], r.bounds(family.params)[:, 1]]
                      for r in family.regimes.values()])
    width = spans[:, 1].max(axis=0) - spans[:, 0].min(axis=0)
    changes = []
    for i, spec in enumerate(family.params):
        delta = PERTURBATION * max(abs(params[i]), width[i]) or PERTURBATION
        moved = params.copy()
        moved[i] += delta if params[i] + delta <= spec.domain[1] else -delta
        changes.append(float((res(moved) - base).abs().max()) / scale)
    return value, np.array(changes)
