"""Solver presets of a generation: the family's own solver, or the published protocols'.

``"accurate"`` (the default) solves every task with the family's own reference solver
(``family.solve_batch``, recorded as ``family.solver``). ``"published"`` reproduces the
data generators of LEADS (Yin et al. 2021) and CoDA (Kirchmeyer et al. 2022): scipy's
``solve_ivp`` with method ``"RK45"`` at its default tolerances (``rtol = 1e-3``,
``atol = 1e-6``), for families solved with ``solve_ivp`` (:class:`~scimeta.family.OdeFamily`)
and for grid families whose published data came from such a call on their
semi-discrete system: those define ``published_rhs(params, shape) -> f(t, y)`` on the
flattened state ``[*space, C]`` (``gray_scott_leads``: LEADS/CoDA's 9-point
finite-difference Laplacian). Its global error is of order 1e-3 relative: use it to
compare with published numbers, not as a reference solution.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, SolverFailed
from ..family import OdeFamily, ProblemFamily, solve_each

DEFAULT = "accurate"
PRESETS = ("accurate", "published")
#: the published protocols' solver: scipy's solve_ivp defaults
METHOD, RTOL, ATOL = "RK45", 1e-3, 1e-6
PUBLISHED: dict[str, object] = {"name": "scipy.integrate.solve_ivp", "method": METHOD,
                                "rtol": RTOL, "atol": ATOL}


def supported(family: ProblemFamily, preset: str) -> bool:
    """Whether ``family`` can be solved with ``preset``."""
    return (preset == DEFAULT or isinstance(family, OdeFamily)
            or callable(getattr(family, "published_rhs", None)))


def check(family: ProblemFamily, preset: str) -> None:
    """Raise :class:`ConfigError` naming the family and the supported ones when
    ``family`` cannot be solved with ``preset``."""
    if preset not in PRESETS:
        raise ConfigError(f"solver_preset={preset!r} is not allowed; use one of "
                          f"{', '.join(PRESETS)}")
    if supported(family, preset):
        return
    raise ConfigError(
        f"solver_preset={preset!r} is not available for family {family.name!r}: its solver "
        f"is {family.solver.name} ({family.solver.method}), not scipy's solve_ivp; it is "
        f"available for the families solved with solve_ivp "
        f"({', '.join(ode_families()) or 'none installed'}); use the 'accurate' preset")


def ode_families() -> list[str]:
    """Names of the registered families that support the ``published`` preset."""
    from .. import registry

    out = []
    for name in registry.names():
        try:
            if supported(registry.get(name), "published"):
                out.append(name)
        except Exception:  # a broken plugin must not hide this message
            continue
    return out


def effective_tolerances(preset: str) -> dict[str, object]:
    """``{"method", "rtol", "atol"}`` a non-default preset solves with."""
    return {k: PUBLISHED[k] for k in ("method", "rtol", "atol")} if preset != DEFAULT else {}


def solver_record(family: ProblemFamily, preset: str) -> dict[str, object]:
    """The store's ``solver`` attribute: the family's solver (``accurate``), or the
    effective one with ``preset`` and a note naming the family's own (``published``)."""
    own = dict(family.solver.__dict__)
    if preset == DEFAULT:
        return own
    tol = ", ".join(f"{k}={own[k]:g}" for k in ("rtol", "atol", "dt")
                    if own.get(k) is not None)
    return {**PUBLISHED, "dt": None, "preset": preset,
            "note": f"preset {preset!r} (LEADS/CoDA generators: solve_ivp defaults); the "
                    f"family's own solver is {own['method']} ({tol})"}


def solve_batch(family: ProblemFamily, preset: str, params: np.ndarray, y0: np.ndarray,
                t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fields ``[N, T, *space, C]`` float64 and status ``[N]`` int8 of ``N`` tasks.

    params ``[N, P]``, y0 ``[N, *space, C]``, t ``[T]``. ``accurate``: the family's
    ``solve_batch``; ``published``: one ``solve_ivp`` RK45 call per task at scipy's
    default tolerances (failed tasks hold NaN and ``STATUS_SOLVER_FAILED``).
    """
    if preset == DEFAULT:
        return family.solve_batch(params, y0, t)
    check(family, preset)
    if isinstance(family, OdeFamily):
        return family.solve_batch(params, y0, t, rtol=RTOL, atol=ATOL, method=METHOD)
    return _solve_grid(family, params, y0, t)


def _solve_grid(family: ProblemFamily, params: np.ndarray, y0: np.ndarray,
                t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``published`` for a grid family: its ``published_rhs`` through solve_ivp, one
    call per task on the flattened state (RK45's error norm is over all components,
    so the order of the flattening does not change the steps it takes)."""
    from scipy.integrate import solve_ivp

    shape = y0.shape[1:]

    def solve_one(i: int) -> np.ndarray:
        rhs = family.published_rhs(params[i], shape)  # type: ignore[attr-defined]
        sol = solve_ivp(rhs, (float(t[0]), float(t[-1])), y0[i].reshape(-1), t_eval=t,
                        method=METHOD, rtol=RTOL, atol=ATOL)
        if not sol.success or sol.y.shape[1] != len(t):
            raise SolverFailed(f"{family.name} with params {list(params[i])}: {sol.message}")
        return sol.y.T.reshape(len(t), *shape)

    return solve_each(len(y0), (len(t), *shape), solve_one)
